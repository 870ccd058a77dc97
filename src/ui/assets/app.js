// edgelens live view: live picture, stats, events, and a zone/line editor that writes the
// twin's `zones`/`lines` JSON. Plain DOM, no framework; text goes in with textContent only.
"use strict";

const $ = (id) => document.getElementById(id);
const SVG = "http://www.w3.org/2000/svg";
const state = {
  mode: "view",          // view | zone | line
  draft: [],             // points being drawn, normalized [x, y]
  zones: {}, lines: {},  // the editor's shapes (start from the running config)
  readOnly: true,
  lastEvent: 0,
  lastFrames: -1,
  lastChange: 0,
};

const round = (v) => Math.round(v * 1000) / 1000;

async function getJson(url) {
  const r = await fetch(url, { cache: "no-store" });
  if (!r.ok) throw new Error(url + ": " + r.status);
  return r.json();
}

// ---- live picture ----
function startStream() {
  const img = $("live");
  img.addEventListener("load", () => $("placeholder").classList.add("hidden"));
  img.addEventListener("error", () => setTimeout(() => { img.src = "/stream.mjpeg?t=" + Date.now(); }, 2000));
  img.src = "/stream.mjpeg";
}

// ---- stats ----
function fmt(v, digits) { return (typeof v === "number") ? v.toFixed(digits) : "–"; }

async function refreshStats() {
  try {
    const s = await getJson("/api/stats");
    $("stat-fps").textContent = fmt(s.fps, 1);
    $("stat-infer").textContent = fmt(s.inferenceMsP50, 1) + " / " + fmt(s.inferenceMsP95, 1);
    $("stat-latency").textContent = fmt(s.latencyMsP50, 1) + " / " + fmt(s.latencyMsP95, 1);
    $("stat-frames").textContent = String(s.framesInferred ?? "–");
    $("stat-backend").textContent = s.backend || "–";
    $("stat-threads").textContent = s.instances
      ? `${s.instances} × ${s.threads} (${s.layoutChosen})`
      : (s.threads ? `1 × ${s.threads}` : "auto");
    $("stat-dropped").textContent = (s.dropped ?? "–") + " / " + (s.skipped ?? "–");
    $("stat-messages").textContent = String(s.messages ?? "–");
    $("stat-uptime").textContent = uptime(s.uptimeS || 0);
    $("badge-source").textContent = s.source || "–";
    $("badge-model").textContent = (s.model || "–") + (s.modelVersion ? " v" + s.modelVersion : "");
    $("badge-mode").textContent = s.readOnly ? "module · read-only" : "local · editable";
    const now = Date.now();
    if (s.framesInferred !== state.lastFrames) { state.lastFrames = s.framesInferred; state.lastChange = now; }
    const dot = $("status-dot");
    dot.className = "dot " + (now - state.lastChange < 5000 ? "live" : "stale");
  } catch (e) {
    $("status-dot").className = "dot stale";
  }
}

function uptime(s) {
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return h ? h + " h " + m + " min" : m ? m + " min " + (s % 60) + " s" : s + " s";
}

// ---- events ----
function describe(e) {
  switch (e.name) {
    case "zoneEntered": return ["entered " + e.zone, "ev-zone"];
    case "zoneLeft": return ["left " + e.zone, "ev-zone"];
    case "loitering": return ["loitering in " + e.zone, "ev-zone"];
    case "lineCrossed": return ["crossed " + e.line + " (" + e.direction + ")", "ev-line"];
    case "new": return ["appeared", "ev-new"];
    case "end": return ["gone", "ev-end"];
    default: return [e.name, "ev-" + e.eventType];
  }
}

function eventRow(e, snapshots, crops) {
  const li = document.createElement("li");
  const [text, cls] = describe(e);
  li.className = "event fresh " + cls;
  li.dataset.name = e.name;
  li.dataset.id = String(e.id);
  let thumb;
  if (snapshots && e.snapshot) {
    thumb = document.createElement("img");
    thumb.loading = "lazy";
    thumb.alt = "snapshot";
    // With --snapshot-crop the thumbnail is the object alone, else the whole frame.
    const ref = crops ? e.snapshot.replace(/\.jpg$/, "-crop.jpg") : e.snapshot;
    thumb.src = "/snap/" + ref.split("/").map(encodeURIComponent).join("/");
  } else {
    thumb = document.createElement("div");
    thumb.textContent = e.label ? e.label.slice(0, 1).toUpperCase() : "•";
  }
  thumb.className = "thumb";
  const what = document.createElement("div");
  what.className = "what";
  what.textContent = "#" + e.track.split("-").pop() + " " + text + " ";
  const tag = document.createElement("span");
  tag.className = "tag";
  tag.textContent = e.name + " · " + e.label + " " + (e.score || 0).toFixed(2);
  what.appendChild(tag);
  const when = document.createElement("div");
  when.className = "when";
  when.textContent = e.time;
  li.append(thumb, what, when);
  return li;
}

