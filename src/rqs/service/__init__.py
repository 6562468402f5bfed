"""Use cases over a Storage: what the HTTP API, the CLI and workers call."""
