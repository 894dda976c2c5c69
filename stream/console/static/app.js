// geosentry operator console: plain JS, no build step, no external resources.
"use strict";
const KINDS = ["pick", "detection", "anomaly", "event", "health"];
const TABLE = {pick: "picks", detection: "detections", anomaly: "anomalies", event: "events",
               health: "health"};
const MAX_ROWS = 200;
const SVGNS = "http://www.w3.org/2000/svg";
const model = {stations: new Map(), alerts: {}, version: 0, selected: null, waveS: 300,
               sse: 0, map: null};
KINDS.forEach(k => { model.alerts[k] = []; });

function $(sel) { return document.querySelector(sel); }
function el(tag, attrs, text) {
  const e = tag.startsWith("svg:") ? document.createElementNS(SVGNS, tag.slice(4))
                                   : document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}
async function getJSON(url) {
  const r = await fetch(url, {cache: "no-store"});
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}
function hms(iso) { return iso ? iso.replace("T", " ").replace(/\.(\d{3})\d*Z$/, ".$1") : "–"; }
function dur(s) {
  if (s === null || s === undefined) return "–";
  const a = Math.abs(s);
  if (a < 1) return (s * 1000).toFixed(0) + " ms";
  if (a < 120) return s.toFixed(1) + " s";
  if (a < 7200) return (s / 60).toFixed(1) + " min";
  if (a < 172800) return (s / 3600).toFixed(1) + " h";
  return (s / 86400).toFixed(0) + " d";
}
function num(x, d) { return typeof x === "number" ? x.toFixed(d) : "–"; }

// ---- stations -----------------------------------------------------------------------------
function renderStations() {
  const tbody = $("#stations tbody");
  tbody.replaceChildren();
  const rows = [...model.stations.values()].sort((a, b) => a.key.localeCompare(b.key));
  for (const s of rows) {
    const tr = el("tr", {"data-station": s.key});
    if (s.key === model.selected) tr.classList.add("selected");
    tr.append(el("td", {}, s.key));
    const st = el("td", {class: "state " + s.state}, s.state);
    tr.append(st, el("td", {}, hms(s.last_sample)), el("td", {}, dur(s.data_latency_s)),
      el("td", {}, s.arrival_age_s === null ? "–" : dur(s.arrival_age_s) + " ago"),
      el("td", {}, s.gaps), el("td", {}, s.rate_hz.map(r => r + " Hz").join(", ")),
      el("td", {}, s.detectors.join(", ") || "–"), el("td", {}, s.alerts));
    tr.addEventListener("click", () => selectStation(s.key));
    tbody.append(tr);
  }
  const silent = rows.filter(s => s.state !== "ok").length;
  $("#station-count").textContent = rows.length + " stations" +
    (silent ? ", " + silent + " not ok" : "");
}

// ---- alerts -------------------------------------------------------------------------------
function alertCells(kind, a) {
  const d = a.details || {};
  const sta = a.station === "*" ? (d.stations ? "network: " + d.stations.join(",") : "network")
                                : a.network + "." + a.station;
  if (kind === "pick") return [hms(a.time), sta, a.phase || "–", num(a.score, 2), dur(a.latency_s)];
  if (kind === "event") {
    const o = d.origin || {}, m = (d.magnitudes || [])[0];
    const note = d.deleted ? " (deleted)" : (d.update ? " (update " + d.update + ")" : "");
    return [hms(o.time || a.time) + note, num(o.latitude, 3),
            num(o.longitude, 3), num(o.depth_km, 1) + " km", m ? m.type + " " + num(m.value, 1) : "–"];
  }
  if (kind === "health") {
    const what = d.detail || d.artefact || (d.duration_s ? dur(d.duration_s) : "");
    return [hms(a.time), sta, d.event || a.model.name, what];
  }
  return [hms(a.time), sta, d.detector || a.model.name, num(a.score, 2), dur(a.latency_s)];
}
function renderAlerts(kind, fresh) {
  const tbody = $("#" + TABLE[kind] + " tbody");
  tbody.replaceChildren();
  for (const a of model.alerts[kind]) {
    const tr = el("tr", {"data-id": a.id});
    if (fresh && fresh.has(a.id)) tr.classList.add("fresh");
    alertCells(kind, a).forEach(c => tr.append(el("td", {}, c)));
    tr.addEventListener("click", () => showDetails(a.id));
    tbody.append(tr);
  }
  $(`.count[data-kind="${kind}"]`).textContent = model.alerts[kind].length
    ? model.alerts[kind].length + " latest" : "none yet";
}
async function showDetails(id) {
  const a = await getJSON("/api/alerts/" + encodeURIComponent(id));
  const d = a.details || {};
  $("#details-title").textContent = a.kind + " · " + (a.station === "*" ? "network" :
    a.network + "." + a.station) + (a.phase ? " · " + a.phase : "");
  const facts = [["time", hms(a.time)], ["score", a.score + " (threshold " + a.threshold + ")"],
                 ["model", a.model.name + " " + a.model.version], ["channel", a.channel || "–"],
                 ["emitted", hms(a.emitted_at)], ["latency", dur(a.latency_s)], ["id", a.id]];
  for (const [k, v] of Object.entries(d)) {
    if (typeof v !== "object" || v === null) facts.push([k, String(v)]);
    else if (Array.isArray(v) && v.every(x => typeof x !== "object")) facts.push([k, v.join(", ")]);
  }
  const dl = $("#details-facts");
  dl.replaceChildren();
  facts.forEach(([k, v]) => dl.append(el("dt", {}, k), el("dd", {}, v)));
  $("#details-json").textContent = JSON.stringify(a, null, 2);
  $("#details").hidden = false;
}

