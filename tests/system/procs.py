"""Running ``rqs serve`` as a real OS process for system tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

RQS = [sys.executable, "-m", "rqs.cli"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def create_key(data_dir: Path, scope: str = "admin", extra: tuple[str, ...] = ()) -> dict[str, str]:
    out = subprocess.run([*RQS, "keys", "create", "--name", "t", "--scope", scope, "--json",
                          "--data-dir", str(data_dir), *extra], check=True, capture_output=True)
    return json.loads(out.stdout)  # type: ignore[no-any-return]


def start(data_dir: Path, port: int, *extra: str, env: dict[str, str] | None = None
          ) -> subprocess.Popen[bytes]:
    proc = subprocess.Popen(
        [*RQS, "serve", "--data-dir", str(data_dir), "--port", str(port), "--log-level",
         "warning", *extra],
        env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    wait_ready(f"http://127.0.0.1:{port}", proc)
    return proc


def wait_ready(url: str, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    """Block until the process answers /healthz: a start-up probe, not a wait for work."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(url + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            raise RuntimeError(f"rqs serve exited with {proc.returncode}: {err}")
        if time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("rqs serve did not become ready")
        time.sleep(0.05)
