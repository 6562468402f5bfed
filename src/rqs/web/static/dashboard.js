// The live dashboard: polls the same APIs a client would (GET /v1/stats, /v1/events and
// /v1/consumers) with a read key the user types in, and draws what they return.
//
// The functions exported before `start` are pure (no DOM, no network): tests/js runs them
// under node. Everything an event carries is sender data, so the page writes it with
// textContent only, never as HTML.

export const TAIL_ROWS = 50;
export const RATE_WINDOW_S = 10;
export const HISTORY_S = 120;

// --- pure helpers -------------------------------------------------------------------------

// Events per second over the last `windowS` seconds of (seconds, ingested total) points.
export function rate(points, windowS = RATE_WINDOW_S) {
  if (points.length < 2) return null;
  const last = points[points.length - 1];
  let first = points[0];
  for (const p of points) {
    if (last.t - p.t <= windowS) { first = p; break; }
  }
  if (first === last) first = points[points.length - 2];
  const dt = last.t - first.t;
  return dt > 0 ? Math.max(last.total - first.total, 0) / dt : null;
}

// The per-second rates between consecutive points, for the chart.
export function rates(points) {
  const out = [];
  for (let i = 1; i < points.length; i++) {
    const dt = points[i].t - points[i - 1].t;
    if (dt > 0) out.push({ t: points[i].t, rate: Math.max(points[i].total - points[i - 1].total, 0) / dt });
  }
  return out;
}

// Keep the points of the last `historyS` seconds.
export function trim(points, historyS = HISTORY_S) {
  if (!points.length) return points;
  const newest = points[points.length - 1].t;
  return points.filter((p) => newest - p.t <= historyS);
}

// /v1/stats' by_type folded per type (a type may appear under several channels),
// busiest first.
export function typeRows(stats) {
  const byType = new Map();
  for (const row of stats.by_type || []) {
    const seen = byType.get(row.type) || { type: row.type, channels: [], ingested: 0, retained: 0 };
    seen.channels.push(row.channel);
    seen.ingested += row.ingested;
    seen.retained += row.retained;
    byType.set(row.type, seen);
  }
  return [...byType.values()].sort((a, b) => b.ingested - a.ingested || a.type.localeCompare(b.type));
}

const SUMMARY_FIELDS = ["message", "recipient", "emailAddress", "mobileNumber", "riid",
  "customerId", "campaignName", "campaignId"];

// One line about an event's payload: the first fields a person would look for.
export function summarize(payload) {
  if (payload === null || typeof payload !== "object" || Array.isArray(payload)) {
    return JSON.stringify(payload);
  }
  const data = payload.data && typeof payload.data === "object" ? payload.data : payload;
  const parts = [];
  for (const field of SUMMARY_FIELDS) {
    const v = data[field] ?? payload[field];
    if (v !== undefined && v !== null && v !== "" && typeof v !== "object") {
      parts.push(`${field}=${v}`);
    }
    if (parts.length === 3) break;
  }
  return parts.length ? parts.join("  ") : JSON.stringify(payload).slice(0, 120);
}

// Rows of the consumers table from GET /v1/consumers: cursors and subscriptions, most
// behind first, each with what is wrong with it, if anything.
export function consumerRows(found) {
  const rows = [];
  for (const c of found.cursors || []) {
    rows.push({ kind: "cursor", name: `${c.cursor} (${c.key_id})`, lag: c.lag, position: c.position,
      note: c.skipped > 0 ? `${c.skipped} lost to retention` : "" });
  }
  for (const s of found.subscriptions || []) {
    let note = "";
    if (s.callback_status !== "ACTIVE") note = "callback disabled";
    else if (s.status !== "ACTIVE") note = "paused";
    else if (s.pending && s.pending.attempts > 0) {
      note = `retrying (${s.pending.attempts} failed): ${s.pending.last_error || ""}`.trim();
    }
    rows.push({ kind: "subscription", name: `${s.name} -> ${s.callback}`, lag: s.lag,
      position: s.position, note });
  }
  return rows.sort((a, b) => b.lag - a.lag || a.name.localeCompare(b.name));
}

export function formatCount(n) {
  if (n === null || n === undefined || Number.isNaN(n)) return "–";
  return Math.round(n).toLocaleString("en-US");
}

