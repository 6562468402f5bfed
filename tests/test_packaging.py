"""What `pip install rqs` brings must be enough to run everything in src/rqs.

The test suite runs with the dev extras installed, so a module that imports a dev-only
package would pass every other test and still fail on a user's machine (it happened:
the CLI imported httpx, a dev dependency, and `./scripts/serve` broke on a fresh clone).
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _imported_top_level_modules() -> set[str]:
    found: set[str] = set()
    for path in (ROOT / "src" / "rqs").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text("utf-8"))):
            if isinstance(node, ast.Import):
                found.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                found.add(node.module.split(".")[0])
    return found - set(sys.stdlib_module_names) - {"rqs", "__future__"}


def _declared() -> set[str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["project"]
    names = [re.split(r"[\s\[<>=!~;]", dep, maxsplit=1)[0] for dep in project["dependencies"]]
    return {n.lower().replace("_", "-") for n in names}


def test_every_third_party_import_is_a_runtime_dependency() -> None:
    dists = packages_distributions()
    declared = _declared()
    # uvicorn[standard] brings uvloop and httptools' siblings; psycopg[pool] psycopg_pool.
    extras = {"uvloop": "uvicorn", "psycopg-pool": "psycopg"}
    missing = {}
    for module in sorted(_imported_top_level_modules()):
        for dist in dists.get(module, [module]):
            name = dist.lower().replace("_", "-")
            if name not in declared and extras.get(name) not in declared:
                missing[module] = dist
    assert not missing, f"imported in src/rqs but not in [project].dependencies: {missing}"
