"""The HTTP adapter: Starlette routes over ``rqs.service``. Status codes live here only."""
