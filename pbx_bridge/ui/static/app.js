// The live-calls page: plain JavaScript, no build step, served by the bridge itself.
//
// The token is sent only in the Authorization header, never in a URL (it would reach
// logs, history and Referer). It lives in this page's memory; "stay signed in" keeps it
// in sessionStorage (this tab only, gone when the tab closes), never in localStorage,
// which every tab would share and which outlives the browser session. The page's
// Content-Security-Policy lets only this file run, so no injected script can read it.
//
// Every state shown comes from the bridge: the live stream (GET /uapi/events, read with
// fetch so the header can be sent: EventSource cannot) and the PhoneCall the bridge
// answers, which are what the PBX reported. Pressing a button changes nothing on screen
// until the PBX has confirmed it.
"use strict";

const KEPT = "pbx_bridge.token";
const STATES = { "0": "unknown", "1": "off hook", "2": "trying", "3": "ringing",
                 "4": "other side ringing", "5": "on call" };
const ACTIONS = [
  ["StartRecording", "Start recording"], ["PauseRecording", "Pause recording"],
  ["ResumeRecording", "Resume recording"], ["StopRecording", "Stop recording"],
];
const RECORDING_EVENTS = { "recording.started": "Recording started",
  "recording.paused": "Recording paused", "recording.resumed": "Recording resumed",
  "recording.stopped": "Recording stopped", "recording.completed": "Recording completed",
  "recording.failed": "Recording failed" };

const session = { token: null, stream: null, lastEventId: null, extensions: new Set(),
                  calls: new Map(), media: null, signedIn: false };
const $ = (id) => document.getElementById(id);

function announce(text) {
  const region = $("announce");
  region.textContent = "";
  // A fresh text node after a tick: screen readers read a repeated message again.
  setTimeout(() => { region.textContent = text; }, 50);
}

function el(tag, props, ...children) {
  const node = document.createElement(tag);
  Object.assign(node, props || {});
  for (const child of children) node.append(child);
  return node;
}

// Put ``rows`` in ``body`` in that order, moving only what must move: a row taken out of
// the document loses the keyboard focus, so one that stays is never touched.
function syncRows(body, rows) {
  const keep = new Set(rows);
  for (const row of [...body.rows]) if (!keep.has(row)) row.remove();
  rows.forEach((row, i) => {
    if (body.rows[i] !== row) body.insertBefore(row, body.rows[i] || null);
  });
}

function time(iso) {
  return iso ? new Date(iso).toLocaleTimeString() : "";
}

// ------------------------------------------------------------------ the API

class Unauthorized extends Error {}

