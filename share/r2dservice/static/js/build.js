// One build, live: phases, queue position, elapsed time, the log in a terminal
// (xterm.js: ANSI colours, carriage-return progress lines), cancel, the image name.
// The event stream resumes after a dropped connection from the last event id it saw
// (EventSource sends Last-Event-ID itself; after an error answer we reopen it with
// ?last_event_id=), and events it has seen already are skipped: no lost or doubled lines.
import { api, base, duration, repoName, requestedRef, streamURL, when, wireCopyButtons } from "./api.js";

const $ = (id) => document.getElementById(id);
const root = $("build");
const id = root.dataset.buildId;
const isAdmin = root.dataset.admin === "true";
const launchMode = root.dataset.launch || ""; // "auto" (a v2/ link), "button", or "" (none)
const launchArgs = JSON.parse(root.dataset.launchArgs || "{}");
let autoLaunched = false;
const STEP = { waiting: 0, fetching: 1, building: 2, pushing: 3, built: 4, ready: 4, launching: 4 };

let build = null;
let lastId = 0;
let reached = -1; // the furthest step seen
let done = false;
let source = null;
let retries = 0;
let term = null;
let pending = ""; // log text that arrived before the terminal was ready

// ---------------------------------------------------------------- the log
const plain = $("log");
let plainLine = document.createTextNode("");
plain.append(plainLine);
const ANSI = /\x1b\[[0-9;?]*[ -\/]*[@-~]|\x1b\][^\x07\x1b]*(\x07|\x1b\\)|\x1b[@-Z\\-_]/g;

let crPending = false;

function writePlain(text) {
  // What a terminal would show: escapes dropped, text after "\r" replaces the line.
  for (const chunk of text.replace(ANSI, "").split(/(\r|\n)/)) {
    if (chunk === "\n") {
      plain.insertBefore(document.createTextNode(plainLine.data + "\n"), plainLine);
      plainLine.data = "";
      crPending = false;
    } else if (chunk === "\r") {
      crPending = true;
    } else if (chunk) {
      if (crPending) plainLine.data = "";
      crPending = false;
      plainLine.data += chunk;
    }
  }
  if (!plain.hidden) plain.scrollTop = plain.scrollHeight;
}

function write(text) {
  writePlain(text);
  if (term) term.write(text);
  else pending += text;
}

async function startTerminal() {
  try {
    const [{ Terminal }, { FitAddon }] = await Promise.all([import(root.dataset.xterm), import(root.dataset.fit)]);
    term = new Terminal({
      convertEol: true, // repo2docker's lines end in "\n"
      disableStdin: true,
      cursorBlink: false,
      cursorInactiveStyle: "none",
      scrollback: 20000,
      fontSize: 13,
      fontFamily: 'ui-monospace, SFMono-Regular, Menlo, Consolas, "Liberation Mono", monospace',
      theme: {
        background: getComputedStyle(document.documentElement).getPropertyValue("--term-bg").trim() || "#1e1e1e",
        foreground: "#e6e6e6",
        // Every colour at least 4.5:1 against the background (WCAG AA).
        black: "#8a8a8a", brightBlack: "#a0a0a0",
        red: "#ff7b72", brightRed: "#ffa198",
        green: "#56d364", brightGreen: "#7ee787",
        yellow: "#e3b341", brightYellow: "#f2cc60",
        blue: "#79c0ff", brightBlue: "#a5d6ff",
        magenta: "#d2a8ff", brightMagenta: "#e2c5ff",
        cyan: "#56d4dd", brightCyan: "#b3f0ff",
        white: "#e6e6e6", brightWhite: "#ffffff",
      },
    });
    const fit = new FitAddon();
    term.loadAddon(fit);
    term.open($("terminal"));
    fit.fit();
    new ResizeObserver(() => fit.fit()).observe($("terminal"));
    term.write(pending);
    pending = "";
  } catch (e) {
    // Without the vendored terminal (dev/build-static.sh not run): plain text.
    console.warn("xterm.js is not available; showing the log as plain text", e);
    showPlain(true);
    $("toggle-log").hidden = true;
  }
}

function showPlain(on) {
  plain.hidden = !on;
  $("terminal").hidden = on;
  $("toggle-log").setAttribute("aria-pressed", String(on));
  $("toggle-log").textContent = on ? "Terminal" : "Plain text";
  if (on) plain.scrollTop = plain.scrollHeight;
}

