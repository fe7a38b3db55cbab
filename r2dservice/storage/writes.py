"""The SQL of the writes: a batch of queued ops in one transaction (in the write thread)."""

from __future__ import annotations

import logging

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from .errors import PermanentWriteError, is_transient
from .eventchunks import (
    HEAD_FRACTION,
    Dropped,
    bound_events,
    decode_chunk,
    encode_chunk,
    event_bytes,
    split_chunks,
)
from .schema import RECORD_COLUMNS, BuildRecord, builds, chunks, requesters
from .writequeue import Op


def write_batch(
    engine: Engine, batch: list[Op], max_log_bytes: int, log: logging.Logger
) -> tuple[set[Op], BaseException | None]:
    """Write ops in one transaction: the ops done (written, or dropped as hopeless), and the
    transient error that stopped the others (None if none did)."""
    try:
        with engine.begin() as conn:
            write_ops(conn, batch, max_log_bytes)
        return set(batch), None
    except Exception as e:
        if is_transient(e):
            return set(), e
    # something in the batch will never go in: one op at a time (rows first) finds it
    done = set()
    for op in sorted(batch, key=lambda op: op.kind != "save"):
        try:
            with engine.begin() as conn:
                write_ops(conn, [op], max_log_bytes)
        except Exception as e:
            if is_transient(e):
                return done, e
            log.error("Build store: dropping a %s of build %s: %s", op.kind, op.build_id, e)
        done.add(op)
    return done, None


def write_ops(conn: Connection, ops: list[Op], max_log_bytes: int) -> None:
    # the rows first: a log needs its build's row, and a caller may log before saving
    for op in ops:
        if op.kind == "save":
            upsert(conn, op.payload)
    appends: dict[str, list[tuple[int, dict]]] = {}
    for op in ops:
        if op.kind == "save":
            continue
        if op.kind == "append":
            appends.setdefault(op.build_id, []).extend(op.payload)
        else:
            appends.pop(op.build_id, None)
            replace_log(conn, op.build_id, op.payload, max_log_bytes)
    for build_id, events in appends.items():
        append_log(conn, build_id, events, max_log_bytes)


def upsert(conn: Connection, record: BuildRecord) -> None:
    row = {name: getattr(record, name) for name in RECORD_COLUMNS}
    insert = _insert(conn, builds).values(**row)
    conn.execute(
        insert.on_conflict_do_update(
            index_elements=[builds.c.id],
            set_={k: insert.excluded[k] for k in RECORD_COLUMNS if k != "id"},
        )
    )
    conn.execute(requesters.delete().where(requesters.c.build_id == record.id))
    if record.requesters:
        conn.execute(
            requesters.insert(),
            [
                {
                    "build_id": record.id,
                    "name": name,
                    "position": n,
                    "requested": when,
                    "withdrawn": name in record.withdrawn,
                }
                for n, (name, when) in enumerate(record.requesters.items())
            ],
        )


def _insert(conn: Connection, table: sa.Table):
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    elif conn.dialect.name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert
    else:
        raise PermanentWriteError(f"upsert not supported on {conn.dialect.name}")
    return insert(table)


def _require_build(conn: Connection, build_id: str) -> None:
    if conn.execute(sa.select(builds.c.id).where(builds.c.id == build_id)).first() is None:
        raise PermanentWriteError(f"no build {build_id} saved before its log")


def append_log(
    conn: Connection, build_id: str, events: list[tuple[int, dict]], max_log_bytes: int
) -> None:
    _require_build(conn, build_id)
    last = conn.execute(
        sa.select(sa.func.max(chunks.c.last_id)).where(chunks.c.build_id == build_id)
    ).scalar()
    # a retry after a lost commit acknowledgement must not store events twice
    events = sorted((e for e in events if last is None or e[0] > last), key=lambda e: e[0])
    if not events:
        return
    _insert_chunks(conn, build_id, events, max_log_bytes)
    _trim(conn, build_id, max_log_bytes)


def replace_log(
    conn: Connection, build_id: str, events: list[tuple[int, dict]], max_log_bytes: int
) -> None:
    _require_build(conn, build_id)
    conn.execute(chunks.delete().where(chunks.c.build_id == build_id))
    events = sorted(events, key=lambda e: e[0])
    _insert_chunks(conn, build_id, bound_events(events, max_log_bytes), max_log_bytes)


def chunk_bytes(max_log_bytes: int) -> int:
    # small enough that dropping whole chunks keeps a log near its bound
    return max(4096, min(256 * 1024, max_log_bytes // 8 or 256 * 1024))


def _insert_chunks(
    conn: Connection, build_id: str, events: list[tuple[int, dict]], max_log_bytes: int
) -> None:
    rows = [
        {
            "build_id": build_id,
            "first_id": piece[0][0],
            "last_id": piece[-1][0],
            "size": sum(event_bytes(e) for _, e in piece),
            "marker": marker,
            "data": encode_chunk(piece),
        }
        for piece, marker in split_chunks(events, chunk_bytes(max_log_bytes))
    ]
    if rows:
        conn.execute(chunks.insert(), rows)


def _trim(conn: Connection, build_id: str, max_bytes: int) -> None:
    """Past max_log_bytes, drop whole chunks after the head, keep the tail, merge one marker."""
    where = chunks.c.build_id == build_id
    if (
        not max_bytes
        or conn.execute(sa.select(sa.func.sum(chunks.c.size)).where(where)).scalar() <= max_bytes
    ):
        return
    rows = conn.execute(
        sa.select(chunks.c.first_id, chunks.c.size, chunks.c.marker)
        .where(where)
        .order_by(chunks.c.first_id)
    ).all()
    head, head_bytes = 0, 0
    while (
        head < len(rows)
        and not rows[head].marker
        and head_bytes + rows[head].size <= int(max_bytes * HEAD_FRACTION)
    ):
        head_bytes += rows[head].size
        head += 1
    tail, tail_bytes = len(rows), 0
    while tail > head and (
        tail == len(rows) or tail_bytes + rows[tail - 1].size <= max_bytes - head_bytes
    ):
        tail_bytes += rows[tail - 1].size
        tail -= 1
    gone = [r.first_id for r in rows[head:tail]]
    if not gone or (len(gone) == 1 and rows[head].marker):
        return
    dropped = Dropped()
    last_gone = 0
    for data in conn.execute(
        sa.select(chunks.c.data)
        .where(where, chunks.c.first_id.in_(gone))
        .order_by(chunks.c.first_id)
    ).scalars():
        for i, event in decode_chunk(data):
            dropped.add(event)
            last_gone = i
    conn.execute(chunks.delete().where(where, chunks.c.first_id.in_(gone)))
    _insert_chunks(conn, build_id, [(last_gone, dropped.marker(max_bytes))], max_bytes)
