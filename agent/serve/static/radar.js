// The live radar of `binaura listen --serve`: one WebSocket, events in (docs/events.md),
// questions out. No framework, no build step: this file is served as it is.
"use strict";

const SVG_NS = "http://www.w3.org/2000/svg";
const HEAD_R = 12;         // radar units: the drawn head, nothing is placed inside it
const OUTER_R = 100;       // the radar's edge
const MAX_M = 8;           // distances at or beyond this sit on the edge
const RINGS_M = [1, 2, 4];
const LOG_MAX = 200;
const TOKEN = new URLSearchParams(location.search).get("token");

// Distance on a compressed (log) scale, so 1 m and 4 m both have room.
function radiusOf(distanceM) {
  if (distanceM === null || distanceM === undefined) return OUTER_R;
  const f = Math.log1p(Math.min(Math.max(distanceM, 0), MAX_M)) / Math.log1p(MAX_M);
  return HEAD_R + (OUTER_R - HEAD_R) * f;
}

// Azimuth is counter-clockwise from ahead (+90 = left); SVG rotates clockwise: negate.
function wrapDeg(d) { return ((d + 180) % 360 + 360) % 360 - 180; }

function el(name, attrs, parent) {
  const e = document.createElementNS(SVG_NS, name);
  for (const [k, v] of Object.entries(attrs || {})) e.setAttribute(k, v);
  if (parent) parent.appendChild(e);
  return e;
}