// ---- waveform -----------------------------------------------------------------------------
async function selectStation(key) {
  model.selected = key;
  $("#wave-station").textContent = key + " · last " + (model.waveS / 60).toFixed(0) + " min of data";
  renderStations();
  await refreshWave();
}
let waveBusy = false;
async function refreshWave() {
  if (!model.selected || waveBusy) return;
  waveBusy = true;
  try { drawWave(await getJSON("/api/waveform?station=" + encodeURIComponent(model.selected))); }
  catch (err) {   // not heard from yet: drawn once its data arrives (stations event)
    drawWave({station: model.selected, traces: {}, alerts: []});
  }
  finally { waveBusy = false; }
}
function drawWave(w) {
  const svg = $("#wave"), W = 1000, H = 320, left = 70, right = 12, top = 18, bottom = 24;
  svg.replaceChildren();
  const names = Object.keys(w.traces);
  let t1 = -Infinity;
  names.forEach(n => { const t = w.traces[n].t_s; if (t.length) t1 = Math.max(t1, t[t.length - 1]); });
  if (!names.length || !isFinite(t1)) {
    svg.append(el("svg:text", {x: 20, y: 40, class: "mute"}, "no samples kept for " + w.station));
    return;
  }
  const t0 = t1 - model.waveS;
  const x = t => left + (t - t0) / (t1 - t0) * (W - left - right);
  const band = (H - top - bottom) / names.length;
  for (let s = Math.ceil(t0 / 30) * 30; s <= t1; s += 30) {   // a grid line every 30 s
    svg.append(el("svg:line", {x1: x(s), x2: x(s), y1: top, y2: H - bottom, class: "grid"}));
    const iso = new Date(s * 1000).toISOString().slice(11, 19);
    svg.append(el("svg:text", {x: x(s), y: H - 8, "text-anchor": "middle", class: "mute"}, iso));
  }
  names.forEach((n, i) => {
    const tr = w.traces[n], y0 = top + i * band, mid = y0 + band / 2;
    const lo = Math.min(...tr.min), hi = Math.max(...tr.max), c = (lo + hi) / 2;
    const half = Math.max((hi - lo) / 2, 1e-9);
    const y = v => mid - (v - c) / half * band * 0.45;
    let d = "";
    tr.t_s.forEach((t, k) => { if (t >= t0) d += (d ? "L" : "M") + x(t).toFixed(1) + " " + y(tr.max[k]).toFixed(1); });
    for (let k = tr.t_s.length - 1; k >= 0; k--) {
      if (tr.t_s[k] >= t0) d += "L" + x(tr.t_s[k]).toFixed(1) + " " + y(tr.min[k]).toFixed(1);
    }
    if (d) svg.append(el("svg:path", {d: d + "Z", class: "trace"}));
    svg.append(el("svg:text", {x: 6, y: mid + 4}, n));
  });
  let lastLabelX = -1e9;
  const marks = w.alerts.map(a => ({a, t: Date.parse(a.time) / 1000}))
    .filter(m => m.t >= t0 && m.t <= t1).sort((p, q) => p.t - q.t);
  for (const {a, t} of marks) {
    const cls = a.kind === "pick" ? "pick-" + (a.phase === "S" ? "S" : "P") : "mark";
    const line = el("svg:line", {x1: x(t), x2: x(t), y1: top, y2: H - bottom, class: cls,
                                 "stroke-width": 1.5, "data-kind": a.kind});
    line.addEventListener("click", () => showDetails(a.id));
    svg.append(line);
    if (x(t) - lastLabelX > 26) {   // labels never overlap: a crowded mark stays unlabelled
      const lab = a.kind === "pick" ? a.phase || "pick" : (a.kind === "anomaly" ? "anom" : "det");
      svg.append(el("svg:text", {x: x(t) + 2, y: top - 5,
                                 class: a.kind === "pick" ? "label-" + (a.phase === "S" ? "S" : "P") : "label-det"}, lab));
      lastLabelX = x(t);
    }
  }
}

