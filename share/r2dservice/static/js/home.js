// The build form: provider picker from api/repoproviders, a repository field that reads
// what people paste, the spec and share links shown before building, errors under the
// field before any request. Submitting starts the build and opens its page.
import { api, base, wireCopyButtons } from "./api.js";
import { detect, makeSpec, refProblem, splitSpec } from "./detect.js";

const form = document.getElementById("build-form");
const $ = (id) => document.getElementById(id);
const fields = { provider: $("provider"), repo: $("spec"), ref: $("ref"), filepath: $("filepath") };
const status = $("status");
let providers = [];
let touched = false;

function setError(input, errorEl, message) {
  errorEl.textContent = message || "";
  if (message) input.setAttribute("aria-invalid", "true");
  else input.removeAttribute("aria-invalid");
}

function provider(id) {
  return providers.find((p) => p.id === id) || providers[0];
}

function showProvider(p) {
  $("spec-label").textContent = p.repo.label || "Repository";
  fields.repo.placeholder = (p.repo.placeholder || "").replace(/^example:\s*/i, "").split(" or ")[0];
  fields.ref.placeholder = p.ref.default || "HEAD";
  // Data repositories (Zenodo, Figshare, ...) name their version in the record: no ref.
  const hasRef = p.ref.enabled !== false;
  fields.ref.disabled = !hasRef;
  fields.ref.closest(".field").hidden = !hasRef;
}

/** The form's current reading: {provider, spec} or {error}, and what it filled in. */
function read() {
  const text = fields.repo.value;
  const found = detect(text, providers, fields.provider.value);
  if (!found.error && found.provider && found.provider !== fields.provider.value) {
    fields.provider.value = found.provider;
  }
  const p = provider(fields.provider.value);
  showProvider(p);
  if (found.error) return { error: found.error, field: "repo" };
  if (found.spec) return { provider: p, spec: found.spec };
  // A link's /tree/<branch> and file fill the other fields (what is typed there wins).
  // (A value filled in this way goes again when the next text has none.)
  if (!fields.ref.dataset.typed) fields.ref.value = found.ref ? decodeURIComponent(found.ref) : "";
  if (!fields.filepath.dataset.typed) fields.filepath.value = found.path ? decodeURIComponent(found.path) : "";
  const hasRef = p.ref.enabled !== false;
  const ref = hasRef ? fields.ref.value.trim() || p.ref.default || "HEAD" : "";
  const problem = hasRef ? refProblem(ref) : null;
  if (problem) return { error: problem, field: "ref" };
  const spec = makeSpec(p, found.repo, ref);
  if (!spec) return { error: `This is not a ${p.displayName} repository name.`, field: "repo" };
  return { provider: p, spec };
}

function update() {
  if (!providers.length) return null;
  const r = read();
  const show = touched || fields.repo.value.trim() !== "";
  setError(fields.repo, $("spec-error"), show && r.field === "repo" ? r.error : "");
  setError(fields.ref, $("ref-error"), show && r.field === "ref" ? r.error : "");
  if (r.error) {
    $("resolved-spec").textContent = "—";
    $("share").hidden = true;
    return r;
  }
  const full = `${r.provider.id}/${r.spec}`;
  $("resolved-spec").textContent = full;
  const path = fields.filepath.value.trim();
  const link = new URL(`${base}v2/${full}`, location.href);
  if (path) link.searchParams.set("labpath", path);
  const badge = new URL(`${base}static/images/badge.svg`, location.href).href;
  $("share-link").value = link.href;
  $("badge-md").value = `[![Build the image](${badge})](${link.href})`;
  $("badge-rst").value = `.. image:: ${badge}\n   :target: ${link.href}`;
  $("share").hidden = false;
  return r;
}

async function submit(ev) {
  ev.preventDefault();
  await loaded;
  touched = true;
  const r = update();
  if (!r || r.error) {
    (r && r.field === "ref" ? fields.ref : fields.repo).focus();
    return;
  }
  if (ev.submitter && ev.submitter.id === "launch-button") {
    // The share link is the launch: build if needed, then the caller's own server.
    location.assign($("share-link").value);
    return;
  }
  const button = $("build-button");
  button.disabled = true;
  status.classList.remove("error");
  status.textContent = "Starting the build…";
  try {
    const build = await api("api/builds", { method: "POST", body: { spec: `${r.provider.id}/${r.spec}` } });
    status.textContent = build.state === "ready" ? "The image exists already." : "Build started.";
    location.assign(`${base}builds/${encodeURIComponent(build.id)}`);
  } catch (e) {
    status.classList.add("error");
    status.textContent = e.message;
    button.disabled = false;
  }
}

async function start() {
  try {
    providers = await api("api/repoproviders");
  } catch (e) {
    status.classList.add("error");
    status.textContent = `Cannot read the repository providers: ${e.message}`;
    return;
  }
  const selected = fields.provider.value;
  fields.provider.replaceChildren(...providers.map((p) => new Option(p.displayName, p.id)));
  fields.provider.value = provider(selected).id;
  // A v2 link's page: the form filled in from its spec.
  const prefill = form.dataset.prefill;
  if (prefill) {
    const found = detect(prefill, providers, fields.provider.value);
    if (found.spec) {
      const p = provider(found.provider);
      fields.provider.value = p.id;
      const { repo, ref } = splitSpec(p, found.spec);
      fields.repo.value = repo;
      fields.ref.value = ref;
    }
    fields.filepath.value = form.dataset.filepath || "";
    // As if typed: the link's values stay when the repository field is read.
    for (const f of [fields.ref, fields.filepath]) f.dataset.typed = f.value ? "1" : "";
  }
  for (const name of ["ref", "filepath"]) {
    fields[name].addEventListener("input", () => { fields[name].dataset.typed = fields[name].value ? "1" : ""; update(); });
  }
  fields.repo.addEventListener("input", update);
  fields.repo.addEventListener("blur", () => { if (fields.repo.value) { touched = true; update(); } });
  fields.provider.addEventListener("change", update);
  form.dataset.ready = "1";
  update();
}

// Listening at once: a submit before the providers arrive waits for them.
form.addEventListener("submit", submit);
wireCopyButtons();
const loaded = start();
