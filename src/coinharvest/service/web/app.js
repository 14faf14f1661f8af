// coinharvest dashboard: vanilla JS over the JSON API; charts are hand-drawn inline SVG.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
// ?refresh=<seconds> overrides the refresh period (at least 1 s).
const REFRESH_MS = 1000 * Math.max(1, Number(new URLSearchParams(location.search).get("refresh")) || 10);
const FETCH_TIMEOUT_MS = 8000;
const RANGES = [
  { key: "1h", label: "1 h", seconds: 3600, every_s: 10 },
  { key: "24h", label: "24 h", seconds: 86400, every_s: 30 },
  { key: "7d", label: "7 d", seconds: 7 * 86400, every_s: 120 },
  { key: "30d", label: "30 d", seconds: 30 * 86400, every_s: 300 },
  { key: "all", label: "all", seconds: null, every_s: 300 },
];
const state = {
  run: null, coin: null, metric: "price_usd", coins: [], latest: [],
  range: "24h", maxPointsAccepted: true, historyKey: null, historyAt: 0,
  lastOk: null, stale: false, staleError: "",
  replication: null, replicationAt: 0,
};

// ------------------------------------------------------------------ helpers

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  return fill(node, attrs, children);
}

function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  return fill(node, attrs, children);
}

function fill(node, attrs, children) {
  for (const [key, value] of Object.entries(attrs)) {
    if (value === undefined || value === null) continue;
    if (key === "onclick") node.addEventListener("click", value);
    else if (key === "onactivate") activatable(node, value);
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

/** Click, Enter or Space runs `action`; the node is focusable. */
function activatable(node, action) {
  if (!node.hasAttribute("tabindex")) node.setAttribute("tabindex", "0");
  node.addEventListener("click", action);
  node.addEventListener("keydown", (event) => {
    if (event.target !== node || (event.key !== "Enter" && event.key !== " ")) return;
    event.preventDefault();
    action(event);
  });
}

/** Replace `box`'s children, keeping the keyboard focus on the equivalent new node. */
function replaceKeepingFocus(box, nodes) {
  const focused = document.activeElement;
  const key = focused && box.contains(focused) ? focused.dataset.focusKey : undefined;
  box.replaceChildren(...nodes);
  if (key) box.querySelector(`[data-focus-key="${CSS.escape(key)}"]`)?.focus();
}

async function getJSON(url) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), FETCH_TIMEOUT_MS);
  let response;
  try {
    response = await fetch(url, { headers: { Accept: "application/json" }, signal: controller.signal });
  } catch (error) {
    const reason = error.name === "AbortError" ? "no answer in time" : "connection failed";
    throw Object.assign(new Error(`${url}: ${reason}`), { unreachable: true });
  } finally {
    clearTimeout(timer);
  }
  const body = await response.json().catch(() => ({}));
  // /health answers 503 with its body when the scheduler or the database is down: that is
  // news to show. Elsewhere 502/503/504 (a proxy, the database down) mean no fresh data.
  if (response.status === 503 && url === "/health") return body;
  if ([502, 503, 504].includes(response.status)) {
    throw Object.assign(new Error(`${url}: HTTP ${response.status}`), { unreachable: true, status: response.status });
  }
  if (!response.ok) {
    throw Object.assign(new Error(body.error || `${url}: HTTP ${response.status}`), { status: response.status });
  }
  return body;
}

// ------------------------------------------------------------------ number formats
// Each metric has a kind (the same mapping as coinharvest/units.py): integers exactly with
// thousands separators, money in dollars (compact only from a million up), durations as
// durations, percentages as percentages, anything else as a plain number.

const INTEGER_METRIC = /(^|_)(height|heights|count|counts|total|txns|tx|events|nodes|online|blocks)(_|$)/;

function metricKind(metric = "") {
  if (/_usd$/.test(metric)) return "money";
  if (/(_s|_seconds)$/.test(metric)) return "duration";
  if (/(_pct|_percent)$/.test(metric)) return "percent";
  if (INTEGER_METRIC.test(metric)) return "integer";
  return "number";
}

const nf = (options) => new Intl.NumberFormat("en-US", options);
const grouped = nf({ maximumFractionDigits: 0 });
const cents = nf({ minimumFractionDigits: 2, maximumFractionDigits: 2 });
const compact = nf({ notation: "compact", maximumFractionDigits: 2 });
const compactMoney = nf({ notation: "compact", minimumFractionDigits: 2, maximumFractionDigits: 2 });
const plain = nf({ maximumFractionDigits: 2 });
const precise = nf({ maximumSignificantDigits: 4 });

function fmtMoney(value) {
  const abs = Math.abs(value);
  const sign = value < 0 ? "-" : "";
  if (abs >= 1e6) return `${sign}$${compactMoney.format(abs)}`;
  if (abs >= 1) return `${sign}$${cents.format(abs)}`;
  if (abs === 0) return "$0";
  return `${sign}$${precise.format(abs)}`;
}

