"""Retention: delete records (with their logs) of builds finished before a cutoff."""

from __future__ import annotations

import sqlalchemy as sa
from prometheus_client import Counter
from sqlalchemy.engine import Engine

from ..metrics import REGISTRY
from .schema import builds, chunks, requesters

PRUNE_BATCH = 500

PRUNED = Counter(
    "r2dservice_records_pruned_total",
    "Build records deleted with their logs because they finished more than retention_days ago.",
    registry=REGISTRY,
)


def prune_some(engine: Engine, cutoff: float) -> tuple[int, int]:
    """Delete up to PRUNE_BATCH records finished before `cutoff`: (records, bytes of logs)."""
    with engine.begin() as conn:
        ids = (
            conn.execute(
                sa.select(builds.c.id).where(builds.c.finished < cutoff).limit(PRUNE_BATCH)
            )
            .scalars()
            .all()
        )
        if not ids:
            return 0, 0
        log_bytes = conn.execute(
            sa.select(sa.func.coalesce(sa.func.sum(sa.func.length(chunks.c.data)), 0)).where(
                chunks.c.build_id.in_(ids)
            )
        ).scalar()
        for table in (chunks, requesters):
            conn.execute(table.delete().where(table.c.build_id.in_(ids)))
        conn.execute(builds.delete().where(builds.c.id.in_(ids)))
        return len(ids), int(log_bytes)
