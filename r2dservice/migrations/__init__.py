"""Alembic migrations of the build store; r2dservice.store applies them at start."""
