"""How many event streams one caller may hold open at once.

Streams are the service's long-lived connections (a build's stream lasts as long as the
build): without a bound, one user's script opening thousands of them takes memory and
file descriptors from everyone else. Short requests need no count; a request that
trickles its headers is cut off by the server's header timeout before it is anyone's.
"""

from __future__ import annotations

from collections import Counter
from contextlib import contextmanager


class TooManyStreams(Exception):
    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StreamLimits:
    """Open streams per caller name; `per_user` 0 means no limit. The anonymous caller
    of a service without authentication ("") is nobody in particular: not limited."""

    def __init__(self, per_user: int = 0):
        self.per_user = per_user
        self.open: Counter[str] = Counter()

    @contextmanager
    def stream(self, user: str):
        """Hold one of `user`'s streams for the block; TooManyStreams past the limit."""
        if user and self.per_user and self.open[user] >= self.per_user:
            raise TooManyStreams(
                f"You have {self.open[user]} event streams open, the most this service "
                "allows one user: close some (a build goes on without its viewers) and "
                "try again."
            )
        self.open[user] += 1
        try:
            yield
        finally:
            self.open[user] -= 1
            if not self.open[user]:
                del self.open[user]
