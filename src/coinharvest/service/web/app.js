// coinharvest dashboard: vanilla JS over the JSON API; charts are hand-drawn inline SVG.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const REFRESH_MS = 10000;
const state = { run: null, coin: null, metric: "price_usd", coins: [], latest: [] };

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
    else if (key === "text") node.textContent = value;
    else node.setAttribute(key, value);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

async function getJSON(url) {
  const response = await fetch(url, { headers: { Accept: "application/json" } });
  const body = await response.json().catch(() => ({}));
  if (!response.ok && response.status !== 503) {
    throw new Error(body.error || `${url}: HTTP ${response.status}`);
  }
  return body;
}

const compact = new Intl.NumberFormat("en-US", { notation: "compact", maximumFractionDigits: 2 });
const plain = new Intl.NumberFormat("en-US", { maximumFractionDigits: 2 });
const precise = new Intl.NumberFormat("en-US", { maximumSignificantDigits: 4 });

function fmtValue(value, metric = "") {
  if (value === null || value === undefined) return "–";
  const abs = Math.abs(value);
  let text;
  if (abs >= 1e6) text = compact.format(value);
  else if (abs >= 1) text = plain.format(value);
  else text = precise.format(value);
  if (metric.endsWith("_usd")) return "$" + text;
  if (metric.endsWith("_pct")) return (value > 0 ? "+" : "") + plain.format(value) + " %";
  return text;
}

function fmtAge(seconds) {
  if (seconds < 90) return `${Math.max(0, Math.round(seconds))} s`;
  if (seconds < 5400) return `${Math.round(seconds / 60)} min`;
  if (seconds < 172800) return `${Math.round(seconds / 3600)} h`;
  return `${Math.round(seconds / 86400)} d`;
}

function fmtDuration(seconds) {
  if (seconds === null || seconds === undefined) return "–";
  return seconds < 10 ? `${seconds.toFixed(2)} s` : `${seconds.toFixed(1)} s`;
}

function fmtTime(iso) {
  const at = new Date(iso);
  const sameDay = at.toDateString() === new Date().toDateString();
  const time = at.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit", second: "2-digit" });
  return sameDay ? time : `${at.toLocaleDateString()} ${time}`;
}

const humanMetric = (metric) => metric.replace(/_/g, " ").replace(/\busd\b/, "USD").replace(/\bpct\b/, "%");

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
  if (last) pills.push(el("span", { class: "pill", text: `last run ${last.status} · ${fmtTime(last.started_at)}` }));
  // A source whose circuit breaker is not closed: its connections keep failing.
  for (const [source, circuit] of Object.entries(health.sources || {})) {
    if (circuit === "closed") continue;
    const text = circuit === "open" ? `${source}: unreachable (circuit open)` : `${source}: probing`;
    pills.push(el("span", { class: `pill ${circuit === "open" ? "bad" : "warn"}`, text, "data-source": source }));
  }
  box.replaceChildren(...pills);
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
  box.replaceChildren(...symbols.map((symbol) => coinCard(symbol, bySymbol.get(symbol) || [])));
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
      return el("tr", { class: `metric${selected ? " selected" : ""}`, title: `${v.metric} from ${v.source} (${v.confidence} confidence${v.estimated ? ", estimated" : ""}), run ${v.run_id}`, onclick: () => selectSeries(symbol, v.metric) },
        el("td", { text: humanMetric(v.metric) }),
        el("td", { class: "v", text: fmtValue(v.value, v.metric) }),
        el("td", { class: "meta" }, `${v.source} · ${fmtAge(v.age_s)}`, el("span", { class: `conf ${v.confidence}` })));
    });
  const priceLine = el("div", { class: "price", title: price ? `from ${price.source}, ${fmtAge(price.age_s)} ago` : "", onclick: () => selectSeries(symbol, "price_usd") },
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
  body.replaceChildren(...runs.map((r) => el("tr", { class: r.run_id === state.run ? "selected" : "", "data-run": r.run_id, onclick: () => selectRun(r.run_id) },
    el("td", { class: "mono", text: r.run_id.slice(0, 8) }),
    el("td", { text: r.trigger }),
    el("td", {}, el("span", { class: `badge ${r.status}`, text: r.status })),
    el("td", { text: fmtTime(r.started_at) }),
    el("td", { class: "num", text: fmtDuration(r.duration_s) }),
    el("td", { class: "num", text: `${r.coins_ok}/${r.coins_total}` }),
    el("td", { class: "num", text: r.requests }),
    el("td", { class: "num", text: r.rate_limited }),
    el("td", { class: "num", text: r.retries }))));
}