function fmtNumber(value) {
  const abs = Math.abs(value);
  if (abs >= 1e6) return compact.format(value);
  if (abs >= 1) return plain.format(value);
  return precise.format(value);
}

function fmtSeconds(seconds) {
  if (seconds === null || seconds === undefined || Number.isNaN(seconds)) return "–";
  const sign = seconds < 0 ? "-" : "";
  const s = Math.abs(seconds);
  if (s < 1) return `${sign}${s.toFixed(2)} s`;
  if (s < 9.95) return `${sign}${s.toFixed(1)} s`;
  // Round to the unit shown first, then split: 119.6 s is "2 min", never "1 min 60 s".
  const secs = Math.round(s);
  if (secs < 60) return `${sign}${secs} s`;
  if (secs < 600) {
    const m = Math.floor(secs / 60), rest = secs % 60;
    return rest ? `${sign}${m} min ${rest} s` : `${sign}${m} min`;
  }
  const mins = Math.round(s / 60);
  if (mins < 60) return `${sign}${mins} min`;
  if (mins < 1440) {
    const h = Math.floor(mins / 60), m = mins % 60;
    return m ? `${sign}${h} h ${m} min` : `${sign}${h} h`;
  }
  const hours = Math.round(s / 3600), d = Math.floor(hours / 24), h = hours % 24;
  return h ? `${sign}${d} d ${h} h` : `${sign}${d} d`;
}

function fmtPercent(value, metric = "") {
  const signed = /change/.test(metric) && value > 0 ? "+" : "";
  return `${signed}${cents.format(value)}%`;
}

function fmtValue(value, metric = "") {
  if (value === null || value === undefined) return "–";
  switch (metricKind(metric)) {
    case "money": return fmtMoney(value);
    case "duration": return fmtSeconds(value);
    case "percent": return fmtPercent(value, metric);
    case "integer": return grouped.format(Math.round(value));
    default: return fmtNumber(value);
  }
}

/** An axis label: as precise as the step between ticks needs. */
function fmtTick(value, metric, step) {
  const kind = metricKind(metric);
  if (kind === "duration") return fmtSeconds(value);
  const decimals = Math.max(0, Math.min(8, -Math.floor(Math.log10(step || 1))));
  if (kind === "percent") return `${value.toFixed(decimals)}%`;
  const abs = Math.abs(value);
  let text;
  if (abs >= 1e6) {
    const digits = Math.max(1, Math.min(21, Math.floor(Math.log10(abs)) - Math.floor(Math.log10(step || 1)) + 1));
    text = nf({ notation: "compact", maximumSignificantDigits: digits }).format(abs);
  } else {
    text = nf({ minimumFractionDigits: kind === "integer" ? 0 : decimals, maximumFractionDigits: decimals }).format(abs);
  }
  const sign = value < 0 ? "-" : "";
  return kind === "money" ? `${sign}$${text}` : `${sign}${text}`;
}

