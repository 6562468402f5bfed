"""The ``rqs`` command line."""
