"""Adapters to the outside world that are neither storage nor the HTTP API."""