function fmtAge(seconds) {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

const fmtDuration = fmtSeconds;

// ------------------------------------------------------------------ times, all in UTC

const pad2 = (n) => String(n).padStart(2, "0");
const utcDate = (at) => `${at.getUTCFullYear()}-${pad2(at.getUTCMonth() + 1)}-${pad2(at.getUTCDate())}`;
const utcClock = (at, seconds = true) =>
  `${pad2(at.getUTCHours())}:${pad2(at.getUTCMinutes())}${seconds ? ":" + pad2(at.getUTCSeconds()) : ""}`;

/** A short UTC time: the clock alone today (UTC), with the date otherwise. */
function fmtTime(iso) {
  const at = new Date(iso);
  return utcDate(at) === utcDate(new Date()) ? utcClock(at) : `${utcDate(at)} ${utcClock(at, false)}`;
}

/** The full UTC date and time, for tooltips. */
const fmtTimeFull = (iso) => `${utcDate(new Date(iso))} ${utcClock(new Date(iso))} UTC`;

const humanMetric = (metric) => metric.replace(/_/g, " ").replace(/\busd\b/, "USD").replace(/\bpct\b/, "%").replace(/ s$/, "");

function niceStep(span, target) {
  const raw = span / Math.max(1, target);
  const power = 10 ** Math.floor(Math.log10(raw || 1));
  const unit = [1, 2, 2.5, 5, 10].find((m) => m * power >= raw) || 10;
  return unit * power;
}

// ------------------------------------------------------------------ health

function renderHealth(health) {
  const box = document.getElementById("health");
  const last = health.last_run;
  const pills = [
    el("span", { class: `pill ${health.status === "ok" ? "good" : "bad"}`, text: health.status }),
    el("span", { class: "pill", text: `scheduler: ${health.scheduler}` }),
    el("span", { class: `pill ${health.database === "reachable" ? "good" : "bad"}`, text: `database ${health.database}` }),
  ];
  if (last) {
    pills.push(el("span", { class: "pill", title: `started ${fmtTimeFull(last.started_at)}`,
      text: `last run ${last.status} · ${fmtTime(last.started_at)} UTC` }));
  }
  // A source whose circuit breaker is not closed: its connections keep failing.
  for (const [source, circuit] of Object.entries(health.sources || {})) {
    if (circuit === "closed") continue;
    const text = circuit === "open" ? `${source}: unreachable (circuit open)` : `${source}: probing`;
    pills.push(el("span", { class: `pill ${circuit === "open" ? "bad" : "warn"}`, text, "data-source": source }));
  }
  const role = health.replication && health.replication.role;
  if (role) pills.push(el("span", { class: "pill", "data-role": role, text: `this replica: ${role}` }));
  box.replaceChildren(...pills);
}

// ------------------------------------------------------------------ replicas

/** The Replicas panel: shown only when /health says mode "replicas" (several processes on
 * one PostgreSQL elect a leader); a single process is its own leader and needs no panel. */
function renderReplicas(replication) {
  const section = document.getElementById("replicas-section");
  const shown = Boolean(replication && replication.mode === "replicas");
  section.hidden = !shown;
  state.replication = shown ? replication : null;
  state.replicationAt = Date.now();
  if (!shown) return;
  const leader = replication.leader;
  const note = document.getElementById("replicas-leader");
  note.className = `leader-note ${leader ? "good" : "bad"}`;
  note.textContent = leader
    ? `leader: ${leader.host} since ${fmtTime(leader.since)} UTC`
    : "no leader: no live replica leads (scheduled ticks are not running)";
  note.title = leader ? `${leader.replica_id}, leads since ${fmtTimeFull(leader.since)}` : "";
  document.getElementById("replicas-stale-after").textContent = fmtSeconds(replication.stale_after_s);
  const body = document.querySelector("#replicas tbody");
  if (!replication.replicas.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No replica has written a heartbeat yet." })));
    return;
  }
  body.replaceChildren(...replication.replicas.map((r) => replicaRow(r, replication, leader)));
}

function replicaRow(r, replication, leader) {
  const leads = leader !== null && leader !== undefined && leader.replica_id === r.replica_id;
  const self = r.replica_id === replication.replica_id;
  const role = r.stale ? "stale" : leads ? "leader" : "follower";
  const api = /^https?:\/\//i.test(r.http_url || "")  // never a javascript: link from the database
    ? el("a", { href: r.http_url, text: r.http_url }) : el("span", { class: "muted", text: r.http_url || "–" });
  return el("tr", { "data-replica": r.replica_id, class: `${role}${self ? " self" : ""}`,
    title: r.stale ? `no heartbeat for over ${fmtSeconds(replication.stale_after_s)}: dead, hung or cut off` : "" },
    el("td", { class: "mono", title: r.replica_id, text: `${r.host}:${r.pid}${self ? " (this)" : ""}` }),
    el("td", {}, el("span", { class: `badge ${role}`, text: role })),
    el("td", { class: "num age", "data-age": r.heartbeat_age_s, title: fmtTimeFull(r.heartbeat_at),
      text: `${fmtSeconds(r.heartbeat_age_s)} ago` }),
    el("td", { class: "opt", text: r.leader_since ? fmtTime(r.leader_since) : "–",
      title: r.leader_since ? fmtTimeFull(r.leader_since) : "" }),
    el("td", { class: "opt", text: fmtTime(r.started_at), title: fmtTimeFull(r.started_at) }),
    el("td", { class: "opt" }, api));
}

/** Heartbeat ages keep counting between refreshes (from /health's age at its answer). */
function tickReplicaAges() {
  if (!state.replication) return;
  const elapsed = (Date.now() - state.replicationAt) / 1000;
  for (const cell of document.querySelectorAll("#replicas td.age")) {
    cell.textContent = `${fmtSeconds(Number(cell.dataset.age) + elapsed)} ago`;
  }
}

// ------------------------------------------------------------------ freshness

/** "updated N s ago", or, while the API cannot be reached, the data greys out and says how old it is. */
function renderFreshness() {
  const box = document.getElementById("freshness");
  document.body.classList.toggle("stale", state.stale);
  const age = state.lastOk === null ? null : (Date.now() - state.lastOk) / 1000;
  if (state.stale) {
    box.className = "pill bad";
    box.textContent = age === null
      ? "API unreachable · no data yet"
      : `API unreachable · last update ${fmtAge(age)} ago`;
    box.title = state.staleError;
  } else {
    box.className = "pill";
    box.textContent = age === null ? "loading…" : `updated ${fmtAge(age)} ago`;
    box.title = state.lastOk === null ? "" : `last update ${fmtTimeFull(new Date(state.lastOk).toISOString())}`;
  }
}

// ------------------------------------------------------------------ latest values

function renderCoins() {
  const box = document.getElementById("coins");
  const bySymbol = new Map();
  for (const value of state.latest) {
    if (!bySymbol.has(value.symbol)) bySymbol.set(value.symbol, []);
    bySymbol.get(value.symbol).push(value);
  }
  const known = state.coins.map((c) => c.symbol);
  const symbols = [...known, ...[...bySymbol.keys()].filter((s) => !known.includes(s))];
  if (!symbols.length) {
    box.replaceChildren(el("p", { class: "empty", text: "No coins configured." }));
    return;
  }
  replaceKeepingFocus(box, symbols.map((symbol) => coinCard(symbol, bySymbol.get(symbol) || [])));
}

const LOW_CONFIDENCE = "Approximate: low confidence (derived from estimated or weaker inputs).";

function valueCell(v) {
  const low = v.confidence === "low";
  return el("td", { class: `v${low ? " approx" : ""}`, "data-kind": metricKind(v.metric),
    title: low ? LOW_CONFIDENCE : null }, (low ? "≈ " : "") + fmtValue(v.value, v.metric));
}

function coinCard(symbol, values) {
  const coin = state.coins.find((c) => c.symbol === symbol);
  const get = (metric) => values.find((v) => v.metric === metric);
  const price = get("price_usd");
  const change = get("price_change_24h_pct");
  const head = el("h3", {}, el("span", {}, symbol, el("span", { class: "name", text: coin ? coin.name : "" })),
    change ? el("span", { class: `change ${change.value >= 0 ? "up" : "down"}`, text: fmtValue(change.value, change.metric) }) : null);
  const rows = values
    .filter((v) => v.metric !== "price_usd")
    .map((v) => {
      const selected = state.coin === symbol && state.metric === v.metric;
      const shown = fmtValue(v.value, v.metric);
      const confidence = v.confidence === "low" ? `${LOW_CONFIDENCE}\n` : "";
      return el("tr", {
        class: `metric${selected ? " selected" : ""}`, "data-metric": v.metric, "data-focus-key": `${symbol}/${v.metric}`,
        role: "button", // the card's table only lays out its rows: each row is a button
        "aria-label": `${symbol} ${humanMetric(v.metric)} ${shown}${v.confidence === "low" ? " (approximate)" : ""}: chart its history`,
        "aria-pressed": selected ? "true" : "false",
        title: `${confidence}${v.metric} from ${v.source} (${v.confidence} confidence${v.estimated ? ", estimated" : ""}), observed ${fmtTimeFull(v.observed_at)}, run ${v.run_id}`,
        onactivate: () => selectSeries(symbol, v.metric) },
        el("td", { text: humanMetric(v.metric).replace(/ USD$/, "") }),
        valueCell(v),
        el("td", { class: "meta" }, `${v.source} · ${fmtAge(v.age_s)}`,
          el("span", { class: `conf ${v.confidence}`, "aria-hidden": "true" })));
    });
  const priceLine = el("div", { class: "price", "data-focus-key": `${symbol}/price_usd`, role: "button",
    "aria-pressed": state.coin === symbol && state.metric === "price_usd" ? "true" : "false",
    title: price ? `from ${price.source}, observed ${fmtTimeFull(price.observed_at)} (${fmtAge(price.age_s)} ago)` : "",
    "aria-label": `${symbol} price ${price ? fmtValue(price.value, "price_usd") : "unknown"}: chart its history`,
    onactivate: () => selectSeries(symbol, "price_usd") },
    price ? fmtValue(price.value, "price_usd") : "no data yet");
  return el("div", { class: "card", "data-symbol": symbol }, head, priceLine, el("table", {}, el("tbody", {}, rows)));
}

// ------------------------------------------------------------------ runs

function renderRuns(runs) {
  const body = document.querySelector("#runs tbody");
  if (!runs.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 9, class: "empty", text: "No runs yet." })));
    return;
  }
  replaceKeepingFocus(body, runs.map((r) => el("tr", {
    class: r.run_id === state.run ? "selected" : "", "data-run": r.run_id, "data-focus-key": r.run_id,
    "aria-label": `run ${r.run_id.slice(0, 8)}, ${r.status}, started ${fmtTimeFull(r.started_at)}, ${r.rate_limited} rate limited: show its timeline`,
    "aria-current": r.run_id === state.run ? "true" : null,
    onactivate: () => selectRun(r.run_id).catch(() => {}) },
    el("td", { class: "mono", text: r.run_id.slice(0, 8) }),
    el("td", { class: "opt", text: r.trigger }),
    el("td", {}, el("span", { class: `badge ${r.status}`, text: r.status })),
    el("td", { text: fmtTime(r.started_at), title: fmtTimeFull(r.started_at) }),
    el("td", { class: "num", text: fmtDuration(r.duration_s) }),
    el("td", { class: "num", text: `${r.coins_ok}/${r.coins_total}` }),
    el("td", { class: "num opt", text: grouped.format(r.requests) }),
    el("td", { class: `num${r.rate_limited ? " hot" : ""}`, text: grouped.format(r.rate_limited) }),
    el("td", { class: "num opt", text: grouped.format(r.retries) }))));
}

