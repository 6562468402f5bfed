"""Only the optional C extension lives here; everything else is in pyproject.toml.

``optional=True``: without a C compiler the install still succeeds and rqs does the same
work in Python (slower, same bytes).
"""

from pathlib import Path

from setuptools import Extension, setup

PARTS = "src/rqs/_speedups_c"

setup(ext_modules=[Extension(
    "rqs._speedups",
    sorted(str(p) for p in Path(PARTS).glob("*.c")),
    depends=[f"{PARTS}/speedups.h", f"{PARTS}/json.h"],
    optional=True,
    extra_compile_args=["-O3", "-Wall", "-Wextra", "-Werror=implicit", "-fvisibility=hidden"],
)])