function hueOf(label) {
  let h = 0;
  for (const c of label) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

function drawRings() {
  const g = document.getElementById("rings");
  for (const m of RINGS_M) {
    el("circle", { r: radiusOf(m).toFixed(2), class: "ring" }, g);
    const t = el("text", { x: 2, y: (-radiusOf(m) - 1.5).toFixed(2), class: "ring-label" }, g);
    t.textContent = `${m} m`;
  }
  el("circle", { r: OUTER_R, class: "ring edge" }, g);
  for (const a of [0, 90]) {
    const r = OUTER_R, rad = (a * Math.PI) / 180;
    el("line", { x1: -r * Math.sin(rad), y1: -r * Math.cos(rad), x2: r * Math.sin(rad),
                 y2: r * Math.cos(rad), class: "axis" }, g);
  }
}

// One marker per track: an outer group rotated to the azimuth, the dot on its "ahead" axis
// at the distance's radius, the label counter-rotated to stay upright. Rotating (not
// translating) makes a moving source glide around the head rather than through it.
const markers = new Map();

function upsertTrack(ev) {
  let m = markers.get(ev.track_id);
  const tracks = document.getElementById("tracks");
  if (!m) {
    const g = el("g", { class: "track" });
    const arm = el("g", { class: "arm" }, g);
    const spread = el("path", { class: "spread" }, arm);
    const dot = el("circle", { r: 5, class: "dot" }, arm);
    const tag = el("g", { class: "tag" }, arm);
    const text = el("text", { y: -8 }, tag);
    const hue = hueOf(ev.label || "");
    dot.setAttribute("fill", `hsl(${hue} 70% 45%)`);
    spread.setAttribute("stroke", `hsl(${hue} 70% 45%)`);
    m = { g, arm, spread, dot, tag, text, angle: ev.azimuth_deg || 0 };
    markers.set(ev.track_id, m);
    placeTrack(m, ev);
    tracks.appendChild(g);
  } else {
    m.angle += wrapDeg((ev.azimuth_deg || 0) - wrapDeg(m.angle));
    placeTrack(m, ev);
  }
}

function placeTrack(m, ev) {
  const r = radiusOf(ev.distance_m);
  const d = ev.distance_m === null ? "? m" : `${ev.distance_m.toFixed(1)} m`;
  const elev = ev.elevation_deg > 20 ? " above" : ev.elevation_deg < -20 ? " below" : "";
  Object.assign(m.g.dataset, { trackId: ev.track_id, label: ev.label,
    azimuthDeg: ev.azimuth_deg, elevationDeg: ev.elevation_deg,
    distanceM: ev.distance_m === null ? "" : ev.distance_m });
  m.g.classList.toggle("no-distance", ev.distance_m === null);
  m.g.style.transform = `rotate(${-m.angle}deg)`;
  m.arm.style.transform = `translate(0px, ${-r}px)`;
  m.tag.style.transform = `rotate(${m.angle}deg)`;
  m.dot.setAttribute("fill-opacity", (0.35 + 0.65 * (ev.confidence ?? 1)).toFixed(2));
  // A faint arc of +-uncertainty_deg at the marker's radius: how scattered the detections are.
  const u = (Math.min(Math.max(ev.uncertainty_deg ?? 0, 2), 60) * Math.PI) / 180;
  const x = r * Math.sin(u), y = r - r * Math.cos(u);
  m.spread.setAttribute("d", `M ${-x.toFixed(2)} ${y.toFixed(2)} A ${r} ${r} 0 0 1 ${x.toFixed(2)} ${y.toFixed(2)}`);
  m.text.textContent = `${ev.label} ${d}${elev}`;
  m.g.querySelector("title")?.remove();
  const title = el("title", {}, m.g);
  title.textContent = `track ${ev.track_id}: ${ev.label}, azimuth ${ev.azimuth_deg} deg, ` +
    `elevation ${ev.elevation_deg} deg, ${d}, confidence ${ev.confidence}`;
}

function removeTrack(id) {
  const m = markers.get(id);
  if (m) { m.g.remove(); markers.delete(id); }
}

function addLog(ev) {
  const log = document.getElementById("log");
  const li = document.createElement("li");
  li.dataset.type = ev.type;
  const t = document.createElement("time");
  t.textContent = ev.t_s === null ? "" : `${ev.t_s.toFixed(1)} s`;
  const body = document.createElement("span");
  if (ev.type === "answer") {
    const q = document.createElement("q");
    q.textContent = ev.question;
    body.appendChild(q);
  }
  body.appendChild(document.createTextNode(ev.text));
  li.append(t, body);
  log.prepend(li);  // newest first
  while (log.children.length > LOG_MAX) log.lastElementChild.remove();
}

function showHealth(counters, serve) {
  const dl = document.getElementById("health");
  dl.replaceChildren();
  const rows = Object.entries(counters || {});
  if (serve) rows.push(["clients", serve.clients], ["dropped events (slow pages)", serve.dropped_events]);
  for (const [k, v] of rows) {
    const dt = document.createElement("dt"), dd = document.createElement("dd");
    dt.textContent = k; dd.textContent = v; dd.dataset.counter = k;
    dl.append(dt, dd);
  }
}

let lastServe = null;
function applySnapshot(s) {
  for (const id of [...markers.keys()]) removeTrack(id);
  for (const t of s.tracks) upsertTrack(t);
  document.getElementById("log").replaceChildren();
  for (const e of s.log) addLog(e);
  lastServe = s.serve;
  showHealth(s.health.counters, lastServe);
  setClock(s.t_s);
}

function setClock(t) {
  if (t !== null && t !== undefined) document.getElementById("clock").textContent = `t = ${t.toFixed(1)} s`;
}

// --- questions: streamed over the WebSocket, or POST /api/ask when it is down
let pending = null;
const answerBox = () => document.getElementById("answer");

function setAnswer(state, text) {
  const a = answerBox();
  a.dataset.state = state;
  if (text !== undefined) a.textContent = text;
}

function onMessage(msg) {
  switch (msg.type) {
    case "snapshot": applySnapshot(msg); return;
    case "onset": case "update": upsertTrack(msg); break;
    case "offset": removeTrack(msg.track_id); break;
    case "narration": addLog(msg); break;
    case "answer":
      addLog(msg);
      if (pending && msg.question === pending) { setAnswer("done", msg.text); pending = null; }
      break;
    case "health": showHealth(msg.counters, lastServe); break;
    case "answer_chunk":
      if (pending) {
        const a = answerBox();
        a.textContent += msg.text;
        a.dataset.chunks = String(Number(a.dataset.chunks) + 1);
      }
      return;
    case "error":
      if (pending) { setAnswer("error", msg.message); pending = null; }
      return;
    default: return;  // readers ignore what they do not know (docs/events.md)
  }
  setClock(msg.t_s);
}

let ws = null, retryMs = 500;
function connect() {
  const status = document.getElementById("status");
  const url = `${location.protocol === "https:" ? "wss" : "ws"}://${location.host}/ws` +
    (TOKEN ? `?token=${encodeURIComponent(TOKEN)}` : "");
  ws = new WebSocket(url);
  ws.onopen = () => { status.dataset.state = "live"; status.textContent = "live"; retryMs = 500; };
  ws.onmessage = (e) => onMessage(JSON.parse(e.data));
  ws.onclose = () => {
    status.dataset.state = "offline";
    status.textContent = "reconnecting";
    setTimeout(connect, retryMs);
    retryMs = Math.min(retryMs * 2, 5000);
  };
}

async function ask(question) {
  pending = question;
  answerBox().dataset.chunks = "0";
  setAnswer("streaming", "");
  if (ws && ws.readyState === WebSocket.OPEN) {
    ws.send(JSON.stringify({ type: "ask", question }));
    return;
  }
  const headers = { "Content-Type": "application/json" };
  if (TOKEN) headers.Authorization = `Bearer ${TOKEN}`;
  try {
    const r = await fetch("/api/ask", { method: "POST", headers, body: JSON.stringify({ question }) });
    const body = await r.json();
    if (pending === question) setAnswer(r.ok ? "done" : "error", r.ok ? body.text : body.error);
  } catch (err) {
    setAnswer("error", `no answer: ${err}`);
  }
  pending = null;
}

document.addEventListener("DOMContentLoaded", () => {
  drawRings();
  document.getElementById("ask").addEventListener("submit", (e) => {
    e.preventDefault();
    const input = document.getElementById("question");
    const q = input.value.trim();
    if (!q) return;
    if (q.length > 500) { setAnswer("error", "questions are limited to 500 characters"); return; }
    ask(q);
  });
  connect();
});