async function selectRun(runId) {
  state.run = runId;
  for (const row of document.querySelectorAll("#runs tbody tr")) {
    row.classList.toggle("selected", row.dataset.run === runId);
  }
  const detail = await getJSON(`/api/runs/${encodeURIComponent(runId)}`);
  renderTimeline(detail);
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
  document.getElementById("timeline-title").textContent =
    `· ${run.run_id} · ${run.status} · ${fmtDuration(run.duration_s)} · ${detail.jobs.length} job attempts · max ${run.max_in_flight} in flight`;
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
  box.replaceChildren(drawTimeline(lanes, endT || 1));
}

function drawTimeline(lanes, endT) {
  const W = 1200, left = 110, right = 16, top = 24, rowH = 13, rowGap = 4, lanePad = 7;
  const x = (t) => left + (t / endT) * (W - left - right);
  let y = top;
  const laneBoxes = lanes.map((lane) => {
    const h = lane.rows * (rowH + rowGap) - rowGap + 2 * lanePad;
    const box = { lane, y, h };
    y += h + 6;
    return box;
  });
  const H = y + 4;
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "job timeline" });
  const step = niceStep(endT, 10);
  for (let t = 0; t <= endT + 1e-9; t += step) {
    root.append(svg("line", { class: "grid", x1: x(t), x2: x(t), y1: top - 4, y2: H - 4 }),
      svg("text", { x: x(t), y: 12, "text-anchor": "middle", text: `${+t.toFixed(3)} s` }));
  }
  for (const { lane, y: ly, h } of laneBoxes) {
    root.append(svg("rect", { class: "lane-bg", x: left - 4, y: ly, width: W - left - right + 8, height: h, rx: 4 }),
      svg("text", { class: "lane-label", x: 8, y: ly + h / 2 + 4, text: lane.source }),
      svg("text", { x: 8, y: ly + h / 2 + 17, text: `${lane.jobs.length} attempt${lane.jobs.length === 1 ? "" : "s"}` }));
    for (const job of lane.jobs) root.append(jobShape(job, x, ly + lanePad + job.row * (rowH + rowGap), rowH));
  }
  return root;
}