async function selectRun(runId) {
  state.run = runId;
  for (const row of document.querySelectorAll("#runs tbody tr")) {
    row.classList.toggle("selected", row.dataset.run === runId);
    if (row.dataset.run === runId) row.setAttribute("aria-current", "true");
    else row.removeAttribute("aria-current");
  }
  const detail = await getJSON(`/api/runs/${encodeURIComponent(runId)}`);
  if (state.run === runId) renderTimeline(detail);
}

// ------------------------------------------------------------------ timeline

function laneRows(jobs) {
  // Greedy interval partitioning: jobs that overlap in time go on separate rows of a lane.
  const rows = [];
  for (const job of jobs) {
    const end = job.ended_s ?? job.started_s ?? job.queued_s;
    let row = rows.findIndex((lastEnd) => lastEnd <= job.queued_s + 1e-6);
    if (row < 0) { row = rows.length; rows.push(end); } else rows[row] = end;
    job.row = row;
  }
  return Math.max(1, rows.length);
}

function renderTimeline(detail) {
  const box = document.getElementById("timeline");
  const run = detail.run;
  const limited = detail.jobs.filter((j) => j.status === "rate_limited").length;
  const failed = detail.jobs.filter((j) => j.status === "failed").length;
  document.getElementById("timeline-title").textContent =
    `· ${run.run_id} · started ${fmtTimeFull(run.started_at)} · ${run.status} · ${fmtDuration(run.duration_s)}` +
    ` · ${detail.jobs.length} job attempts · ${limited} × 429 · ${failed} failed · max ${run.max_in_flight} in flight`;
  renderRunCoins(detail.coins);
  if (!detail.jobs.length) {
    box.replaceChildren(el("p", { class: "empty", text: "This run has no recorded jobs." }));
    return;
  }
  const sources = [...new Set(detail.jobs.map((j) => j.source))];
  const lanes = sources.map((source) => {
    const jobs = detail.jobs.filter((j) => j.source === source).sort((a, b) => a.queued_s - b.queued_s);
    return { source, jobs, rows: laneRows(jobs) };
  });
  const endT = Math.max(run.duration_s || 0, ...detail.jobs.map((j) => Math.max(j.ended_s ?? 0, j.started_s ?? 0, j.queued_s)));
  const scroller = el("div", { class: "timeline-scroll", tabindex: "0", "aria-label": "job timeline (scrolls sideways)" },
    drawTimeline(lanes, endT || 1, run, box.clientWidth));
  box.replaceChildren(scroller);
}

