"""The reads: queries built from a listing's filters, and what runs them in the read thread."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from .eventchunks import decode_chunk
from .schema import RECORD_COLUMNS, UNFINISHED_STATES, BuildRecord, builds, chunks, requesters

MAX_PAGE = 1000


def list_query(
    *,
    user: str | None = None,
    states: Iterable[str] = (),
    spec: str = "",
    image: str = "",
    since: float | None = None,
    until: float | None = None,
    cursor: str | None = None,
    limit: int = 50,
    image_repository: str = "",
):
    """The query of one page of BuildStore.list() (one row more than `limit`: is there more?)."""
    query = sa.select(builds)
    if user is not None:
        query = query.where(
            sa.exists().where(requesters.c.build_id == builds.c.id, requesters.c.name == user)
        )
    if states:
        query = query.where(builds.c.state.in_(sorted(states)))
    if spec:
        whole = sa.func.lower(builds.c.provider + "/" + builds.c.spec)
        query = query.where(whole.contains(spec.lower(), autoescape=True))
    if image:
        query = query.where(builds.c.image_name == image)
    if image_repository:
        query = query.where(builds.c.image_name.startswith(image_repository + ":", autoescape=True))
    if since is not None:
        query = query.where(builds.c.requested >= since)
    if until is not None:
        query = query.where(builds.c.requested < until)
    if cursor:
        requested, build_id = decode_cursor(cursor)
        query = query.where(
            sa.or_(
                builds.c.requested < requested,
                sa.and_(builds.c.requested == requested, builds.c.id < build_id),
            )
        )
    return query.order_by(builds.c.requested.desc(), builds.c.id.desc()).limit(limit + 1)


def encode_cursor(requested: float, build_id: str) -> str:
    raw = json.dumps([requested, build_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[float, str]:
    """The position a cursor names; ValueError for one this store did not make."""
    try:
        requested, build_id = json.loads(
            base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        )
        return float(requested), str(build_id)
    except (ValueError, TypeError, binascii.Error):
        raise ValueError(f"invalid cursor {cursor!r}") from None


def one_query(build_id: str):
    return sa.select(builds).where(builds.c.id == build_id)


def unfinished_query():
    """Records still queued or running, oldest first."""
    return (
        sa.select(builds)
        .where(builds.c.state.in_(UNFINISHED_STATES))
        .order_by(builds.c.requested, builds.c.id)
    )


# --- in the read thread ------------------------------------------------------------------------


def probe_query(conn: Connection) -> None:
    # a read that touches the file: a locked sqlite database fails it, SELECT 1 would not
    conn.execute(sa.select(builds.c.id).limit(1)).all()


def select_records(conn: Connection, query) -> list[BuildRecord]:
    rows = conn.execute(query).mappings().all()
    if not rows:
        return []
    ids = [row["id"] for row in rows]
    who: dict[str, list] = {i: [] for i in ids}
    for r in conn.execute(
        sa.select(requesters).where(requesters.c.build_id.in_(ids)).order_by(requesters.c.position)
    ).mappings():
        who[r["build_id"]].append(r)
    return [
        BuildRecord(
            **{name: row[name] for name in RECORD_COLUMNS},
            requesters={r["name"]: r["requested"] for r in who[row["id"]]},
            withdrawn={r["name"] for r in who[row["id"]] if r["withdrawn"]},
        )
        for row in rows
    ]


def select_events(conn: Connection, build_id: str, after: int) -> list[tuple[int, dict]]:
    out = []
    for data in conn.execute(
        sa.select(chunks.c.data)
        .where(chunks.c.build_id == build_id, chunks.c.last_id > after)
        .order_by(chunks.c.first_id)
    ).scalars():
        out.extend((i, e) for i, e in decode_chunk(data) if i > after)
    return out