async function refreshEvents() {
  try {
    const r = await getJson("/api/events?after=" + state.lastEvent);
    const list = $("events");
    if (r.lastId < state.lastEvent) { list.replaceChildren(); } // server restarted
    const fresh = r.events.filter((e) => e.id > state.lastEvent);
    if (fresh.length) {
      list.querySelector(".empty")?.remove();
      // Newest first: the response is newest first, so insert oldest first at the top.
      for (const e of fresh.slice().reverse()) list.prepend(eventRow(e, r.snapshots, r.crops));
      while (list.children.length > 200) list.lastChild.remove();
      state.lastEvent = fresh[0].id;
    }
    $("events-count").textContent = list.querySelectorAll(".event").length ? "(" + list.querySelectorAll(".event").length + ")" : "";
    renderCounts(r.counts || {});
  } catch (e) { /* next poll */ }
}

function renderCounts(counts) {
  const ul = $("counts");
  const keys = Object.keys(counts);
  if (!keys.length) return;
  ul.replaceChildren(...keys.map((k) => {
    const p = counts[k];
    const li = document.createElement("li");
    const name = document.createElement("span");
    const [kind, n] = k.split(/:(.*)/);
    name.className = "name " + kind;
    name.textContent = n;
    const v = document.createElement("span");
    v.textContent = kind === "zone" ? p.present + " present" : p.in + " in · " + p.out + " out";
    li.append(name, v);
    return li;
  }));
}

// ---- editor ----
function setMode(mode) {
  state.mode = mode;
  state.draft = [];
  for (const m of ["view", "zone", "line"]) $("mode-" + m).classList.toggle("on", m === mode);
  $("frame").classList.toggle("drawing", mode !== "view");
  $("hint").textContent = {
    view: "Pick “Draw zone” or “Draw line”, then click on the picture.",
    zone: "Click the zone's corners in order, then “Finish zone” (or Enter). Objects count by their box's bottom centre.",
    line: "Click where the line starts, then where it ends. Crossing from its left to its right counts as “in”.",
  }[mode];
  if (mode !== "view" && !$("shape-name").value) $("shape-name").value = nextName(mode);
  update();
}

function nextName(kind) {
  const taken = kind === "zone" ? state.zones : state.lines;
  for (let i = 1; ; i++) if (!taken[kind + "-" + i]) return kind + "-" + i;
}

function pointFrom(ev) {
  const r = $("live").getBoundingClientRect();
  const x = Math.min(1, Math.max(0, (ev.clientX - r.left) / r.width));
  const y = Math.min(1, Math.max(0, (ev.clientY - r.top) / r.height));
  return [round(x), round(y)];
}

function classes() {
  return Array.from($("shape-classes").selectedOptions).map((o) => o.value);
}

function shapeName() {
  const n = $("shape-name").value.trim();
  if (!/^[A-Za-z0-9._-]{1,64}$/.test(n)) {
    status("Name: 1..64 letters, digits, '.', '_' or '-'.", false);
    return null;
  }
  return n;
}

function onClick(ev) {
  if (state.mode === "view") return;
  state.draft.push(pointFrom(ev));
  if (state.mode === "line" && state.draft.length === 2) {
    const name = shapeName();
    if (!name) { state.draft = []; update(); return; }
    const line = { from: state.draft[0], to: state.draft[1] };
    const cl = classes();
    if (cl.length) line.classes = cl;
    state.lines[name] = line;
    $("shape-name").value = "";
    setMode("view");
    return;
  }
  update();
}

function finishZone() {
  if (state.mode !== "zone" || state.draft.length < 3) return;
  const name = shapeName();
  if (!name) return;
  const zone = { polygon: state.draft.slice() };
  const cl = classes();
  if (cl.length) zone.classes = cl;
  state.zones[name] = zone;
  $("shape-name").value = "";
  setMode("view");
}

function twinJson() {
  return JSON.stringify({ zones: state.zones, lines: state.lines }, null, 2)
    .replace(/\[\s+(-?[\d.]+),\s+(-?[\d.]+)\s+\]/g, "[$1, $2]");
}

function svgEl(name, attrs) {
  const el = document.createElementNS(SVG, name);
  for (const k in attrs) el.setAttribute(k, attrs[k]);
  return el;
}