async function api(method, path, body) {
  const headers = { Authorization: `Bearer ${session.token}` };
  const init = { method, headers, cache: "no-store", credentials: "omit" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const resp = await fetch(path, init);
  if (resp.status === 401) throw new Unauthorized("the token was refused");
  return resp;
}

async function apiJson(method, path, body) {
  const resp = await api(method, path, body);
  if (resp.status === 204) return null;
  const data = await resp.json().catch(() => null);
  if (!resp.ok) {
    const message = data && data.error ? data.error.message : resp.statusText;
    throw new Error(`${resp.status} ${message}`);
  }
  return data;
}

const seg = encodeURIComponent;
const callPath = (ext, id) => `/uapi/phoneCalls/@owner/${seg(ext)}/${seg(id)}`;

// ------------------------------------------------------------------ sign in / out

async function signIn(token, remember) {
  session.token = token;
  try {
    await loadCalls();  // also checks the token
  } catch (err) {
    session.token = null;
    throw err;
  }
  if (remember) sessionStorage.setItem(KEPT, token);
  session.signedIn = true;
  $("sign-in").hidden = true;
  for (const id of ["calls-section", "recordings-section", "sign-out", "live", "who"]) {
    $(id).hidden = false;
  }
  $("who").textContent = "Signed in";
  openStream();
  loadRecordings().catch(showError);
  $("calls-title").focus();
  announce("Signed in. Live calls follow.");
}

function signOut(message) {
  session.signedIn = false;
  session.token = null;
  sessionStorage.removeItem(KEPT);
  if (session.stream) session.stream.abort();
  session.calls.clear();
  session.extensions.clear();
  session.lastEventId = null;
  if (session.media) URL.revokeObjectURL(session.media);
  session.media = null;
  $("player").removeAttribute("src");
  $("calls").tBodies[0].replaceChildren();
  $("recordings").tBodies[0].replaceChildren();
  for (const id of ["calls-section", "recordings-section", "sign-out", "live", "who"]) {
    $(id).hidden = true;
  }
  $("sign-in").hidden = false;
  $("token").value = "";
  $("client-secret").value = "";
  if (message) showSignInError(message);
  $("token").focus();
}

function showSignInError(message) {
  const box = $("sign-in-error");
  box.textContent = message;
  box.hidden = false;
}

function showError(err) {
  if (err instanceof Unauthorized) {
    signOut("Signed out: the bridge refused the token (expired or revoked).");
    return;
  }
  announce(`Error: ${err.message}`);
}

async function tokenFromClient(clientId, secret) {
  const body = new URLSearchParams({ grant_type: "client_credentials",
                                     client_id: clientId, client_secret: secret });
  const resp = await fetch("/oauth/token.php", { method: "POST", body, cache: "no-store",
                                                 credentials: "omit" });
  const data = await resp.json().catch(() => null);
  if (!resp.ok || !data || !data.access_token) {
    const message = data && data.error ? data.error.message || data.error : resp.statusText;
    throw new Error(`the client credentials were refused (${message})`);
  }
  return data.access_token;
}

function wireSignIn() {
  $("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = $("token").value.trim();
    if (!token) { showSignInError("Enter a bearer token."); $("token").focus(); return; }
    $("sign-in-error").hidden = true;
    signIn(token, $("remember").checked).catch((err) => {
      showSignInError(`Not signed in: ${err.message}.`);
      $("token").focus();
    });
  });
  $("client-form").addEventListener("submit", (event) => {
    event.preventDefault();
    $("sign-in-error").hidden = true;
    tokenFromClient($("client-id").value.trim(), $("client-secret").value)
      .then((token) => signIn(token, $("remember").checked))
      .catch((err) => { showSignInError(`Not signed in: ${err.message}.`); $("client-id").focus(); });
  });
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  $("refresh-recordings").addEventListener("click", () => loadRecordings().catch(showError));
}

// ------------------------------------------------------------------ live calls

const callKey = (call) => `${call.id}|${call.extension}`;

async function loadCalls() {
  // The token's own extensions; other visible ones (organization, admin) show up from
  // the stream as their calls ring.
  const resp = await api("GET", "/uapi/phoneCalls/@me/@self");
  if (resp.status === 200) {
    for (const call of (await resp.json()).entry) putCall(call);
  }
  renderCalls();
}

function putCall(call) {
  session.extensions.add(call.extension);
  session.calls.set(callKey(call), call);
}

async function refreshCall(ext, id) {
  const resp = await api("GET", callPath(ext, id));
  if (resp.status === 200) putCall(await resp.json());
  else session.calls.delete(`${id}|${ext}`);  // gone meanwhile
  renderCalls();
}

function recordingState(view) {
  if (view.recordingPaused) return ["paused", `Paused since ${time(view.recordingPaused)}`];
  if (view.recording) return ["recording", `Recording since ${time(view.recording)}`];
  return ["off", "Not recording"];
}

function allowed(action, state) {
  if (action === "StartRecording") return state === "off";
  if (action === "PauseRecording") return state === "recording";
  if (action === "ResumeRecording") return state === "paused";
  return state !== "off";
}