// The narrowest a bar or mark may be drawn (px: the timeline is drawn at its pixel size).
const MIN_BAR = 3, MIN_MARK = 9;

function drawTimeline(lanes, endT, run, width) {
  // drawn at its pixel size (text stays 11 px); at least 760 wide: narrower screens scroll it
  const W = Math.max(760, Math.round(width || 1200)), left = 110, right = 22, top = 24, rowH = 13, rowGap = 5, lanePad = 7;
  const x = (t) => left + (t / endT) * (W - left - right);
  let y = top;
  const laneBoxes = lanes.map((lane) => {
    const h = lane.rows * (rowH + rowGap) - rowGap + 2 * lanePad;
    const box = { lane, y, h };
    y += h + 6;
    return box;
  });
  const H = y + 4;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `job timeline of run ${run.run_id}, seconds since its start (${fmtTimeFull(run.started_at)})` });
  const step = niceStep(endT, 10);
  root.append(svg("text", { x: 8, y: 12, text: "s since start" }));
  for (let t = 0; t <= endT + 1e-9; t += step) {
    root.append(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: top - 4, y2: H - 4 }),
      svg("text", { x: x(t), y: 12, "text-anchor": "middle", text: `${+t.toFixed(3)} s` }));
  }
  const marks = [];
  for (const { lane, y: ly, h } of laneBoxes) {
    root.append(svg("rect", { class: "lane-bg", x: left - 4, y: ly, width: W - left - right + 8, height: h, rx: 4 }),
      svg("text", { class: "lane-label", x: 8, y: ly + h / 2 + 4, text: lane.source }),
      svg("text", { x: 8, y: ly + h / 2 + 17, text: `${lane.jobs.length} attempt${lane.jobs.length === 1 ? "" : "s"}` }));
    for (const job of lane.jobs) {
      const shape = jobShape(job, x, ly + lanePad + job.row * (rowH + rowGap), rowH, run);
      // 429s and failures on top, so a neighbour's bar never hides them
      if (job.status === "rate_limited" || job.status === "failed") marks.push(shape);
      else root.append(shape);
    }
  }
  root.append(...marks);
  return root;
}