// ---------------------------------------------------------------- phases
function setStatus(phase, message) {
  const word = document.createElement("span");
  word.className = "phase-word";
  word.textContent = phase;
  const line = (message || "").replace(ANSI, "").trim().split(/[\r\n]/).pop().slice(0, 300);
  const rest = line ? ` — ${line}` : "";
  $("status").replaceChildren(word, document.createTextNode(rest));
}

function renderSteps(phase, cancelled) {
  const failed = phase === "failed";
  const current = failed ? Math.max(reached, 0) : STEP[phase];
  for (const li of $("phases").children) {
    const i = Number(li.dataset.step);
    li.className = "";
    li.removeAttribute("aria-current");
    if (failed) {
      if (i < current) li.className = "done";
      else if (i === current) {
        li.className = "bad";
        li.setAttribute("aria-label", `${li.textContent}: ${cancelled ? "cancelled" : "failed"}`);
      }
    } else if (i < current || (i === current && phase === "ready")) {
      li.className = "done";
    } else if (i === current) {
      li.className = "current";
      li.setAttribute("aria-current", "step");
    }
  }
}

function setState(state) {
  const el = $("state");
  el.textContent = state;
  el.className = `state state-${state}`;
}

function onEvent(data, eventId) {
  if (eventId && eventId <= lastId) return; // seen already (a resumed stream)
  if (eventId) lastId = eventId;
  const phase = data.phase || "unknown";
  if (data.truncated) write("\x1b[33m[… earlier lines of this log were not kept …]\x1b[0m\n");
  if (phase === "failed") write(`\x1b[1;31m${data.message || "The build failed."}\x1b[0m`);
  else if (data.message) write(data.message);
  if (phase === "unknown") return;
  if (phase in STEP) reached = Math.max(reached, STEP[phase]);
  renderSteps(phase, data.cancelled);
  setStatus(phase, data.message);
  if (phase === "waiting" && data.position) {
    $("queue").hidden = false;
    $("queue").textContent = `Position ${data.position} of ${data.queue_length || data.position} in the queue.`;
  } else {
    $("queue").hidden = true;
  }
  if (phase === "ready" || phase === "failed") finish(phase, data);
  else setState(phase === "waiting" ? "queued" : "running");
}

async function finish(phase, data) {
  done = true;
  if (source) source.close();
  $("connection").hidden = true;
  $("cancel").hidden = true;
  if (phase === "failed") {
    $("failure").hidden = false;
    const message = (data.message || "").trim();
    $("failure-title").textContent = data.cancelled ? message || "Build cancelled." : "The build failed:";
    $("failure-message").textContent = data.cancelled ? "" : message;
    setState(data.cancelled ? "cancelled" : "failed");
  } else {
    setState("ready");
    if (data.imageName) $("image-name").textContent = data.imageName;
    if (launchMode) {
      $("launch").disabled = false;
      if (launchMode === "auto" && !autoLaunched) {
        autoLaunched = true;
        launch(false);
      }
    }
  }
  await refresh();
}

// ---------------------------------------------------------------- launch
// Start the image in the caller's own server (through the hub, with their login), then
// open it; a server of theirs on another image in the way is a question, not a surprise.
async function launch(replace) {
  const button = $("launch");
  button.disabled = true;
  $("launch-question").hidden = true;
  $("launch-status").textContent = replace
    ? "Stopping your other server, then starting this image…"
    : "Starting your server…";
  try {
    const r = await api(`api/builds/${encodeURIComponent(id)}/launch`, {
      method: "POST",
      body: { ...launchArgs, replace },
    });
    $("launch-status").textContent = r.state === "running"
      ? "Your server is running: opening it…"
      : "Your server is starting: opening it…";
    window.location.assign(r.redirect_url);
  } catch (e) {
    button.disabled = false;
    if (e.status === 409 && e.data && e.data.server) {
      $("launch-status").textContent = "";
      $("launch-question-text").textContent = e.message;
      $("launch-open").href = e.data.server.url || "#";
      $("launch-question").hidden = false;
    } else {
      $("launch-status").textContent = e.message;
    }
  }
}

if (launchMode) {
  $("launch").addEventListener("click", () => launch(false));
  $("launch-replace").addEventListener("click", () => launch(true));
}