function viewRow(call, view) {
  const key = `${callKey(call)}|${view.id}`;
  let row = document.querySelector(`tr[data-key="${CSS.escape(key)}"]`);
  if (!row) {
    row = el("tr");
    row.dataset.key = key;
    const actions = el("td", { className: "actions" });
    for (const [action, label] of ACTIONS) {
      const button = el("button", { type: "button", textContent: label });
      button.dataset.action = action;
      button.addEventListener("click", () => act(button, call.extension, call.id, view.id));
      actions.append(button);
    }
    row.append(el("td"), el("td"), el("td"), el("td"), actions);
  }
  const [state, text] = recordingState(view);
  const peer = [...(view.source || []), "→", ...(view.destination || [])].join(" ");
  const cells = row.cells;
  cells[0].textContent = view.extension;
  cells[1].textContent = `${view.callerId || ""} ${peer}`.trim();
  cells[2].textContent = STATES[view.status] || view.status;
  cells[3].textContent = text;
  cells[3].className = `state-${state}`;
  for (const button of cells[4].querySelectorAll("button")) {
    const label = ACTIONS.find(([a]) => a === button.dataset.action)[1];
    // aria-disabled rather than disabled: the button keeps the keyboard focus when the
    // state changes under it, and says why it does nothing.
    button.setAttribute("aria-disabled", String(!allowed(button.dataset.action, state)));
    button.setAttribute("aria-label", `${label}, ${view.extension} view ${view.id}`);
  }
  return row;
}

function renderCalls() {
  const body = $("calls").tBodies[0];
  const rows = [];
  for (const call of session.calls.values()) {
    for (const view of call.phoneCallView) {
      if (view.extension === call.extension) rows.push(viewRow(call, view));
    }
  }
  syncRows(body, rows);
  $("calls").hidden = rows.length === 0;
  $("no-calls").hidden = rows.length !== 0;
}

async function act(button, ext, id, viewId) {
  if (button.getAttribute("aria-disabled") === "true") return;
  const body = { action: button.dataset.action, phoneCallViewId: viewId };
  if (body.action === "StartRecording") body.format = "wav";
  try {
    putCall(await apiJson("PUT", callPath(ext, id), body));  // the PBX's answer
    renderCalls();
  } catch (err) {
    showError(err);
  }
}

// ------------------------------------------------------------------ the stream

function setLive(text) {
  $("live").textContent = text;
}

function openStream() {
  const controller = new AbortController();
  session.stream = controller;
  const run = async () => {
    let delay = 1000;
    while (session.signedIn && !controller.signal.aborted) {
      try {
        await readStream(controller.signal);
        delay = 1000;
      } catch (err) {
        if (controller.signal.aborted) return;
        if (err instanceof Unauthorized) { showError(err); return; }
      }
      setLive("Live updates: reconnecting…");
      await new Promise((resolve) => { setTimeout(resolve, delay); });
      delay = Math.min(delay * 2, 15000);
    }
  };
  run();
}

async function readStream(signal) {
  const headers = { Authorization: `Bearer ${session.token}`, Accept: "text/event-stream" };
  if (session.lastEventId) headers["Last-Event-ID"] = session.lastEventId;
  const resp = await fetch("/uapi/events", { headers, signal, cache: "no-store",
                                             credentials: "omit" });
  if (resp.status === 401) throw new Unauthorized("the token was refused");
  if (!resp.ok || !resp.body) throw new Error(`stream: ${resp.status}`);
  setLive("Live updates: connected");
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      dispatch(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
    }
  }
}

// One message of the stream, parsed as the HTML specification's EventSource does.
function dispatch(block) {
  let type = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;  // heartbeat comment
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "id") session.lastEventId = value;
    else if (field === "event") type = value;
    else if (field === "data") data.push(value);
  }
  if (data.length) onEvent(type, JSON.parse(data.join("\n"))).catch(showError);
}

