"""/dashboard: served self-contained, and its script reads what the real APIs return.

The script's functions run under node (``node --test tests/js/``, and against a live
server's responses here); CI needs node, a local run without it skips these.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest

from rqs.web import dashboard
from tests.support import Server

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "src" / "rqs" / "web" / "static" / "dashboard.js"
JS = ROOT / "tests" / "js"


def _node() -> str:
    found = shutil.which("node")
    if found is None:
        if os.environ.get("CI") == "true":
            pytest.fail("node is needed to test the dashboard's script")
        pytest.skip("node is not installed")
    return found


def _jsdom() -> None:
    """The DOM tests' one dependency, installed from tests/js/package-lock.json."""
    if not (JS / "node_modules" / "jsdom").is_dir():
        npm = shutil.which("npm")
        if npm is None:
            if os.environ.get("CI") == "true":
                pytest.fail("npm is needed to install the dashboard tests' jsdom")
            pytest.skip("npm is not installed")
        subprocess.run([npm, "ci", "--silent", "--no-audit", "--no-fund"], cwd=JS,
                       check=True, timeout=600)


def test_script_unit_tests_pass() -> None:
    done = subprocess.run([_node(), "--test", "tests/js/dashboard.test.mjs"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# fail 0" in done.stdout and "# pass 0" not in done.stdout


def test_the_page_works_in_a_dom_against_a_live_server(server: Server) -> None:
    node = _node()
    _jsdom()
    c = server.client()
    clicks = [{"failureType": "EMAIL_CLICKED", "riid": str(i)} for i in range(3)]
    assert c.post("/v1/events", json=clicks).status_code == 200
    hostile = {"message": "<img src=x onerror=alert(1)>"}
    inbound = [{"type": "SMS_INBOUND", "data": {"message": "STOP"}},
               {"type": "SMS_INBOUND", "data": hostile},
               {"type": "<b>HOSTILE</b><img src=x onerror=alert(2)>", "data": {}}]
    assert c.post("/v1/events", json=inbound).status_code == 200
    assert c.get("/api/rest/v19/async/pollByType", params={"type": "linkClick", "limit": 2},
                 headers={"accept": "application/json"}).status_code == 200
    reader = server.new_key("read")
    env = {**os.environ, "RQS_DASHBOARD_URL": server.url,
           "RQS_DASHBOARD_TOKEN": reader.token}
    done = subprocess.run([node, "--test", "tests/js/dashboard.dom.test.mjs"], cwd=ROOT,
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "# pass 2" in done.stdout and "# skipped 0" in done.stdout, done.stdout


def test_page_and_script_are_served_without_credentials_and_self_contained(
        server: Server) -> None:
    page = httpx.get(server.url + "/dashboard")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert policy == dashboard.csp()
    sheet = _style_sheet(page.text)  # what a browser hashes to match style-src
    digest = base64.b64encode(hashlib.sha256(sheet.encode()).digest()).decode()
    assert f"style-src 'sha256-{digest}'" in policy
    assert "'unsafe-inline'" not in policy and "script-src 'self'" in policy
    assert ' style=' not in page.text  # inline style attributes would be refused
    assert '<script type="module" src="dashboard.js"></script>' in page.text
    script = httpx.get(server.url + "/dashboard.js")
    assert script.status_code == 200
    assert script.headers["content-type"].startswith("text/javascript")
    assert script.content == SCRIPT.read_bytes()
    for body in (page.text, script.text):  # nothing fetched from elsewhere
        assert "http://" not in body and "https://" not in body
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "DOMParser", "document.write"):
        assert sink not in script.text  # sender data is written as text only


def _style_sheet(html: str) -> str:
    sheets: list[str] = []

    class Styles(HTMLParser):
        inside = False

        def handle_starttag(self, tag: str, attrs: object) -> None:
            self.inside = tag == "style"

        def handle_endtag(self, tag: str) -> None:
            self.inside = False

        def handle_data(self, data: str) -> None:
            if self.inside:
                sheets.append(data)

    Styles().feed(html)
    assert len(sheets) == 1
    return sheets[0]


def test_script_reads_the_live_apis(server: Server) -> None:
    node = _node()
    c = server.client()
    items = [{"failureType": "EMAIL_CLICKED", "riid": str(i), "campaignName": "Spring"}
             for i in range(3)]
    items += [{"type": "SMS_INBOUND", "data": {"message": "STOP", "mobileNumber": "+1650"}}]
    assert c.post("/v1/events", json=items).status_code == 200
    polled = c.get("/api/rest/v19/async/pollByType", params={"type": "linkClick", "limit": 2},
                   headers={"accept": "application/json"})
    assert polled.status_code == 200
    stats = c.get("/v1/stats").json()
    readers = c.get("/v1/consumers").json()
    tail = c.get("/v1/events", params={"after": 0, "limit": 10}).json()

    program = f"""
      import {{ consumerRows, summarize, typeRows }} from {json.dumps(SCRIPT.as_uri())};
      const [stats, readers, tail] = JSON.parse(process.argv[1]);
      console.log(JSON.stringify({{
        consumers: consumerRows(readers),
        types: typeRows(stats),
        summaries: tail.events.map((e) => summarize(e.payload)),
      }}));
    """
    done = subprocess.run([node, "--input-type=module", "-e", program,
                           json.dumps([stats, readers, tail])],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    cursor = f"type:linkClick ({server.admin.key.id})"
    assert seen["consumers"] == [{"kind": "cursor", "name": cursor, "lag": 2, "position": 2,
                                  "note": ""}]
    assert [(t["type"], t["ingested"]) for t in seen["types"]] == [
        ("EMAIL_CLICKED", 3), ("SMS_INBOUND", 1)]
    assert seen["summaries"] == ["riid=0  campaignName=Spring", "riid=1  campaignName=Spring",
                                 "riid=2  campaignName=Spring",
                                 "message=STOP  mobileNumber=+1650"]