function jobShape(job, x, y, h, run) {
  const started = job.started_s;
  const ended = job.ended_s ?? started ?? job.queued_s;
  const waitEnd = started ?? ended;
  const g = svg("g", { class: `job ${job.status}`, "data-status": job.status });
  const waited = (waitEnd - job.queued_s).toFixed(3);
  const ran = started !== null && job.ended_s !== null ? (job.ended_s - started).toFixed(3) : "–";
  const at = new Date(Date.parse(run.started_at) + 1000 * (started ?? job.queued_s)).toISOString();
  const label = job.status === "rate_limited" ? "429 rate limited" : job.status;
  g.append(svg("title", { text: `${job.source} job ${job.job_id} attempt ${job.attempt}: ${job.symbols}\nstarted ${fmtTimeFull(at)}\nwaited ${waited} s, ran ${ran} s → ${label}${job.error ? "\n" + job.error : ""}` }));
  if (waitEnd > job.queued_s) {
    g.append(svg("rect", { class: started === null ? "bar deferred" : "wait", x: x(job.queued_s), y: y + 3, width: Math.max(1, x(waitEnd) - x(job.queued_s)), height: h - 6, rx: 2 }));
  }
  if (started !== null) {
    const notable = job.status === "rate_limited" || job.status === "failed";
    const width = Math.max(notable ? MIN_MARK : MIN_BAR, x(ended) - x(started));
    g.append(svg("rect", { class: `bar ${job.status}`, x: x(started), y, width, height: h, rx: 2 }));
    if (notable) g.append(markShape(job.status, x(started) + width, y + h / 2, h));
  } else if (job.status === "failed") {
    g.append(markShape("failed", x(ended), y + h / 2, h));
  }
  return g;
}

/** A 429 is a diamond, a failure a triangle, at the end of its bar: visible whatever the scale. */
function markShape(status, cx, cy, h) {
  const r = h / 2 + 1.5;
  const d = status === "rate_limited"
    ? `M${cx},${cy - r} L${cx + r},${cy} L${cx},${cy + r} L${cx - r},${cy} Z`
    : `M${cx - r},${cy + r - 1} L${cx + r},${cy + r - 1} L${cx},${cy - r} Z`;
  return svg("path", { class: `mark ${status}`, d });
}

function renderRunCoins(coins) {
  const box = document.getElementById("run-coins");
  box.replaceChildren(...coins.map((c) => el("span", { class: "chip", title: c.error || `${c.sources} · ${fmtDuration(c.duration_s)}` },
    c.symbol, el("span", { class: `badge ${c.status}`, text: c.status }))));
}

// ------------------------------------------------------------------ sources: limits and quotas

function fmtRate(perMinute) {
  if (perMinute === null || perMinute === undefined) return "unlimited";
  return perMinute >= 100 ? plain.format(Math.round(perMinute)) : precise.format(+perMinute.toPrecision(3));
}

function limitCell(now, ceiling, text, what) {
  const below = now !== null && ceiling !== null && now < ceiling;
  return el("td", { class: `num${below ? " below" : ""}`, text,
    title: below ? `${what}: learned below its ceiling` : `${what}: at its ceiling` });
}

function quotaCell(used, allowed, period) {
  if (allowed === null || allowed === undefined) {
    return el("td", { class: "quota muted", text: used === null || used === undefined ? "–" : `${plain.format(used)} sent` });
  }
  const count = used === null || used === undefined ? "–" : plain.format(used);
  const meter = el("meter", { min: 0, max: Math.max(1, allowed), value: used || 0, low: allowed * 0.5, high: allowed * 0.8, optimum: 0 });
  return el("td", { class: "quota", title: `${count} of ${plain.format(allowed)} requests ${period}` },
    el("span", { class: "quota-box" }, meter, el("span", { text: `${count} / ${plain.format(allowed)}` })));
}

function renderLimits(data) {
  const body = document.querySelector("#limits tbody");
  document.getElementById("limits-note").textContent = data.live
    ? "live, from this service's engine"
    : "where the next run starts (learned limits stored in the database)";
  if (!data.sources.length) {
    body.replaceChildren(el("tr", {}, el("td", { colspan: 6, class: "empty", text: "No sources known here." })));
    return;
  }
  body.replaceChildren(...data.sources.map((s) => el("tr", { "data-source": s.source },
    el("td", { text: s.adaptive ? s.source : `${s.source} (fixed)`, title: s.adaptive ? "adaptive limits" : "ADAPTIVE_LIMITS=off" }),
    limitCell(s.concurrency, s.max_concurrency, `${s.concurrency} / ${s.max_concurrency}`, "in-flight limit"),
    limitCell(s.rate_per_minute, s.max_rate_per_minute,
      s.max_rate_per_minute === null ? "unlimited" : `${fmtRate(s.rate_per_minute)} / ${fmtRate(s.max_rate_per_minute)}`, "start rate"),
    el("td", { class: "num", text: s.ceiling_per_minute === null ? "–" : fmtRate(s.ceiling_per_minute),
      title: "the rate per minute the upstream last refused (429) or announced" }),
    quotaCell(s.quota_used_day, s.quota_today, "today (UTC)"),
    quotaCell(s.quota_used_month, s.quota_per_month, "this month (UTC)"))));
}

// ------------------------------------------------------------------ history

