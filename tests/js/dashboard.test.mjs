// Unit tests of the dashboard's pure functions: `node --test tests/js/` (run by
// tests/test_dashboard.py as part of the suite).
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  consumerRows, formatCount, rate, rates, summarize, tailNext, tailStart, trim, typeRows,
} from "../../src/rqs/web/static/dashboard.js";

test("rate is the growth over the window, and needs two points", () => {
  assert.equal(rate([]), null);
  assert.equal(rate([{ t: 0, total: 5 }]), null);
  const points = [{ t: 0, total: 0 }, { t: 5, total: 100 }, { t: 10, total: 300 }, { t: 20, total: 1300 }];
  assert.equal(rate(points, 10), 100); // from t=10 to t=20
  assert.equal(rate(points, 100), 65); // the whole span
  assert.equal(rate(points, 1), 100); // nothing inside 1 s: the last two points
  assert.equal(rate([{ t: 0, total: 10 }, { t: 1, total: 4 }]), 0); // never negative
});

test("rates per interval and trimming to the history", () => {
  const points = [{ t: 0, total: 0 }, { t: 2, total: 10 }, { t: 3, total: 40 }];
  assert.deepEqual(rates(points), [{ t: 2, rate: 5 }, { t: 3, rate: 30 }]);
  assert.deepEqual(trim(points, 1.5), [{ t: 2, total: 10 }, { t: 3, total: 40 }]);
  assert.deepEqual(trim([]), []);
});

test("typeRows folds channels per type, busiest first", () => {
  const stats = { by_type: [
    { type: "SMS_INBOUND", channel: "Sms", ingested: 5, retained: 5 },
    { type: "EMAIL_CLICKED", channel: "Email", ingested: 9, retained: 8 },
    { type: "SMS_INBOUND", channel: "Mms", ingested: 6, retained: 1 },
  ] };
  assert.deepEqual(typeRows(stats), [
    { type: "SMS_INBOUND", channels: ["Sms", "Mms"], ingested: 11, retained: 6 },
    { type: "EMAIL_CLICKED", channels: ["Email"], ingested: 9, retained: 8 },
  ]);
  assert.deepEqual(typeRows({}), []);
});

test("summarize picks the fields a person looks for", () => {
  assert.equal(summarize({ type: "SMS_INBOUND", data: { message: "STOP", mobileNumber: "+1650" } }),
    "message=STOP  mobileNumber=+1650");
  assert.equal(summarize({ failureType: "EMAIL_CLICKED", riid: "7", campaignName: "Spring",
    customerId: "C1", recipient: "a@b.c" }), "recipient=a@b.c  riid=7  customerId=C1");
  assert.equal(summarize({ other: { nested: true } }), '{"other":{"nested":true}}');
  assert.equal(summarize([1, 2]), "[1,2]");
});

test("consumerRows lists cursors and subscriptions, most behind first, with their trouble", () => {
  const found = {
    cursors: [{ key_id: "rk_1", cursor: "type:linkClick", position: 10, lag: 5, polled: 10, skipped: 3 }],
    subscriptions: [
      { name: "s", callback: "cb", status: "ACTIVE", callback_status: "DISABLED", position: 2, lag: 13, pending: null },
      { name: "p", callback: "ok", status: "ACTIVE", callback_status: "ACTIVE", position: 9, lag: 0,
        pending: { attempts: 4, last_error: "HTTP 503" } },
      { name: "q", callback: "ok", status: "PAUSED", callback_status: "ACTIVE", position: 9, lag: 0, pending: null },
      { name: "r", callback: "ok", status: "ACTIVE", callback_status: "ACTIVE", position: 9, lag: 0,
        pending: { attempts: 0, last_error: null } },
    ],
  };
  assert.deepEqual(consumerRows(found), [
    { kind: "subscription", name: "s -> cb", lag: 13, position: 2, note: "callback disabled" },
    { kind: "cursor", name: "type:linkClick (rk_1)", lag: 5, position: 10, note: "3 lost to retention" },
    { kind: "subscription", name: "p -> ok", lag: 0, position: 9, note: "retrying (4 failed): HTTP 503" },
    { kind: "subscription", name: "q -> ok", lag: 0, position: 9, note: "paused" },
    { kind: "subscription", name: "r -> ok", lag: 0, position: 9, note: "" },
  ]);
  assert.deepEqual(consumerRows({}), []);
});

test("formatCount", () => {
  assert.equal(formatCount(1234567.4), "1,234,567");
  assert.equal(formatCount(null), "–");
  assert.equal(formatCount(NaN), "–");
});

test("the tail starts a little back, never behind retention", () => {
  assert.equal(tailStart(1000, 0, false), 950);
  assert.equal(tailStart(1000, 0, true), 0); // one type: further back
  assert.equal(tailStart(100000, 0, true), 98000);
  assert.equal(tailStart(1000, 990, false), 990);
  assert.equal(tailStart(10, 0, false), 0);
});

test("the tail follows next_index, and skips ahead of a stream faster than its pages", () => {
  assert.equal(tailNext({ next_index: 501, has_more: false }, "500", false), 500);
  assert.equal(tailNext({ next_index: 501, has_more: true }, "90000", false), 89950);
  assert.equal(tailNext({ next_index: 501, has_more: true }, "520", false), 500);
  assert.equal(tailNext({ next_index: 501, has_more: true }, null, false), 500);
});