// ---- map ------------------------------------------------------------------------------------
function niceStep(span) {
  const steps = [0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1, 2, 5, 10, 20, 30, 45, 90];
  return steps.find(s => span / s <= 5) || 90;
}
function drawMap() {
  const m = model.map, svg = $("#map"), W = 600, H = 380, pad = 30;
  svg.replaceChildren();
  if (!m) return;
  const live = new Map([...model.stations.values()].map(s => [s.key, s.state]));
  const pts = m.stations.map(s => ({...s, state: live.get(s.key) || s.state}));
  const evs = m.events;
  const all = [...pts, ...evs];
  $("#map-note").textContent = m.inventory ? pts.length + " stations placed" +
    (m.unplaced.length ? ", " + m.unplaced.length + " not in the inventory" : "")
    : "no inventory configured ([console] inventory)";
  if (!all.length) {
    svg.append(el("svg:text", {x: 20, y: 40, class: "mute"}, "nothing to place yet"));
    return;
  }
  let la0 = Math.min(...all.map(p => p.lat)), la1 = Math.max(...all.map(p => p.lat));
  let lo0 = Math.min(...all.map(p => p.lon)), lo1 = Math.max(...all.map(p => p.lon));
  const k = Math.cos((la0 + la1) / 2 * Math.PI / 180);     // equirectangular, true at mid-latitude
  const span = Math.max((lo1 - lo0) * k, la1 - la0, 0.05) * 1.25;
  const cx = (lo0 + lo1) / 2, cy = (la0 + la1) / 2;
  const scale = Math.min(W - 2 * pad, H - 2 * pad) / span;
  const X = lon => W / 2 + (lon - cx) * k * scale, Y = lat => H / 2 - (lat - cy) * scale;
  const latMin = cy - H / 2 / scale, latMax = cy + H / 2 / scale;
  const lonMin = cx - W / 2 / scale / k, lonMax = cx + W / 2 / scale / k;
  const latStep = niceStep(latMax - latMin), lonStep = niceStep(lonMax - lonMin);
  const dec = s => s < 0.1 ? 2 : (s < 1 ? 1 : 0);
  for (let a = Math.ceil(latMin / latStep) * latStep; a <= latMax; a += latStep) {
    svg.append(el("svg:line", {x1: 0, x2: W, y1: Y(a), y2: Y(a), class: "grid"}));
    svg.append(el("svg:text", {x: 3, y: Y(a) - 3, class: "mute"}, a.toFixed(dec(latStep)) + "°N"));
  }
  for (let o = Math.ceil(lonMin / lonStep) * lonStep; o <= lonMax; o += lonStep) {
    svg.append(el("svg:line", {x1: X(o), x2: X(o), y1: 0, y2: H, class: "grid"}));
    svg.append(el("svg:text", {x: X(o) + 3, y: H - 4, class: "mute"}, o.toFixed(dec(lonStep)) + "°E"));
  }
  for (const e of evs) {
    const r = 4 + 3 * Math.max(0, e.magnitude || 1);
    const c = el("svg:circle", {cx: X(e.lon), cy: Y(e.lat), r, class: "event", "data-event": e.event_id});
    c.append(el("svg:title", {}, (e.time || "") + (e.magnitude ? " M" + e.magnitude.toFixed(1) : "")));
    c.addEventListener("click", () => showDetails(e.id));
    svg.append(c);
  }
  const taken = [];   // label boxes: a label that would overlap another is left out (hover)
  const free = (x0, y0, w, h) => !taken.some(([a, b, c, d]) => x0 < c && a < x0 + w && y0 < d && b < y0 + h);
  for (const s of pts) {
    const x = X(s.lon), y = Y(s.lat);
    const tri = el("svg:path", {d: `M${x} ${y - 7}L${x + 6} ${y + 4}L${x - 6} ${y + 4}Z`,
                                class: "sta-" + s.state.split(" ")[0], "data-station": s.key});
    tri.append(el("svg:title", {}, s.key + ": " + s.state));
    tri.addEventListener("click", () => selectStation(s.key));
    svg.append(tri);
    taken.push([x - 6, y - 7, x + 6, y + 4]);
  }
  for (const s of pts) {
    const x = X(s.lon) + 8, y = Y(s.lat) + 4, name = s.key.split(".")[1], w = 6.5 * name.length;
    if (free(x, y - 10, w, 12)) {
      svg.append(el("svg:text", {x, y}, name));
      taken.push([x, y - 10, x + w, y + 2]);
    }
  }
}