function fillSelectors() {
  const coinSel = document.getElementById("hist-coin");
  const metricSel = document.getElementById("hist-metric");
  const symbols = state.coins.map((c) => c.symbol);
  if (!state.coin && symbols.length) state.coin = symbols[0];
  coinSel.replaceChildren(...symbols.map((s) => el("option", { value: s, text: s })));
  coinSel.value = state.coin;
  const metrics = [...new Set(state.latest.filter((v) => v.symbol === state.coin).map((v) => v.metric))].sort();
  if (!metrics.includes(state.metric)) metrics.unshift(state.metric);
  metricSel.replaceChildren(...metrics.map((m) => el("option", { value: m, text: humanMetric(m) })));
  metricSel.value = state.metric;
}

function renderRangePicker() {
  const box = document.getElementById("hist-range");
  box.replaceChildren(...RANGES.map((r) => el("button", {
    type: "button", class: "range", "data-range": r.key, "data-focus-key": r.key,
    "aria-pressed": r.key === state.range ? "true" : "false",
    "aria-label": r.seconds === null ? "whole history" : `last ${r.label}`,
    onclick: () => selectRange(r.key) }, r.label)));
}

function selectRange(key) {
  state.range = key;
  for (const button of document.querySelectorAll("#hist-range button")) {
    button.setAttribute("aria-pressed", button.dataset.range === key ? "true" : "false");
  }
  loadHistory(true).catch(() => {});
}

function selectSeries(symbol, metric) {
  state.coin = symbol;
  state.metric = metric;
  fillSelectors();
  renderCoins();
  loadHistory(true).catch(() => {});
}

/** The chart's width in CSS pixels: the most points worth asking for. */
function chartWidth() {
  const width = Math.round(document.getElementById("history").clientWidth || 640);
  return Math.max(100, Math.min(2000, width));
}

function historyUrl(range, maxPoints) {
  const params = new URLSearchParams({ metric: state.metric });
  if (range.seconds !== null) params.set("since", range.key);
  if (maxPoints) params.set("max_points", String(maxPoints));
  return `/api/history/${encodeURIComponent(state.coin)}?${params}`;
}

/** Fetch the visible range of the chosen series, at most one point per pixel; again only
 *  when it changed or its range's refresh period has passed (`force`: now). */
async function loadHistory(force = false) {
  const box = document.getElementById("history");
  if (!state.coin) return;
  const range = RANGES.find((r) => r.key === state.range) || RANGES[1];
  const width = chartWidth();
  const key = `${state.coin}|${state.metric}|${range.key}|${width}`;
  if (!force && key === state.historyKey && Date.now() - state.historyAt < range.every_s * 1000) return;
  state.historyKey = key;
  state.historyAt = Date.now();
  let data;
  try {
    try {
      data = await getJSON(historyUrl(range, state.maxPointsAccepted ? width : null));
    } catch (error) {
      if (error.status !== 422 || !state.maxPointsAccepted) throw error;
      state.maxPointsAccepted = false; // an API without ?max_points=: ask by range only
      data = await getJSON(historyUrl(range, null));
    }
  } catch (error) {
    state.historyKey = null;
    if (!error.unreachable) box.replaceChildren(el("p", { class: "empty", text: String(error.message || error) }));
    throw error;
  }
  if (key !== `${state.coin}|${state.metric}|${state.range}|${chartWidth()}`) return; // superseded
  const what = range.seconds === null ? "" : ` in the last ${range.label}`;
  box.replaceChildren(data.points.length
    ? drawHistory(data, range, width)
    : el("p", { class: "empty", text: `No ${humanMetric(state.metric)} stored for ${state.coin}${what}.` }));
}

/** At most `n` points: the first of each of `n` equal slices (when the API did not thin them). */
function thin(points, n) {
  if (points.length <= n) return points;
  const out = [];
  const every = points.length / n;
  for (let i = 0; i < n; i++) out.push(points[Math.floor(i * every)]);
  out.push(points.at(-1));
  return out;
}

