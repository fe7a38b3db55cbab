"""Build records: builds, their requesters, and their compressed event logs.

Revision ID: 0001
Revises:
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "builds",
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
    # newest-first listing and its cursor
    op.create_index("ix_builds_requested_id", "builds", ["requested", "id"])
    op.create_index("ix_builds_state", "builds", ["state"])
    op.create_index("ix_builds_finished", "builds", ["finished"])
    op.create_index("ix_builds_image_name", "builds", ["image_name"])

    op.create_table(
        "build_requesters",
        sa.Column(
            "build_id",
            sa.String(32),
            sa.ForeignKey("builds.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("name", sa.Text, primary_key=True),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("requested", sa.Float, nullable=False),
        sa.Column("withdrawn", sa.Boolean, nullable=False),
    )
    op.create_index("ix_build_requesters_name", "build_requesters", ["name", "build_id"])

    op.create_table(
        "build_log_chunks",
        sa.Column(
            "build_id",
            sa.String(32),
            sa.ForeignKey("builds.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column("first_id", sa.Integer, primary_key=True),
        sa.Column("last_id", sa.Integer, nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("marker", sa.Boolean, nullable=False),
        sa.Column("data", sa.LargeBinary, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("build_log_chunks")
    op.drop_table("build_requesters")
    op.drop_table("builds")
