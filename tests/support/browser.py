"""Headless Chromium for the browser tests: Debian's chromium, with the flags that keep
it off this machine's closed network (no background connections, updates or sync)."""

BROWSER_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
