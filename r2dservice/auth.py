"""Who is calling and what they may do.

Handlers take the caller from one place, `BaseHandler.caller`. Without auth
(c.R2DService.auth_enabled = False) everyone is an anonymous administrator.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Caller:
    name: str  # "" for anonymous
    may_use: bool = True  # access:services!service=<name>
    may_build: bool = True  # start new builds
    is_admin: bool = True  # see and cancel everyone's builds
    scopes: frozenset = field(default_factory=frozenset)

    def may_see(self, build_user: str) -> bool:
        return self.is_admin or build_user == self.name


ANONYMOUS_ADMIN = Caller(name="")
