// My builds (an admin's: everyone's): the history from api/builds, filters, pages of
// older builds, each build's page with its log; admins cancel running and queued ones.
import { api, base, duration, repoName, requestedRef, when } from "./api.js";

const $ = (id) => document.getElementById(id);
const root = $("builds");
const isAdmin = root.dataset.admin === "true";
const ACTIVE = ["queued", "running"];
let next = null;

function cell(label, content) {
  const td = document.createElement("td");
  td.dataset.label = label;
  if (content instanceof Node) td.append(content);
  else td.textContent = content ?? "";
  return td;
}

function table(builds, { cancel = false } = {}) {
  const t = document.createElement("table");
  t.className = "responsive";
  const head = ["State", "Repository", "Ref", "Started", "Duration", "Requested by", ...(cancel ? [""] : [])];
  t.createTHead().insertRow().append(...head.map((h) => {
    const th = document.createElement("th");
    th.scope = "col";
    th.textContent = h;
    if (!h) th.append(Object.assign(document.createElement("span"), { className: "visually-hidden", textContent: "Actions" }));
    return th;
  }));
  const body = t.createTBody();
  for (const b of builds) body.append(row(b, cancel));
  return t;
}

function row(b, cancel) {
  const tr = document.createElement("tr");
  tr.dataset.buildId = b.id;
  const state = Object.assign(document.createElement("span"), { className: `state state-${b.state}`, textContent: b.state });
  const link = Object.assign(document.createElement("a"), { href: `${base}builds/${encodeURIComponent(b.id)}`, textContent: repoName(b) });
  link.title = `${b.provider}/${b.spec}`;
  const ref = document.createElement("span");
  ref.append(requestedRef(b) + " ");
  if (b.ref) ref.append(Object.assign(document.createElement("code"), { textContent: b.ref.slice(0, 8), title: b.ref }));
  const end = b.finished || (ACTIVE.includes(b.state) ? Date.now() / 1000 : null);
  const started = b.started || b.created;
  tr.append(
    cell("State", state),
    cell("Repository", link),
    cell("Ref", ref),
    cell("Started", when(started)),
    cell("Duration", end ? duration(end - started) : ""),
    cell("Requested by", (b.requested_by || []).join(", ")),
  );
  tr.children[1].className = "repo";
  if (cancel) {
    const button = Object.assign(document.createElement("button"), { type: "button", className: "btn-danger btn-small", textContent: "Cancel" });
    button.setAttribute("aria-label", `Cancel the build of ${repoName(b)}`);
    button.hidden = !ACTIVE.includes(b.state);
    button.addEventListener("click", async () => {
      button.disabled = true;
      try {
        await api(`api/builds/${encodeURIComponent(b.id)}/cancel`, { method: "POST" });
        $("list-status").textContent = `Cancelling the build of ${repoName(b)}.`;
        setTimeout(loadActive, 1500);
      } catch (e) {
        $("list-status").textContent = e.message;
        button.disabled = false;
      }
    });
    tr.append(cell("", button));
  }
  return tr;
}

// The filters live in the page's URL too: a filtered view can be reloaded and shared.
const params = new URLSearchParams(location.search);
const pageSize = Math.min(200, Math.max(1, Number(params.get("limit")) || 20));
$("f-state").value = params.get("state") || "";
$("f-spec").value = params.get("spec") || "";
$("f-since").value = params.get("since") || "";
if (isAdmin) $("f-user").value = params.get("user") || "";

function query() {
  const q = new URLSearchParams({ limit: String(pageSize) });
  const state = $("f-state").value;
  if (state) q.append("state", state);
  if ($("f-spec").value.trim()) q.set("spec", $("f-spec").value.trim());
  if ($("f-since").value) q.set("since", `${$("f-since").value}T00:00:00Z`);
  if (isAdmin && $("f-user").value.trim()) q.set("user", $("f-user").value.trim());
  return q;
}

async function loadHistory(more = false) {
  const status = $("list-status");
  status.textContent = "Loading…";
  try {
    const path = more && next ? next.slice(next.indexOf("api/builds")) : `api/builds?${query()}`;
    const page = await api(path);
    next = page.next;
    const holder = $("history");
    let t = holder.querySelector("table");
    if (!more || !t) {
      holder.replaceChildren();
      if (!page.builds.length) {
        holder.append(Object.assign(document.createElement("p"), {
          className: "empty",
          textContent: "No builds here yet. Start one from the build form.",
        }));
      } else {
        holder.append(table(page.builds, { cancel: isAdmin }));
      }
    } else {
      for (const b of page.builds) t.tBodies[0].append(row(b, isAdmin));
    }
    $("more").hidden = !next;
    const shown = holder.querySelectorAll("tbody tr").length;
    status.textContent = shown ? `${shown} build${shown === 1 ? "" : "s"} shown${next ? "; there are older ones" : ""}.` : "";
  } catch (e) {
    status.textContent = e.message;
  }
}

async function loadActive() {
  if (!isAdmin) return;
  try {
    const page = await api("api/builds?state=running&state=queued&limit=200");
    const holder = $("active");
    holder.replaceChildren(page.builds.length
      ? table(page.builds, { cancel: true })
      : Object.assign(document.createElement("p"), { className: "empty", textContent: "Nothing is running or queued." }));
  } catch (e) {
    $("active").textContent = e.message;
  }
}

$("filters").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const shown = new URLSearchParams();
  for (const [k, el] of [["state", "f-state"], ["spec", "f-spec"], ["since", "f-since"], ["user", "f-user"]]) {
    if ($(el) && $(el).value.trim()) shown.set(k, $(el).value.trim());
  }
  if (params.get("limit")) shown.set("limit", params.get("limit"));
  history.replaceState(null, "", `${location.pathname}${shown.size ? "?" + shown : ""}`);
  loadHistory();
});
$("more").addEventListener("click", () => loadHistory(true));
loadActive();
loadHistory();
if (isAdmin) setInterval(loadActive, 5000);