function drawOverlay() {
  const svg = $("overlay");
  const pts = (ps) => ps.map((p) => p[0] * 1000 + "," + p[1] * 1000).join(" ");
  const nodes = [];
  for (const z of Object.values(state.zones))
    nodes.push(svgEl("polygon", { points: pts(z.polygon), fill: "rgba(255,170,0,0.2)", stroke: "#ffaa00", "stroke-width": 3, "vector-effect": "non-scaling-stroke", "stroke-dasharray": "6 4" }));
  for (const l of Object.values(state.lines))
    nodes.push(svgEl("polyline", { points: pts([l.from, l.to]), fill: "none", stroke: "#00c8ff", "stroke-width": 3, "vector-effect": "non-scaling-stroke", "stroke-dasharray": "6 4" }));
  if (state.draft.length) {
    const tag = state.mode === "zone" && state.draft.length > 2 ? "polygon" : "polyline";
    nodes.push(svgEl(tag, { points: pts(state.draft), fill: state.mode === "zone" ? "rgba(58,163,255,0.18)" : "none", stroke: "#3aa3ff", "stroke-width": 2, "vector-effect": "non-scaling-stroke" }));
    for (const p of state.draft)
      nodes.push(svgEl("ellipse", { cx: p[0] * 1000, cy: p[1] * 1000, rx: 6, ry: 8, fill: "#3aa3ff", stroke: "#fff", "stroke-width": 1, "vector-effect": "non-scaling-stroke" }));
  }
  svg.replaceChildren(...nodes);
}

function renderShapes() {
  const ul = $("shapes");
  const items = [];
  for (const [kind, set] of [["zone", state.zones], ["line", state.lines]]) {
    for (const name of Object.keys(set)) {
      const li = document.createElement("li");
      li.className = kind;
      li.textContent = (kind === "zone" ? "▱ " : "↗ ") + name;
      const del = document.createElement("button");
      del.textContent = "×";
      del.title = "remove " + name;
      del.addEventListener("click", () => { delete set[name]; update(); });
      li.appendChild(del);
      items.push(li);
    }
  }
  ul.replaceChildren(...items);
}

function update() {
  $("finish").disabled = !(state.mode === "zone" && state.draft.length >= 3);
  $("undo").disabled = state.draft.length === 0;
  $("json").textContent = twinJson();
  drawOverlay();
  renderShapes();
}

function status(text, ok) {
  const s = $("apply-status");
  s.textContent = text;
  s.className = "status " + (ok ? "ok" : "bad");
}

async function apply() {
  try {
    const r = await fetch("/api/zones", {
      method: "POST", headers: { "content-type": "application/json" },
      body: JSON.stringify({ zones: state.zones, lines: state.lines }),
    });
    const body = await r.json().catch(() => ({}));
    if (r.ok) status("Applied: " + Object.keys(state.zones).length + " zones, " + Object.keys(state.lines).length + " lines.", true);
    else status((body.errors || ["HTTP " + r.status]).join("\n"), false);
  } catch (e) { status("Not applied: " + e.message, false); }
}

async function loadConfig() {
  try {
    const c = await getJson("/api/config");
    state.readOnly = c.readOnly;
    document.body.classList.toggle("readonly", c.readOnly);
    for (const [n, z] of Object.entries(c.zones || {})) {
      state.zones[n] = { polygon: z.polygon.map((p) => p.map(round)) };
      if (z.classes && z.classes.length) state.zones[n].classes = z.classes;
    }
    for (const [n, l] of Object.entries(c.lines || {})) {
      state.lines[n] = { from: l.from.map(round), to: l.to.map(round) };
      if (l.classes && l.classes.length) state.lines[n].classes = l.classes;
    }
    const sel = $("shape-classes");
    sel.replaceChildren(...(c.labels || []).filter((l) => l && l !== "background" && l !== "???").map((l) => {
      const o = document.createElement("option");
      o.value = o.textContent = l;
      return o;
    }));
    if (c.readOnly) status("Read-only (module mode): paste this JSON into the module twin's desired properties.", true);
    if (!c.labels || !c.labels.length) setTimeout(loadLabels, 2000);
  } catch (e) { setTimeout(loadConfig, 2000); return; }
  update();
}

// Labels are known once the first frame is inferred.
async function loadLabels() {
  const c = await getJson("/api/config").catch(() => ({}));
  if (!c.labels || !c.labels.length) { setTimeout(loadLabels, 2000); return; }
  const sel = $("shape-classes");
  sel.replaceChildren(...c.labels.filter((l) => l && l !== "background" && l !== "???").map((l) => {
    const o = document.createElement("option");
    o.value = o.textContent = l;
    return o;
  }));
}

function init() {
  startStream();
  $("live").addEventListener("click", onClick);
  $("overlay").addEventListener("click", onClick);
  for (const m of ["view", "zone", "line"]) $("mode-" + m).addEventListener("click", () => setMode(m));
  $("finish").addEventListener("click", finishZone);
  $("undo").addEventListener("click", () => { state.draft.pop(); update(); });
  $("clear-all").addEventListener("click", () => { state.zones = {}; state.lines = {}; state.draft = []; update(); });
  $("copy").addEventListener("click", () => navigator.clipboard?.writeText(twinJson()).then(() => status("Copied.", true), () => status("Select the text and copy it.", false)));
  $("apply").addEventListener("click", apply);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && state.mode === "zone") finishZone();
    if (e.key === "Escape") setMode("view");
  });
  loadConfig();
  refreshStats();
  refreshEvents();
  setInterval(refreshStats, 1000);
  setInterval(refreshEvents, 1000);
}

document.addEventListener("DOMContentLoaded", init);
