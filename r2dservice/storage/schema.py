"""The tables (as the Alembic revisions make them) and the record a row and its requesters make."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import sqlalchemy as sa

UNFINISHED_STATES = ("queued", "running")

# The tables as revision 0001 made them; keep in step with r2dservice/migrations/versions/.
metadata = sa.MetaData()
builds = sa.Table(
    "builds",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("image_name", sa.Text, nullable=False),
    sa.Column("provider", sa.Text, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("repo_url", sa.Text, nullable=False),
    sa.Column("ref", sa.Text, nullable=False),
    sa.Column("builder", sa.Text, nullable=False),
    sa.Column("handle", sa.Text, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("failure", sa.Text, nullable=False),
    sa.Column("requested", sa.Float, nullable=False),
    sa.Column("started", sa.Float),
    sa.Column("finished", sa.Float),
    sa.Column("last_event_id", sa.Integer, nullable=False),
    sa.Column("cancelled_by", sa.Text),
)
requesters = sa.Table(
    "build_requesters",
    metadata,
    sa.Column(
        "build_id", sa.String(32), sa.ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("name", sa.Text, primary_key=True),
    sa.Column("position", sa.Integer, nullable=False),
    sa.Column("requested", sa.Float, nullable=False),
    sa.Column("withdrawn", sa.Boolean, nullable=False),
)
chunks = sa.Table(
    "build_log_chunks",
    metadata,
    sa.Column(
        "build_id", sa.String(32), sa.ForeignKey("builds.id", ondelete="CASCADE"), primary_key=True
    ),
    sa.Column("first_id", sa.Integer, primary_key=True),
    sa.Column("last_id", sa.Integer, nullable=False),
    sa.Column("size", sa.Integer, nullable=False),  # what the events count for the bound
    sa.Column("marker", sa.Boolean, nullable=False),  # one event standing for a dropped middle
    sa.Column("data", sa.LargeBinary, nullable=False),  # zlib of JSON lines [id, event]
)
RECORD_COLUMNS = [c.name for c in builds.columns]


@dataclass
class BuildRecord:
    id: str  # 16 hex chars, the Build's id
    image_name: str
    provider: str
    spec: str  # already redacted by the caller
    repo_url: str  # already redacted
    ref: str  # resolved commit
    builder: str  # "local", "kubernetes", or a class path
    handle: str  # the builder's handle: the pod name / build name ("" if none)
    state: str  # queued | running | ready | failed | cancelled
    failure: str = ""  # the reason, for failed/cancelled
    requested: float = 0.0  # epoch seconds
    started: float | None = None
    finished: float | None = None
    last_event_id: int = 0
    requesters: dict[str, float] = field(default_factory=dict)  # user -> first asked; ordered
    withdrawn: set[str] = field(default_factory=set)
    cancelled_by: str | None = None

    def copy(self) -> BuildRecord:
        return replace(self, requesters=dict(self.requesters), withdrawn=set(self.withdrawn))