async function onEvent(type, event) {
  if (type === "call.ringing" || type === "call.answered") {
    const known = session.calls.has(`${event.data.id}|${event.extension}`);
    putCall(event.data);
    renderCalls();
    if (!known) announce(`New call on ${event.extension}.`);
  } else if (type === "call.hangup") {
    session.calls.delete(`${event.phoneCallId}|${event.extension}`);
    renderCalls();
    announce(`Call on ${event.extension} ended.`);
  } else if (type in RECORDING_EVENTS) {
    session.extensions.add(event.extension);
    if (event.phoneCallId && session.calls.has(`${event.phoneCallId}|${event.extension}`)) {
      await refreshCall(event.extension, event.phoneCallId);
    }
    announce(`${RECORDING_EVENTS[type]} on ${event.extension}.`);
    await loadRecordings();
  }
}

// ------------------------------------------------------------------ recordings

async function recordingsOf(path) {
  const resp = await api("GET", `${path}?count=50`);
  return resp.status === 200 ? (await resp.json()).entry : [];
}

async function loadRecordings() {
  const byId = new Map();
  const paths = ["/uapi/recordings/@me/@self",
                 ...[...session.extensions].map((ext) => `/uapi/recordings/@owner/${seg(ext)}`)];
  for (const path of paths) {
    for (const rec of await recordingsOf(path)) byId.set(rec.id, rec);
  }
  const list = [...byId.values()].sort((a, b) => (b.started || "").localeCompare(a.started || ""));
  const rows = list.map(recordingRow);
  syncRows($("recordings").tBodies[0], rows);
  $("recordings").hidden = rows.length === 0;
  $("no-recordings").hidden = rows.length !== 0;
}

function recordingRow(rec) {
  const key = rec.id;
  let row = document.querySelector(`#recordings tr[data-key="${CSS.escape(key)}"]`);
  if (!row) {
    row = el("tr");
    row.dataset.key = key;
    const play = el("button", { type: "button", textContent: "Play" });
    play.addEventListener("click", () => play_(play, row.dataset.ext, key));
    row.append(el("td"), el("td"), el("td"), el("td"), el("td", {}, play));
  }
  row.dataset.ext = rec.extension;
  const started = rec.started ? new Date(rec.started).toLocaleString() : "";
  row.cells[0].textContent = started;
  row.cells[1].textContent = rec.extension;
  row.cells[2].textContent = rec.state;
  row.cells[3].textContent = rec.duration !== undefined ? `${rec.duration.toFixed(1)} s` : "";
  const button = row.cells[4].firstChild;
  button.setAttribute("aria-disabled", String(rec.state !== "completed"));
  button.setAttribute("aria-label", `Play the recording of ${rec.extension} started ${started}`);
  return row;
}

// The media route wants the bearer header, which an <audio src> cannot send: fetch the
// file, hand the player a blob: URL of this page (no token in any URL).
async function play_(button, ext, id) {
  if (button.getAttribute("aria-disabled") === "true") return;
  try {
    const resp = await api("GET", `/uapi/recordings/@owner/${seg(ext)}/${seg(id)}/media`);
    if (!resp.ok) throw new Error(`${resp.status} the recording cannot be played`);
    const blob = await resp.blob();
    if (session.media) URL.revokeObjectURL(session.media);
    session.media = URL.createObjectURL(blob);
    const player = $("player");
    player.src = session.media;
    $("now-playing").textContent = `Loaded: the recording of ${ext} (${id}).`;
    await player.play().catch(() => {});  // autoplay may be refused: the controls remain
    player.focus();
    announce(`Playing the recording of ${ext}.`);
  } catch (err) {
    showError(err);
  }
}

// ------------------------------------------------------------------ start

document.addEventListener("DOMContentLoaded", () => {
  wireSignIn();
  const kept = sessionStorage.getItem(KEPT);
  if (kept) {
    $("remember").checked = true;
    signIn(kept, true).catch(() => signOut("Signed out: the kept token was refused."));
  }
});
