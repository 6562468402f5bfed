"""Running an rqs server for a benchmark, reading its memory, and recording results."""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs" / "benchmarks.md"
RQS = [sys.executable, "-m", "rqs.cli"]


def psql(sql: str, db: str = "postgres") -> str:
    """One statement through the psql client (trust auth on loopback); its output."""
    out = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", db, "-XAtqc", sql],
                         check=True, capture_output=True, text=True)
    return out.stdout.strip()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_kb(pid: int, field: str = "VmRSS") -> int:
    """Resident memory (VmRSS) or its peak (VmHWM) of a process, in KiB."""
    text = Path(f"/proc/{pid}/status").read_text()
    m = re.search(rf"^{field}:\s+(\d+) kB", text, re.M)
    return int(m.group(1)) if m else 0


def descendants(pid: int) -> list[int]:
    """Child processes, recursively (the SQLite writer runs in one)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [pid]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_kb(pid: int, field: str = "VmHWM") -> int:
    """A memory figure summed over a process and its descendants."""
    total = 0
    for p in [pid, *descendants(pid)]:
        with contextlib.suppress(OSError):
            total += rss_kb(p, field)
    return total


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return ordered[k]


@dataclass
class RunningServer:
    proc: subprocess.Popen[bytes]
    url: str
    token: str
    key_id: str
    secret: str

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def start_server(data_dir: Path, *extra: str, env: dict[str, str] | None = None) -> RunningServer:
    full_env = {**os.environ, **(env or {})}
    store = ["--data-dir", str(data_dir)] + [a for a in extra if a.startswith("--database-url")]
    created = subprocess.run([*RQS, "keys", "create", "--name", "bench", "--scope", "admin",
                              "--json", *store], check=True, capture_output=True, env=full_env)
    key = json.loads(created.stdout)
    port = free_port()
    proc = subprocess.Popen([*RQS, "serve", "--port", str(port), "--log-level", "warning",
                             "--data-dir", str(data_dir), *extra], env=full_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:  # a benchmark may wait for readiness; tests never do
        try:
            urllib.request.urlopen(url + "/healthz", timeout=1).read()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise RuntimeError(f"server did not start: {err}") from None
            time.sleep(0.05)
    return RunningServer(proc, url, key["token"], key["id"], key["secret"])


def write_section(name: str, markdown: str) -> None:
    """Replace this benchmark's section of docs/benchmarks.md, keeping the others."""
    start, end = f"<!-- bench:{name}:start -->", f"<!-- bench:{name}:end -->"
    text = DOCS.read_text() if DOCS.exists() else "# Benchmarks\n"
    block = f"{start}\n{markdown.strip()}\n{end}"
    if start in text and end in text:
        text = text[: text.index(start)] + block + text[text.index(end) + len(end):]
    else:
        text = text.rstrip() + "\n\n" + block + "\n"
    DOCS.write_text(text)


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({cpu}), Python {sys.version.split()[0]}"
