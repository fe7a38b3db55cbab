// Build one repository with the real @jupyterhub/binderhub-client, the way
// jupyterhub-fancy-profiles does it (src/ImageBuilder.tsx, buildImage()):
//
//   const image = new BinderRepository(providerSpec, buildEndPointURL, { apiToken, buildOnly: true });
//   for await (const data of image.fetch()) {
//     switch (data.phase) {
//       case "failed": image.close(); return Promise.reject();
//       case "ready":  image.close(); return Promise.resolve(data.imageName);
//     }
//   }
//
// Usage (tests/test_binderhub_client.py runs it):
//
//   BINDER_API_TOKEN=<user token> node build-with-binderhub-client.mjs \
//       --endpoint http://127.0.0.1:8000/services/binder/build/ --spec 'git/<url-escaped url>/main' \
//       [--timeout 600] [--grace 3] [--launch]
//
// --launch: without buildOnly, as BinderHub's own page does: the last `ready` carries the
// launched server's `url` (and `token`), which the result reports.
//
// Without BINDER_API_TOKEN the library takes its other path (XSRF cookie, none here).
//
// stdout is JSON lines, nothing else:
//   {"kind": "request", "n": 1, "url": ..., "headers": {...}}   every HTTP request the library makes
//   {"kind": "state", "t": <ms since start>, "data": {...}}      every item fetch() yields, as yielded
//   {"kind": "result", "outcome": "ready"|"failed"|"ended", "imageName": ..., "requests": <n>, ...}
// The result comes `--grace` seconds after the iteration ended, so that a reconnect the
// library might make (fetch-event-source retries after 1 s by default) is counted.
// Exit codes: 0 = the iteration ended and then the process ended by itself (nothing left
// running: no retry timer, no open stream); 124 = --timeout passed before the iteration
// ended; 3 = the iteration ended but something kept Node alive until --timeout.

import { parseArgs } from "node:util";

const started = Date.now();
const { values: args } = parseArgs({
  options: {
    endpoint: { type: "string" },
    spec: { type: "string" },
    timeout: { type: "string", default: "600" },
    grace: { type: "string", default: "3" },
    launch: { type: "boolean", default: false },
  },
});
if (!args.endpoint || !args.spec) {
  console.error("usage: build-with-binderhub-client.mjs --endpoint URL --spec SPEC [--timeout S] [--grace S]");
  process.exit(2);
}

const emit = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
// The library logs with console.log ("Event stream error", ...): keep stdout for our JSON lines.
console.log = (...a) => console.error(...a);

// ---------------------------------------------------------------- browser shims
// The library is written for browsers (fancy-profiles bundles it with webpack). What it
// needs from a browser in Node 20, and nothing more:
//
// 1. `window`: @microsoft/fetch-event-source 2.0.1 calls window.fetch, window.setTimeout
//    and window.clearTimeout. Node has all three on globalThis.
globalThis.window = globalThis;
// 2. `document`: fetch-event-source's dispose() calls document.removeEventListener(
//    "visibilitychange", ...) unconditionally, even with openWhenHidden: true (which
//    binderhub-client passes, so addEventListener and document.hidden are never used);
//    dispose() runs when the stream ends and on close(). binderhub-client reads
//    document.cookie (for an _xsrf cookie) only when it has no apiToken: a page without
//    cookies.
globalThis.document = { removeEventListener() {}, cookie: "" };
// 3. Unhandled rejections: binderhub-client does not await or catch the promise of
//    fetchEventSource(), which rejects whenever its onerror rethrows (after every
//    `failed` event and every 4xx answer: that is how it stops fetch-event-source from
//    reconnecting). A browser logs "Uncaught (in promise)"; Node >= 15 would kill the
//    process. Log and count them, as a browser console would.
const unhandled = [];
process.on("unhandledRejection", (reason) => {
  // The library's error classes do not set `name`: their constructor's name says which.
  unhandled.push(reason instanceof Error ? reason.constructor.name : String(reason));
  console.error("unhandled rejection (a browser logs 'Uncaught (in promise)'):", reason);
});

// Instrumentation, not a shim: count every request, to see reconnects.
let requests = 0;
const realFetch = globalThis.fetch;
globalThis.fetch = (input, init = {}) => {
  requests += 1;
  const headers = { ...(init.headers || {}) };
  for (const k of Object.keys(headers)) {
    if (k.toLowerCase() === "authorization") headers[k] = headers[k].replace(/ .*/, " <redacted>");
  }
  emit({ kind: "request", n: requests, t: Date.now() - started, url: String(input), headers });
  return realFetch(input, init);
};

const timeoutMs = Number(args.timeout) * 1000;
const graceMs = Number(args.grace) * 1000;
let result = null;
// unref(): the deadline itself must not keep Node alive (exit code 0 has to mean
// "nothing else did either").
setTimeout(() => {
  if (result) {
    emit({ kind: "lingering", t: Date.now() - started });
    process.exit(3);
  }
  emit({ kind: "result", outcome: "timeout", requests, elapsed: Date.now() - started, unhandledRejections: unhandled });
  process.exit(124);
}, timeoutMs).unref();

// ---------------------------------------------------------------- as fancy-profiles does
const { BinderRepository } = await import("@jupyterhub/binderhub-client/client.js");

const apiToken = process.env.BINDER_API_TOKEN || undefined;
const image = new BinderRepository(args.spec, new URL(args.endpoint), { apiToken, buildOnly: !args.launch });

async function buildImage() {
  for await (const data of image.fetch()) {
    emit({ kind: "state", t: Date.now() - started, data });
    switch (data.phase) {
      case "failed": {
        image.close();
        return { outcome: "failed", message: data.message };
      }
      case "ready": {
        // Close the EventStream when the image has been built
        image.close();
        return { outcome: "ready", imageName: data.imageName, url: data.url, token: data.token };
      }
      default:
        break;
    }
  }
  return { outcome: "ended" };
}

const outcome = await buildImage();
const iterationEnded = Date.now() - started;
await new Promise((resolve) => setTimeout(resolve, graceMs));
result = {
  kind: "result",
  ...outcome,
  buildUrl: image.buildUrl.href,
  iterationEnded,
  requests,
  elapsed: Date.now() - started,
  unhandledRejections: unhandled,
};
emit(result);
