"""rqs, the Response Queue Service."""

__version__ = "0.1.0"
