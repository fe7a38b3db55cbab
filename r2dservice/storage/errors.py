"""What the store raises, and how a database error reads to people."""

from __future__ import annotations

import asyncio
import sqlite3

from sqlalchemy import exc as sa_exc


class StoreUnavailable(Exception):
    """The database does not answer now; `message` is for a person (503s say it)."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class StoreError(Exception):
    """The store cannot start: a bad URL, a database newer than this code, a failed migration."""


class PermanentWriteError(Exception):
    """A write that will never succeed (bad data, a build row missing): dropped, not retried."""


def is_transient(error: BaseException) -> bool:
    if isinstance(error, (sa_exc.IntegrityError, sa_exc.DataError, PermanentWriteError)):
        return False
    return isinstance(error, (sa_exc.SQLAlchemyError, OSError, sqlite3.Error))


def describe(error: BaseException) -> str:
    """A short reason for people; the details (with SQL and hosts) go to the log only."""
    text = str(error).lower()
    if "locked" in text or "busy" in text:
        return "the database is locked"
    if "read-only" in text or "readonly" in text:
        return "the database is read-only"
    if isinstance(error, asyncio.TimeoutError):
        return "the database does not answer in time"
    return "the database does not answer"
