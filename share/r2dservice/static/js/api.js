// The REST API from the pages: the hub's login cookie plus the XSRF token that
// JupyterHub asks of cookie-authenticated requests made by scripts.

export const base = document.querySelector("[data-base]")?.dataset.base || "/";
const xsrf = window.xsrf || "";

export class APIError extends Error {
  constructor(status, message, data = null) {
    super(message);
    this.status = status;
    this.data = data; // the JSON answer, e.g. the server a launch's 409 is about
  }
}

export async function api(path, { method = "GET", body } = {}) {
  const headers = { "X-XSRFToken": xsrf, Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  let r;
  try {
    r = await fetch(base + path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (e) {
    throw new APIError(0, "The service does not answer; check your connection and try again.");
  }
  const text = await r.text();
  let data = null;
  try { data = JSON.parse(text); } catch { /* not JSON */ }
  if (!r.ok) throw new APIError(r.status, (data && data.message) || `${r.status} ${r.statusText}`, data);
  return data;
}

/** An EventSource URL: it cannot send headers, so the XSRF token goes in the query. */
export function streamURL(path, lastEventId) {
  const q = new URLSearchParams({ _xsrf: xsrf });
  if (lastEventId) q.set("last_event_id", String(lastEventId));
  return `${base}${path}?${q}`;
}

/** Copy buttons: <button class="copy" data-copy="<id of an input or element>">. */
export function wireCopyButtons(root = document) {
  root.addEventListener("click", async (ev) => {
    const button = ev.target.closest("button.copy");
    if (!button) return;
    const el = document.getElementById(button.dataset.copy);
    const text = el.value !== undefined ? el.value : el.textContent;
    let ok = true;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      // No clipboard permission (plain http, or headless): select it for Ctrl+C.
      ok = false;
      if (el.select) el.select();
    }
    const label = button.textContent;
    button.textContent = ok ? "Copied" : "Press Ctrl+C";
    setTimeout(() => { button.textContent = label; }, 1500);
  });
}

export function duration(seconds) {
  if (seconds == null || !isFinite(seconds)) return "";
  seconds = Math.max(0, Math.round(seconds));
  const h = Math.floor(seconds / 3600), m = Math.floor((seconds % 3600) / 60), s = seconds % 60;
  if (h) return `${h} h ${m} min`;
  if (m) return `${m} min ${s} s`;
  return `${s} s`;
}

export function when(epoch) {
  if (!epoch) return "";
  return new Date(epoch * 1000).toLocaleString(undefined, { dateStyle: "medium", timeStyle: "short" });
}

/** What a build's repository is, for people: "owner/repo" for a GitHub URL and so on. */
export function repoName(build) {
  const url = build.repo_url || "";
  return url.replace(/^https?:\/\/(www\.)?(github\.com|gitlab\.com|gist\.github\.com)\//, "").replace(/\.git$/, "") || `${build.provider}/${build.spec}`;
}

/** The ref as asked for (the spec's last part), e.g. "HEAD" or "main". */
export function requestedRef(build) {
  const spec = build.spec || "";
  if (build.provider === "gist" && spec.split("/").length === 2) return "HEAD";
  const last = spec.slice(spec.lastIndexOf("/") + 1);
  try { return decodeURIComponent(last); } catch { return last; }
}
