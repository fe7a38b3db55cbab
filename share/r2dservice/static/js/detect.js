// What the build form makes of what people paste. Pure functions, no DOM: the providers
// come from <prefix>api/repoproviders (BinderHub's shape), whose `detect.regex` patterns
// are the one source of truth for recognising a host's URLs (groups: repo, ref, path).

const URL_LIKE = /^[a-z][a-z0-9+.-]*:\/\//i;
const SCP_LIKE = /^[\w.-]+@[\w.-]+:(?!\/\/)\S+$/;
const GIT_SCHEMES = ["https", "http", "git", "ssh"];
const BAD_REF_CHARS = [" ", "~", "^", ":", "?", "*", "[", "\\"];

/** Why `ref` is not a git ref name (the rules of `git check-ref-format`), or null. */
export function refProblem(ref) {
  if (!ref) return "The ref is empty.";
  if (/[\x00-\x1f\x7f]/.test(ref)) return "The ref contains a control character.";
  const bad = BAD_REF_CHARS.filter((c) => ref.includes(c));
  if (bad.length) {
    return `A ref cannot contain ${bad.map((c) => (c === " " ? "spaces" : `“${c}”`)).join(" or ")}.`;
  }
  if (ref.includes("..")) return "A ref cannot contain “..”.";
  if (ref.includes("@{") || ref === "@") return "That is not a valid ref name.";
  if (ref.startsWith("/") || ref.endsWith("/") || ref.includes("//")) return "A ref cannot have empty parts between slashes.";
  if (ref.endsWith(".")) return "A ref cannot end with “.”.";
  for (const part of ref.split("/")) {
    if (part.startsWith(".")) return "No part of a ref can start with “.”.";
    if (part.endsWith(".lock")) return "No part of a ref can end with “.lock”.";
  }
  return null;
}

/** The ref as a spec writes it: readable characters stay, the rest is %-escaped. */
export function encodeRef(ref) {
  return encodeURIComponent(ref).replace(/%(2F|40|2B|2C|3D|24|26)/gi, (m) => decodeURIComponent(m));
}

function byId(providers, id) {
  return providers.find((p) => p.id === id);
}

function fullMatch(regex, text) {
  return new RegExp(`^(?:${regex})$`).test(text);
}

/**
 * Read the repository field.
 * @param {string} text what was typed or pasted
 * @param {Array} providers the api/repoproviders entries
 * @param {string} selected the provider chosen in the picker
 * @returns {{provider, repo?, ref?, path?, spec?, error?}}
 *   `spec` (without the provider) when the text was a whole spec or v2 link already.
 */
export function detect(text, providers, selected) {
  text = (text || "").trim();
  if (!text) return { provider: selected, error: "Enter a repository: a link, owner/repo, or a git URL." };

  // A v2 link of this or another BinderHub-like service, or a whole "<provider>/<spec>".
  const v2 = text.match(/\/v2\/([^/?#]+)\/([^?#]+)/);
  let whole = v2 ? [v2[1], v2[2]] : null;
  if (!whole && !URL_LIKE.test(text) && !SCP_LIKE.test(text) && text.indexOf("/") > 0) {
    whole = [text.slice(0, text.indexOf("/")), text.slice(text.indexOf("/") + 1)];
  }
  if (whole) {
    const p = byId(providers, whole[0]);
    const spec = whole[1].replace(/\/+$/, "");
    if (p && fullMatch(p.spec.validateRegex, spec)) return { provider: p.id, spec };
  }

  if (URL_LIKE.test(text) || SCP_LIKE.test(text)) {
    for (const p of providers) {
      if (!p.detect) continue;
      const m = text.match(new RegExp(p.detect.regex));
      // A URL belongs to a host only if the host part matched (the first group).
      if (m && m[1] && m.groups && m.groups.repo) {
        return { provider: p.id, repo: m.groups.repo, ref: m.groups.ref || "", path: m.groups.path || "" };
      }
    }
    for (const p of providers) {
      // The host's own URL, but not a repository's page (an issue, a user, a search...).
      const host = p.detect && p.detect.regex.match(/^\^(\([^()]*\))\?/);
      if (host && new RegExp(`^${host[1]}`).test(text)) {
        const example = (p.repo.placeholder || "").replace(/^example:\s*/i, "").split(" or ").pop();
        return { provider: p.id, error: `This ${p.displayName} link is not a repository's page; paste one like ${example}.` };
      }
    }
    const git = byId(providers, "git");
    if (!git) return { provider: selected, error: "No repository host this service knows has this URL." };
    const scheme = SCP_LIKE.test(text) ? "ssh" : text.split(":")[0].toLowerCase();
    if (!GIT_SCHEMES.includes(scheme)) {
      return { provider: "git", error: `“${scheme}:” URLs cannot be built; use https://, http://, git:// or ssh://.` };
    }
    return { provider: "git", repo: text.replace(/\/+$/, ""), ref: "", path: "" };
  }

  const p = byId(providers, selected) || providers[0];
  if (p.id === "git") {
    return { provider: "git", error: "Enter the repository's URL, like https://git.example.org/team/repo.git." };
  }
  const m = p.detect ? text.match(new RegExp(p.detect.regex)) : null;
  if (!m || !m.groups || !m.groups.repo) {
    return { provider: p.id, error: `This is not a ${p.displayName} repository. ${p.repo.placeholder.replace(/^example:/i, "For example:")}.` };
  }
  return { provider: p.id, repo: m.groups.repo, ref: m.groups.ref || "", path: m.groups.path || "" };
}

/** "<spec>" (without the provider) for a repository and ref; null if it is not valid. */
export function makeSpec(provider, repo, ref) {
  const r = provider.repo.urlEncode ? encodeURIComponent(repo) : repo;
  // a record (a DOI, a dataset) names its version itself: its spec has no ref
  const spec = provider.ref.enabled === false ? r : `${r}/${encodeRef(ref || provider.ref.default || "HEAD")}`;
  return fullMatch(provider.spec.validateRegex, spec) ? spec : null;
}

/** The spec's repository and ref for the form's fields (inverse of makeSpec). */
export function splitSpec(provider, spec) {
  if (provider.ref.enabled === false) {
    return { repo: provider.repo.urlEncode ? decodeURIComponent(spec) : spec, ref: "" };
  }
  const i = spec.lastIndexOf("/");
  let repo = spec.slice(0, i);
  let ref = decodeURIComponent(spec.slice(i + 1));
  if (provider.id === "gist" && spec.split("/").length === 2) [repo, ref] = [spec, ""];
  if (provider.repo.urlEncode) repo = decodeURIComponent(repo);
  return { repo, ref };
}