function jobShape(job, x, y, h) {
  const started = job.started_s;
  const ended = job.ended_s ?? started ?? job.queued_s;
  const waitEnd = started ?? ended;
  const g = svg("g", { class: "job", "data-status": job.status });
  const waited = (waitEnd - job.queued_s).toFixed(3);
  const ran = started !== null && job.ended_s !== null ? (job.ended_s - started).toFixed(3) : "–";
  g.append(svg("title", { text: `${job.source} job ${job.job_id} attempt ${job.attempt}: ${job.symbols}\nwaited ${waited} s, ran ${ran} s → ${job.status}${job.error ? "\n" + job.error : ""}` }));
  if (waitEnd > job.queued_s) {
    g.append(svg("rect", { class: started === null ? "bar deferred" : "wait", x: x(job.queued_s), y: y + 3, width: Math.max(1, x(waitEnd) - x(job.queued_s)), height: h - 6, rx: 2 }));
  }
  if (started !== null) {
    g.append(svg("rect", { class: `bar ${job.status}`, x: x(started), y, width: Math.max(2, x(ended) - x(started)), height: h, rx: 2 }));
  }
  return g;
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

function selectSeries(symbol, metric) {
  state.coin = symbol;
  state.metric = metric;
  fillSelectors();
  renderCoins();
  loadHistory();
}

async function loadHistory() {
  const box = document.getElementById("history");
  if (!state.coin) return;
  const url = `/api/history/${encodeURIComponent(state.coin)}?metric=${encodeURIComponent(state.metric)}`;
  try {
    const data = await getJSON(url);
    box.replaceChildren(data.points.length ? drawHistory(data) : el("p", { class: "empty", text: `No ${humanMetric(state.metric)} stored for ${state.coin} yet.` }));
  } catch (error) {
    box.replaceChildren(el("p", { class: "empty", text: String(error.message || error) }));
  }
}

function drawHistory(data) {
  const W = 640, H = 260, left = 70, right = 16, top = 16, bottom = 28;
  const pts = data.points.filter((p) => p.value !== null).map((p) => ({ t: Date.parse(p.observed_at), v: p.value, p }));
  const root = svg("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": `${data.symbol} ${data.metric} history` });
  if (!pts.length) return root;
  let [t0, t1] = [Math.min(...pts.map((p) => p.t)), Math.max(...pts.map((p) => p.t))];
  let [v0, v1] = [Math.min(...pts.map((p) => p.v)), Math.max(...pts.map((p) => p.v))];
  if (t1 === t0) { t0 -= 60000; t1 += 60000; }
  const pad = (v1 - v0) * 0.1 || Math.abs(v1) * 0.01 || 1;
  v0 -= pad; v1 += pad;
  const x = (t) => left + ((t - t0) / (t1 - t0)) * (W - left - right);
  const y = (v) => top + (1 - (v - v0) / (v1 - v0)) * (H - top - bottom);
  const vStep = niceStep(v1 - v0, 5);
  for (let v = Math.ceil(v0 / vStep) * vStep; v <= v1; v += vStep) {
    root.append(svg("line", { class: "grid", x1: left, x2: W - right, y1: y(v), y2: y(v) }),
      svg("text", { x: left - 6, y: y(v) + 4, "text-anchor": "end", text: fmtValue(v, data.metric) }));
  }
  for (const [t, anchor] of [[t0, "start"], [(t0 + t1) / 2, "middle"], [t1, "end"]]) {
    root.append(svg("text", { x: x(t), y: H - 8, "text-anchor": anchor, text: fmtTime(new Date(t).toISOString()) }));
  }
  const line = pts.map((p, i) => `${i ? "L" : "M"}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`).join(" ");
  root.append(svg("path", { class: "area", d: `${line} L${x(pts.at(-1).t).toFixed(1)},${H - bottom} L${x(pts[0].t).toFixed(1)},${H - bottom} Z` }),
    svg("path", { class: "line", d: line }));
  for (const p of pts.slice(-200)) {
    root.append(svg("circle", { class: "dot", cx: x(p.t), cy: y(p.v), r: 3 },
      svg("title", { text: `${fmtTime(p.p.observed_at)}: ${fmtValue(p.v, data.metric)} (${p.p.source}, ${p.p.confidence})` })));
  }
  return root;
}

// ------------------------------------------------------------------ refresh loop

function showError(error) {
  const box = document.getElementById("health");
  box.replaceChildren(el("span", { class: "pill bad", text: `cannot reach the API: ${error.message || error}` }));
}

async function refresh() {
  try {
    const [health, coins, latest, runs, limits] = await Promise.all([
      getJSON("/health"), getJSON("/api/coins"), getJSON("/api/latest"), getJSON("/api/runs?limit=25"),
      getJSON("/api/limits"),
    ]);
    renderHealth(health);
    renderLimits(limits);
    state.coins = coins.coins;
    state.latest = latest.values;
    renderCoins();
    renderRuns(runs.runs);
    fillSelectors();
    const chosen = runs.runs.find((r) => r.run_id === state.run) || runs.runs.find((r) => r.status !== "running") || runs.runs[0];
    await Promise.all([chosen ? selectRun(chosen.run_id) : null, loadHistory()]);
  } catch (error) {
    showError(error);
  }
}

document.getElementById("hist-coin").addEventListener("change", (e) => selectSeries(e.target.value, state.metric));
document.getElementById("hist-metric").addEventListener("change", (e) => selectSeries(state.coin, e.target.value));
refresh();
setInterval(refresh, REFRESH_MS);
