// The dashboard page in a DOM (jsdom) against a live rqs: run by tests/api/test_dashboard.py,
// which starts the server, stores the events below and passes its URL and a read token.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { JSDOM } from "jsdom";
import { start } from "../../src/rqs/web/static/dashboard.js";

const base = process.env.RQS_DASHBOARD_URL;
const token = process.env.RQS_DASHBOARD_TOKEN;
const html = readFileSync(new URL("../../src/rqs/web/static/dashboard.html", import.meta.url), "utf8");
const HOSTILE_TYPE = "<b>HOSTILE</b><img src=x onerror=alert(2)>";
const HOUR = { stats: 3600e3, tail: 3600e3, consumers: 3600e3 }; // only the first refresh

function open() {
  const dom = new JSDOM(html, { url: base });
  const doc = dom.window.document;
  const fetchFn = (path, init) => fetch(new URL(path, base), init);
  return { dom, doc, storage: dom.window.sessionStorage, fetchFn };
}

const rows = (doc, id) => [...doc.getElementById(id).querySelectorAll("tr")]
  .map((tr) => [...tr.querySelectorAll("td")].map((td) => td.textContent));

test("the dashboard draws stats, types, consumers and the tail; sender data stays text",
  { skip: !base && "run by tests/api/test_dashboard.py" }, async () => {
    const { dom, doc, storage, fetchFn } = open();
    const page = start(doc, fetchFn, storage, HOUR);
    assert.equal(page.ready, null);
    assert.equal(doc.getElementById("login").hidden, false);
    assert.equal(doc.getElementById("main").hidden, true);

    doc.getElementById("token").value = token;
    doc.getElementById("login-form").dispatchEvent(new dom.window.Event("submit", { cancelable: true }));
    await page.ready;
    try {
      assert.equal(doc.getElementById("status").className, "ok", doc.getElementById("status").textContent);
      assert.equal(doc.getElementById("main").hidden, false);
      assert.equal(doc.getElementById("domain").textContent, "default");
      assert.equal(doc.getElementById("newest").textContent, "6");
      assert.equal(doc.getElementById("retained").textContent, "6");
      assert.deepEqual(rows(doc, "types").map((r) => r.slice(0, 4)), [
        ["EMAIL_CLICKED", "Email", "3", "3"], ["SMS_INBOUND", "Sms", "2", "2"],
        [HOSTILE_TYPE, "Unknown", "1", "1"]]);
      const consumers = rows(doc, "consumers");
      assert.equal(consumers.length, 1);
      assert.deepEqual(consumers[0].slice(2, 4), ["2", "4"]);
      assert.match(consumers[0][1], /^type:linkClick \(rk_/);
      const tail = rows(doc, "tail");
      assert.deepEqual(tail.map((r) => r[0]), ["6", "5", "4", "3", "2", "1"]); // newest first
      assert.equal(tail[0][2], HOSTILE_TYPE);
      assert.equal(tail[1][2], "SMS_INBOUND");
      assert.match(tail[1][4], /message=<img src=x onerror=alert\(1\)>/);
      // Sender data (payloads, type names in tables and in the filter) stays text.
      assert.equal(doc.querySelectorAll("img, b:not(#domain)").length, 0, "sender data became markup");
      const options = [...doc.getElementById("type").options].map((o) => o.value);
      assert.deepEqual(options, ["", "EMAIL_CLICKED", "SMS_INBOUND", HOSTILE_TYPE]);
    } finally {
      page.stop();
    }
  });

test("a key that is refused is forgotten and the login comes back",
  { skip: !base && "run by tests/api/test_dashboard.py" }, async () => {
    const { doc, storage, fetchFn } = open();
    storage.setItem("rqs-dashboard-token", "rk_nobody.wrong");
    const page = start(doc, fetchFn, storage, HOUR);
    await page.ready;
    assert.equal(doc.getElementById("status").className, "bad");
    assert.notEqual(doc.getElementById("status").textContent, "");
    assert.equal(doc.getElementById("login").hidden, false);
    assert.equal(storage.getItem("rqs-dashboard-token"), null);
    page.stop();
  });
