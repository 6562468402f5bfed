"""The method and findings text under the peers table in docs/benchmarks.md."""

METHOD = """(method text to come)"""