// ---- live updates ---------------------------------------------------------------------------
function summary(s) {
  model.version = Math.max(model.version, s.version);
  model.waveS = s.waveform_s;
  const a = s.alerts;
  $("#summary").textContent = `${s.stations} stations · ${s.records.toLocaleString()} records · ` +
    `picks ${a.pick} · detections ${a.detection} · anomalies ${a.anomaly} · events ${a.event} · ` +
    `health ${a.health} · ${s.now.slice(11, 19)} UTC`;
}
let dirty = new Set(), timer = null;
function later(what) {
  dirty.add(what);
  if (!timer) timer = setTimeout(flush, 250);
}
const freshIds = new Set();
function flush() {
  timer = null;
  const d = dirty; dirty = new Set();
  if (d.has("stations")) renderStations();
  KINDS.forEach(k => { if (d.has(k)) renderAlerts(k, freshIds); });
  freshIds.clear();
  if (d.has("map")) drawMap();
  if (d.has("wave")) refreshWave();
}
function connect() {
  const es = new EventSource("/api/stream?since=" + model.version);
  const live = $("#live");
  es.onopen = () => { live.textContent = "live"; live.classList.remove("off"); };
  es.onerror = () => { live.textContent = "reconnecting…"; live.classList.add("off"); };
  const seen = () => { model.sse += 1; document.body.dataset.sse = String(model.sse); };
  es.addEventListener("stations", ev => {
    seen();
    for (const s of JSON.parse(ev.data)) {
      model.stations.set(s.key, s);
      model.version = Math.max(model.version, s.version);
      if (s.key === model.selected) later("wave");
    }
    later("stations");
    later("map");
  });
  es.addEventListener("alert", ev => {
    seen();
    const a = JSON.parse(ev.data);
    const list = model.alerts[a.kind];
    if (!list) return;
    list.unshift(a);
    if (list.length > MAX_ROWS) list.length = MAX_ROWS;
    freshIds.add(a.id);
    later(a.kind);
    if (a.kind === "event") loadMap();
    if (a.network + "." + a.station === model.selected) later("wave");
  });
  es.addEventListener("summary", ev => { seen(); summary(JSON.parse(ev.data)); });
}
async function loadMap() { model.map = await getJSON("/api/map"); drawMap(); }
async function start() {
  $("#details-close").addEventListener("click", () => { $("#details").hidden = true; });
  const st = await getJSON("/api/stations");
  st.stations.forEach(s => model.stations.set(s.key, s));
  summary(st.summary);
  renderStations();
  await Promise.all(KINDS.map(async k => {
    model.alerts[k] = (await getJSON("/api/alerts?limit=" + MAX_ROWS + "&kind=" + k)).alerts;
    renderAlerts(k);
  }));
  await loadMap();
  const want = new URLSearchParams(location.search).get("station") ||
    (model.stations.size ? [...model.stations.keys()].sort()[0] : null);
  if (want) await selectStation(want);
  document.body.dataset.ready = "1";
  connect();
}
start().catch(err => { $("#live").textContent = "error: " + err.message; });