// --- the page -------------------------------------------------------------------------------

const TOKEN_KEY = "rqs-dashboard-token";

// Where the tail starts: a few indexes back (further for one type: the last few indexes
// may hold none of it), never behind what retention removed.
export function tailStart(newest, purgedThrough, filtered) {
  const back = filtered ? TAIL_ROWS * 40 : TAIL_ROWS;
  return Math.max(newest - back, purgedThrough || 0, 0);
}

// After a page of the tail: where the next one starts. When more was waiting than a page
// holds, skip ahead to the newest few, so a fast stream never leaves the tail behind.
export function tailNext(page, newestHeader, filtered) {
  const next = page.next_index - 1;
  if (!page.has_more) return next;
  const newest = Number(newestHeader);
  return Number.isFinite(newest) ? Math.max(next, tailStart(newest, 0, filtered)) : next;
}

export function start(doc, fetchFn, storage, every = { stats: 2000, tail: 1000, consumers: 5000 }) {
  // Refreshes run on timers, one of each kind at a time; `page.stop()` ends them. URLs are
  // relative to the page, so it also works behind a proxy that adds a path prefix.
  const $ = (id) => doc.getElementById(id);
  const state = { points: [], after: null, type: "", timers: [], rows: [], view: 0, busy: new Set() };

  // A JSON API call: its response and body. A refused key is forgotten; any other error
  // but the statuses in `allow` is thrown with the server's message.
  const api = async (path, allow = []) => {
    const token = storage.getItem(TOKEN_KEY);
    const r = await fetchFn(path, { headers: { authorization: `Bearer ${token}`, accept: "application/json" } });
    const body = await r.json().catch(() => ({}));
    if (r.status === 401 || r.status === 403) {
      storage.removeItem(TOKEN_KEY);
      throw Object.assign(new Error(body.message || `HTTP ${r.status}`), { auth: true });
    }
    if (!r.ok && !allow.includes(r.status)) throw new Error(body.message || `HTTP ${r.status}`);
    return { r, body };
  };

  const text = (el, value) => { el.textContent = value; return el; };
  const cell = (tr, value, cls) => {
    const td = text(doc.createElement("td"), value);
    if (cls) td.className = cls;
    tr.appendChild(td);
    return td;
  };

  function showError(err) {
    text($("status"), err.message);
    $("status").className = "bad";
    if (err.auth) stop();
  }

  // Back to the login, with nothing of the last key's domain left on the page.
  function stop() {
    state.timers.forEach(clearInterval);
    state.timers = [];
    state.view += 1;
    Object.assign(state, { points: [], after: null, type: "", rows: [] });
    for (const id of ["types", "consumers", "tail"]) $(id).replaceChildren();
    const select = $("type");
    while (select.options.length > 1) select.remove(1);
    select.value = "";
    for (const id of ["domain", "newest", "retained", "oldest", "rate"]) text($(id), "–");
    $("line").setAttribute("points", "");
    $("login").hidden = false;
    $("main").hidden = true;
  }

  async function refreshStats() {
    const view = state.view;
    const { body: stats } = await api("v1/stats");
    if (view !== state.view) return;
    const now = Date.now() / 1000;
    state.points = trim([...state.points, { t: now, total: stats.ingested }]);
    text($("domain"), stats.domain);
    text($("newest"), formatCount(stats.newest_index));
    text($("retained"), formatCount(stats.retained));
    text($("oldest"), stats.oldest_index === null ? "–" : formatCount(stats.oldest_index));
    text($("rate"), formatCount(rate(state.points)));
    drawChart(rates(state.points));
    const body = $("types");
    body.replaceChildren();
    const rows = typeRows(stats);
    const top = rows.length ? rows[0].ingested : 0;
    for (const r of rows) {
      const tr = doc.createElement("tr");
      cell(tr, r.type);
      cell(tr, r.channels.join(", "));
      cell(tr, formatCount(r.ingested), "num");
      cell(tr, formatCount(r.retained), "num");
      const bar = doc.createElement("div");
      bar.className = "bar";
      bar.style.width = `${top ? (100 * r.ingested) / top : 0}%`;
      cell(tr, "", "barcell").appendChild(bar);
      body.appendChild(tr);
    }
    const select = $("type");
    const known = new Set([...select.options].map((o) => o.value));
    for (const r of rows) {
      if (!known.has(r.type)) {
        const option = doc.createElement("option");
        option.value = r.type;
        option.textContent = r.type;
        select.appendChild(option);
      }
    }
    if (state.after === null) state.after = tailStart(stats.newest_index, stats.purged_through, !!state.type);
    $("status").className = "ok";
    text($("status"), `live, ${new Date().toLocaleTimeString()}`);
  }

  async function refreshTail() {
    if (state.after === null) return;
    const view = state.view;
    const q = new URLSearchParams({ after: String(state.after), limit: "500" });
    if (state.type) q.set("type", state.type);
    const { r, body: page } = await api(`v1/events?${q}`, [410]);
    if (view !== state.view) return; // the filter changed while this was under way
    if (r.status === 410) { state.after = null; return; } // retention passed us: start again
    state.after = tailNext(page, r.headers.get("X-Newest-Index"), !!state.type);
    if (!page.events.length) return;
    state.rows = [...page.events.reverse(), ...state.rows].slice(0, TAIL_ROWS);
    const body = $("tail");
    body.replaceChildren();
    for (const e of state.rows) {
      const tr = doc.createElement("tr");
      cell(tr, String(e.index), "num");
      cell(tr, e.received_at.replace("T", " ").replace("Z", ""));
      cell(tr, e.type);
      cell(tr, e.channel);
      cell(tr, summarize(e.payload), "payload");
      body.appendChild(tr);
    }
  }

  async function refreshConsumers() {
    const view = state.view;
    const { body: found } = await api("v1/consumers");
    const rows = consumerRows(found);
    if (view !== state.view) return;
    const body = $("consumers");
    body.replaceChildren();
    for (const c of rows) {
      const tr = doc.createElement("tr");
      cell(tr, c.kind);
      cell(tr, c.name);
      cell(tr, formatCount(c.position), "num");
      cell(tr, formatCount(c.lag), c.lag > 0 ? "num warn" : "num");
      cell(tr, c.note, c.note ? "warn" : "");
      body.appendChild(tr);
    }
    $("no-consumers").hidden = rows.length > 0;
  }

  function drawChart(series) {
    const w = 600, h = 80;
    const top = Math.max(1, ...series.map((p) => p.rate));
    const t1 = series.length ? series[series.length - 1].t : 0;
    const pts = series.map((p) => `${(w * (1 - (t1 - p.t) / HISTORY_S)).toFixed(1)},${(h - (h * p.rate) / top).toFixed(1)}`);
    $("line").setAttribute("points", pts.join(" "));
    text($("peak"), `peak ${formatCount(top)}/s`);
  }

  // One refresh of a kind at a time: a slow one is not overtaken by the next tick.
  const guard = (fn) => async () => {
    if (state.busy.has(fn)) return;
    state.busy.add(fn);
    try { await fn(); } catch (err) { showError(err); } finally { state.busy.delete(fn); }
  };
  const stats = guard(refreshStats), tail = guard(refreshTail), readers = guard(refreshConsumers);

  function run() {
    $("login").hidden = true;
    $("main").hidden = false;
    const first = Promise.all([stats().then(tail), readers()]);
    state.timers = [
      setInterval(stats, every.stats),
      setInterval(tail, every.tail),
      setInterval(readers, every.consumers),
    ];
    return first;
  }

  const page = { ready: null, stop };
  $("login-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    storage.setItem(TOKEN_KEY, $("token").value.trim());
    $("token").value = "";
    page.ready = run();
  });
  $("logout").addEventListener("click", () => { storage.removeItem(TOKEN_KEY); stop(); });
  $("type").addEventListener("change", () => {
    state.view += 1; // answers to requests made for the old filter are dropped
    state.type = $("type").value;
    state.rows = [];
    state.after = null;
    $("tail").replaceChildren();
    page.ready = stats().then(tail);
  });
  if (storage.getItem(TOKEN_KEY)) page.ready = run(); else stop();
  // `ready` settles once the first refresh of every panel is drawn (tests wait on it).
  return page;
}

// In a browser, the page loads this module and it starts; under node (tests) it does not.
if (typeof document !== "undefined" && document.getElementById("login-form")) {
  start(document, window.fetch.bind(window), window.sessionStorage);
}
