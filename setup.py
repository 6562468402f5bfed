"""Only the optional C extension lives here; everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and rqs renders Mapp
outputs in pure Python (slower, same bytes).
"""

from setuptools import Extension, setup

setup(ext_modules=[Extension("rqs._speedups", ["src/rqs/_speedups.c"], optional=True,
                             extra_compile_args=["-O3", "-Wall", "-Wextra", "-Werror=implicit"])])