function drawHistory(data, range, width) {
  const W = Math.max(320, width), H = 260, left = 78, right = 16, top = 16, bottom = 40;
  const pts = thin(data.points.filter((p) => p.value !== null), W)
    .map((p) => ({ t: Date.parse(p.observed_at), v: p.value, p }));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img",
    "aria-label": `${data.symbol} ${humanMetric(data.metric)} history, ${range.seconds === null ? "all of it" : "last " + range.label}, times in UTC` });
  if (!pts.length) return root;
  let [t0, t1] = [Math.min(...pts.map((p) => p.t)), Math.max(...pts.map((p) => p.t))];
  // up to now; back to the range's start, or to the first point if the data starts later
  // (a young database's few minutes are not squeezed into a corner of 30 days)
  if (range.seconds !== null) {
    t1 = Math.max(t1, Date.now());
    t0 = Math.max(t1 - range.seconds * 1000, t0 - (t1 - t0) * 0.05);
  }
  let [v0, v1] = [Math.min(...pts.map((p) => p.v)), Math.max(...pts.map((p) => p.v))];
  if (t1 === t0) { t0 -= 60000; t1 += 60000; }
  const pad = (v1 - v0) * 0.1 || Math.abs(v1) * 0.01 || 1;
  v0 -= pad; v1 += pad;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (W - left - right);
  const y = (v) => top + (1 - (v - v0) / (v1 - v0)) * (H - top - bottom);
  const vStep = niceStep(v1 - v0, 5);
  for (let v = Math.ceil(v0 / vStep) * vStep; v <= v1; v += vStep) {
    root.append(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", text: fmtTick(v, data.metric, vStep) }));
  }
  const ticks = Math.max(2, Math.min(6, Math.floor((W - left - right) / 120)));
  const long = t1 - t0 > 86400000;
  for (let i = 0; i <= ticks; i++) {
    const t = t0 + ((t1 - t0) * i) / ticks;
    const at = new Date(t);
    const anchor = i === 0 ? "start" : i === ticks ? "end" : "middle";
    root.append(svg("line", { class: "grid tick", x1: x(t), x2: x(t), y1: H - bottom, y2: H - bottom + 4 }),
      svg("text", { x: x(t), y: H - bottom + 16, "text-anchor": anchor,
        text: long ? `${utcDate(at).slice(5)} ${utcClock(at, false)}` : utcClock(at, t1 - t0 < 3 * 3600000) }));
  }
  const starts = range.seconds !== null && t0 > Date.now() - range.seconds * 1000 + 60000
    ? ` · stored data starts ${fmtTime(new Date(pts[0].t).toISOString())}` : "";
  const note = starts + (data.downsampled ? ` · downsampled: 1 point per ${fmtSeconds(data.bucket_s)}` : "");
  root.append(svg("text", { class: "axis-title", x: W - right, y: H - 4, "text-anchor": "end", text: `time (UTC)${note}` }));
  const line = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  root.append(svg("path", { class: "area", d: `${line} L${x(pts.at(-1).t).toFixed(1)},${H - bottom} L${x(pts[0].t).toFixed(1)},${H - bottom} Z` }),
    svg("path", { class: "line", d: line }));
  const dots = pts.length <= W / 6 ? pts : [pts.at(-1)];
  for (const p of dots) {
    root.append(svg("circle", { class: `dot${p.p.confidence === "low" ? " approx" : ""}`, cx: x(p.t), cy: y(p.v), r: 3 },
      svg("title", { text: `${fmtTimeFull(p.p.observed_at)}: ${fmtValue(p.v, data.metric)} (${p.p.source}, ${p.p.confidence} confidence)` })));
  }
  return root;
}

// ------------------------------------------------------------------ refresh loop

function markReachable(ok, error) {
  if (ok) {
    state.lastOk = Date.now();
    state.stale = false;
    state.staleError = "";
  } else if (error && error.unreachable) {
    state.stale = true;
    state.staleError = String(error.message || error);
  }
  renderFreshness();
}

let refreshing = false;

async function refresh() {
  if (refreshing) return;
  refreshing = true;
  try {
    const [health, coins, latest, runs, limits] = await Promise.all([
      getJSON("/health"), getJSON("/api/coins"), getJSON("/api/latest"), getJSON("/api/runs?limit=25"),
      getJSON("/api/limits"),
    ]);
    if (!Array.isArray(coins.coins) || !Array.isArray(latest.values) || !Array.isArray(runs.runs)) {
      throw new Error("the API answered without the expected data");
    }
    renderHealth(health);
    renderReplicas(health.replication);
    renderLimits(limits);
    state.coins = coins.coins;
    state.latest = latest.values;
    renderCoins();
    renderRuns(runs.runs);
    fillSelectors();
    markReachable(true);  // only once the answers were usable
    const chosen = runs.runs.find((r) => r.run_id === state.run) || runs.runs.find((r) => r.status !== "running") || runs.runs[0];
    const onlyUnreachable = (error) => { if (error.unreachable) throw error; };
    await Promise.all([chosen ? selectRun(chosen.run_id).catch(onlyUnreachable) : null, loadHistory().catch(onlyUnreachable)]);
  } catch (error) {
    markReachable(false, error.unreachable ? error : null);
    if (!error.unreachable) showError(error);
  } finally {
    refreshing = false;
  }
}

function showError(error) {
  const box = document.getElementById("health");
  box.replaceChildren(el("span", { class: "pill bad", text: `API error: ${error.message || error}` }));
}

document.getElementById("hist-coin").addEventListener("change", (e) => selectSeries(e.target.value, state.metric));
document.getElementById("hist-metric").addEventListener("change", (e) => selectSeries(state.coin, e.target.value));
document.getElementById("refresh-period").textContent = `${REFRESH_MS / 1000} s`;
let resizeTimer = null;
window.addEventListener("resize", () => {
  clearTimeout(resizeTimer);
  resizeTimer = setTimeout(() => loadHistory().catch(() => {}), 300);
});
renderRangePicker();
renderFreshness();
refresh();
setInterval(refresh, REFRESH_MS);
setInterval(() => { renderFreshness(); tickReplicaAges(); }, 1000);
