"""What the providers that resolve through an HTTP API share: one lazy aiohttp session."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from dataclasses import dataclass

import aiohttp
from traitlets import Bool, Float, Unicode

from .._version import __version__
from .base import RepoProvider, ResolveError


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # case-insensitive (aiohttp's CIMultiDict)
    text: str

    def json(self):
        try:
            return json.loads(self.text)
        except ValueError:
            return None


class HTTPRepoProvider(RepoProvider):
    """A provider that asks a web API. One ClientSession per provider, created on first use."""

    request_timeout = Float(
        10.0,
        help="Seconds to wait for the repository host's API before giving up (503).",
    ).tag(config=True)
    user_agent = Unicode(
        f"r2dservice/{__version__}",
        help="User-Agent sent to the repository host's API.",
    ).tag(config=True)
    trust_env = Bool(
        True,
        help="Use the HTTP(S)_PROXY / NO_PROXY environment variables (and .netrc) for API calls.",
    ).tag(config=True)

    _session: aiohttp.ClientSession | None = None

    def _get_session(self) -> aiohttp.ClientSession:
        # created lazily: a ClientSession belongs to the running event loop
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                headers={"User-Agent": self.user_agent},
                timeout=aiohttp.ClientTimeout(total=self.request_timeout),
                trust_env=self.trust_env,
            )
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def get(self, url: str, headers: Mapping[str, str] | None = None) -> Response:
        """GET `url`; a network failure or timeout becomes ResolveError(503).

        Log lines show the URL only: tokens travel in headers, never in URLs.
        """
        self.log.debug("%s: GET %s", self.display_name, url)
        try:
            async with self._get_session().get(
                url, headers=headers or {}, allow_redirects=True
            ) as resp:
                text = await resp.text(errors="replace")
                return Response(resp.status, resp.headers, text)
        except asyncio.TimeoutError:
            raise ResolveError(
                f"{self.display_name} did not answer within {self.request_timeout:g} s "
                f"({self._host(url)}); try again in a minute",
                status=503,
            ) from None
        except aiohttp.ClientError as e:
            raise ResolveError(
                f"could not reach {self.display_name} at {self._host(url)} ({e}); "
                "try again in a minute, or tell the administrator if it persists",
                status=503,
            ) from None

    @staticmethod
    def _host(url: str) -> str:
        return url.split("://", 1)[-1].split("/", 1)[0]

    def upstream_error(self, resp: Response, what: str) -> ResolveError:
        """An error for an answer none of the documented cases cover."""
        detail = ""
        body = resp.json()
        if isinstance(body, dict) and isinstance(body.get("message"), str):
            detail = f": {body['message'][:200]}"
        if resp.status >= 500:
            return ResolveError(
                f"{self.display_name} failed while {what} (HTTP {resp.status}{detail}); "
                "try again in a minute",
                status=503,
            )
        return ResolveError(
            f"{self.display_name} answered HTTP {resp.status} while {what}{detail}; "
            "tell the administrator if it persists",
            status=502,
        )
