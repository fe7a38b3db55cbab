"""JupyterHub's REST API on a user's behalf: their servers, with their own token.

A launch never uses the service's own token: what it may do is exactly what the
caller's token (OAuth login or API token) may do at the hub. The service's token only
counts every user's servers for the per-repository quota (repoquota.py).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .sseclient import SSEParser


class HubAPIError(Exception):
    """The hub refused or failed a request: its status and message, for a person."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


def server_path(user: str, server: str) -> str:
    """users/<user>/server (the default server) or users/<user>/servers/<name>."""
    base = f"users/{quote(user, safe='')}"
    return f"{base}/servers/{quote(server, safe='')}" if server else f"{base}/server"


def said_by_hub(message: str) -> str:
    """The hub's error message for a person, named as the hub's once (the service's
    own "JupyterHub does not answer" already says whose it is)."""
    return message if message.startswith("JupyterHub") else f"JupyterHub: {message}"


class HubAPI:
    """A few calls of the hub's API, with one user's token."""

    def __init__(self, api_url: str, token: str, timeout: float = 10):
        self.api_url = api_url.rstrip("/") + "/"
        self.token = token
        self.timeout = timeout
        self.client = AsyncHTTPClient()

    def _request(self, method: str, path: str, body=None, **kw) -> HTTPRequest:
        headers = {"Authorization": f"token {self.token}", "Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return HTTPRequest(
            self.api_url + path,
            method=method,
            headers=headers,
            body=json.dumps(body) if body is not None else None,
            connect_timeout=self.timeout,
            request_timeout=kw.pop("request_timeout", self.timeout),
            allow_nonstandard_methods=True,
            **kw,
        )

    async def call(
        self, method: str, path: str, body=None, accept: str = "", timeout: float = 0
    ) -> tuple[int, dict]:
        """(status, JSON body) of a call the hub answered with 2xx; HubAPIError otherwise.
        `timeout`: this call's own limit (0: the client's)."""
        req = self._request(method, path, body, request_timeout=timeout or self.timeout)
        if accept:
            req.headers["Accept"] = accept
        try:
            resp = await self.client.fetch(req, raise_error=False)
        except (OSError, HTTPClientError) as e:
            raise HubAPIError(
                503, f"JupyterHub does not answer ({e}); try again in a moment."
            ) from None
        if resp.code == 599:
            raise HubAPIError(
                503, f"JupyterHub does not answer ({resp.error}); try again in a moment."
            )
        try:
            reply = json.loads(resp.body or b"{}")
        except ValueError:
            reply = {"message": (resp.body or b"").decode(errors="replace")[:300]}
        if not isinstance(reply, dict):
            reply = {"value": reply}
        if resp.code >= 400:
            raise HubAPIError(resp.code, str(reply.get("message") or f"HTTP {resp.code}"))
        return resp.code, reply

    async def active_users(self, max_pages: int = 1000) -> list[dict]:
        """Every user with a server that is running or starting (`state=active`), page
        by page; each model has `servers` (with their user_options) only if the token
        has read:servers. Needs list:users."""
        users: list[dict] = []
        offset = 0
        for _ in range(max_pages):
            _, page = await self.call(
                "GET",
                f"users?state=active&offset={offset}",
                accept="application/jupyterhub-pagination+json",
            )
            users.extend(u for u in page.get("items") or () if isinstance(u, dict))
            following = (page.get("_pagination") or {}).get("next")
            if not following:
                return users
            offset = int(following["offset"])
        return users

    async def user(self, name: str) -> dict:
        return (await self.call("GET", f"users/{quote(name, safe='')}"))[1]

    # The hub answers a start or a stop when it is done, or after its own
    # c.JupyterHub.tornado_settings slow_spawn_timeout / slow_stop_timeout (10 s by
    # default) with 202: a limit of 10 s for the call itself gave up just as the hub
    # answered, and a server slower than that to start was "JupyterHub does not answer".
    async def start(self, user: str, server: str, user_options: dict, timeout: float) -> int:
        """201: running; 202: starting (the body is the user_options, which both
        JupyterHub 5 and 6 read). `timeout`: how long the hub may take to answer."""
        status, _ = await self.call(
            "POST", server_path(user, server), user_options, timeout=timeout
        )
        return status

    async def stop(self, user: str, server: str, timeout: float) -> int:
        status, _ = await self.call("DELETE", server_path(user, server), timeout=timeout)
        return status

    async def progress(self, user: str, server: str, timeout: float) -> AsyncIterator[dict]:
        """The hub's spawn progress events, to the last one ("ready" or "failed")."""
        queue: asyncio.Queue = asyncio.Queue()
        parser = SSEParser()

        def on_chunk(chunk: bytes) -> None:
            for _, data in parser.feed(chunk):
                try:
                    event = json.loads(data)
                except ValueError:
                    continue
                if isinstance(event, dict):
                    queue.put_nowait(event)

        req = self._request(
            "GET",
            server_path(user, server) + "/progress",
            streaming_callback=on_chunk,
            request_timeout=timeout,
        )
        req.headers["Accept"] = "text/event-stream"
        fetch = asyncio.ensure_future(self.client.fetch(req, raise_error=False))
        deadline = time.monotonic() + timeout
        try:
            while True:
                getter = asyncio.ensure_future(queue.get())
                done, _ = await asyncio.wait(
                    {getter, fetch},
                    timeout=max(0.0, deadline - time.monotonic()),
                    return_when=asyncio.FIRST_COMPLETED,
                )
                if getter in done:
                    event = getter.result()
                    yield event
                    if event.get("ready") or event.get("failed"):
                        return
                    continue
                getter.cancel()
                if not done:
                    raise HubAPIError(504, f"The server did not start within {timeout:g} s.")
                while not queue.empty():  # the stream ended: its last events
                    event = queue.get_nowait()
                    yield event
                    if event.get("ready") or event.get("failed"):
                        return
                resp = fetch.result()
                if resp.code >= 400:
                    raise HubAPIError(resp.code, f"The hub's progress stream: HTTP {resp.code}")
                return  # ended without a last event: the caller asks for the server's state
        finally:
            if not fetch.done():
                fetch.cancel()