// ---------------------------------------------------------------- the stream
function connect() {
  if (source) source.close();
  const s = new EventSource(streamURL(`api/builds/${encodeURIComponent(id)}/events`, lastId));
  source = s;
  s.onopen = () => {
    retries = 0;
    $("connection").hidden = true;
  };
  s.onmessage = (ev) => {
    lastEventAt = Date.now();
    let data;
    try { data = JSON.parse(ev.data); } catch { data = { phase: "unknown", message: ev.data + "\n" }; }
    onEvent(data, Number(ev.lastEventId) || 0);
  };
  s.onerror = () => {
    if (done) return s.close();
    if (s !== source) return; // replaced already
    const note = $("connection");
    note.hidden = false;
    if (s.readyState === EventSource.CLOSED) {
      // An error answer (the service restarting, a proxy's 502): reopen it ourselves.
      const wait = Math.min(10, 2 ** retries++);
      note.textContent = `Connection lost; trying again in ${wait} s…`;
      setTimeout(() => { if (!done && s === source) connect(); }, wait * 1000);
    } else {
      note.textContent = "Connection lost; reconnecting…"; // EventSource retries by itself
    }
  };
}

// A proxy may keep a dead stream open (configurable-http-proxy does, when the service
// dies mid-stream), and EventSource cannot see keepalive comments: so while the build
// runs, the page also asks the REST API every few seconds. When that fails, the
// connection is lost; when the build has events the stream did not bring, or the API
// answers again after an outage, the stream is reopened from the last event seen.
let lost = false;
let lastEventAt = Date.now();
const CHECK_EVERY = 5000;

// A restarted service may not know this browser's login any more (its cookie secret is
// random per process unless configured): a page load logs in again, silently through
// the hub, and replays the log. At most once a minute, so that a real refusal shows.
function relogin() {
  const key = `r2dservice-relogin-${id}`;
  const last = Number(sessionStorage.getItem(key)) || 0;
  if (Date.now() - last < 60_000) return false;
  sessionStorage.setItem(key, String(Date.now()));
  location.reload();
  return true;
}

async function check() {
  if (done) return;
  let b;
  try {
    b = await api(`api/builds/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.status === 403 && relogin()) return;
    lost = true;
    $("connection").hidden = false;
    $("connection").textContent = `Connection lost (${e.message}); trying again…`;
    return;
  }
  const behind = b.last_event_id > lastId && Date.now() - lastEventAt > CHECK_EVERY;
  if (lost || behind) {
    lost = false;
    if (source) source.close();
    connect();
  }
}

// ---------------------------------------------------------------- the build's facts
function tick() {
  if (!build) return;
  const end = build.finished || (done ? null : Date.now() / 1000);
  $("elapsed").textContent = end ? duration(end - build.created) : "";
}

async function refresh() {
  try {
    build = await api(`api/builds/${encodeURIComponent(id)}`);
  } catch (e) {
    $("connection").hidden = false;
    $("connection").textContent = e.message;
    return;
  }
  $("repo-name").textContent = repoName(build);
  document.title = `${repoName(build)} · ${document.title.split(" - ").pop()}`;
  $("repo-url").textContent = build.repo_url;
  if (/^https?:/.test(build.repo_url)) $("repo-url").href = build.repo_url;
  else $("repo-url").removeAttribute("href");
  $("ref").textContent = requestedRef(build);
  $("commit").textContent = (build.ref || "").slice(0, 12);
  $("commit").title = build.ref || "";
  $("requested-by").textContent = (build.requested_by || []).filter(Boolean).join(", ") || "anyone (authentication is off)";
  $("started").textContent = when(build.started || build.created);
  $("image-name").textContent = build.image_name;
  if (build.state === "ready" || build.state === "failed" || build.state === "cancelled") setState(build.state);
  const mine = (build.requested_by || []).includes(root.dataset.user) && !build.withdrawn;
  $("cancel").hidden = done || ["ready", "failed", "cancelled"].includes(build.state) || !(isAdmin || mine);
  $("cancel").textContent = isAdmin ? "Cancel build (for everyone)" : "Cancel build";
  tick();
}

$("cancel").addEventListener("click", async () => {
  const button = $("cancel");
  button.disabled = true;
  try {
    const b = await api(`api/builds/${encodeURIComponent(id)}/cancel`, { method: "POST" });
    if (b.withdrawn && !["cancelled", "failed"].includes(b.state) && b.wanted_by > 0) {
      $("cancel-note").textContent = "Your request is withdrawn; the build goes on for the others who asked for it.";
      button.hidden = true;
    } else {
      $("cancel-note").textContent = "Cancelling…";
    }
  } catch (e) {
    $("cancel-note").textContent = e.message;
    button.disabled = false;
  }
});

$("toggle-log").addEventListener("click", () => showPlain(plain.hidden));
$("download-log").href = streamURL(`api/builds/${encodeURIComponent(id)}/log`);

wireCopyButtons();
setInterval(tick, 1000);
setInterval(check, CHECK_EVERY);
startTerminal();
refresh().then(connect);
