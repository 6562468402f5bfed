"""``--access-log``: one line per request on stdout when asked for, none by default."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.system import procs

pytestmark = pytest.mark.slow


def _serve_and_get(data_dir: Path, *flags: str) -> str:
    """Start ``rqs serve``, make one authenticated request, stop it: its stdout."""
    key = procs.create_key(data_dir)
    port = procs.free_port()
    proc = subprocess.Popen(
        [*procs.RQS, "serve", "--data-dir", str(data_dir), "--port", str(port), *flags],
        env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        procs.wait_ready(f"http://127.0.0.1:{port}", proc)
        r = httpx.get(f"http://127.0.0.1:{port}/v1/stats?x=1",
                      headers={"authorization": f"Bearer {key['token']}"})
        assert r.status_code == 200, r.text
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    return out.decode()


def test_no_access_log_by_default(tmp_path: Path) -> None:
    assert "/v1/stats" not in _serve_and_get(tmp_path)


def test_access_log_when_asked(tmp_path: Path) -> None:
    out = _serve_and_get(tmp_path, "--access-log")
    lines = [line for line in out.splitlines() if "/v1/stats" in line]
    assert len(lines) == 1, out
    assert '"GET /v1/stats?x=1 HTTP/1.1" 200' in lines[0]
    assert "Bearer" not in out  # credentials travel in headers, which are not logged
