"""Alembic environment, configured by r2dservice.store (no alembic.ini at run time).

The store passes an open connection in `config.attributes["connection"]`; a developer making a
new revision may instead set `sqlalchemy.url` (see README.md in this folder).
"""

from alembic import context
from sqlalchemy import create_engine

config = context.config


def run(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=None,
        # sqlite cannot ALTER most things: batch mode copies the table instead
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = create_engine(config.get_main_option("sqlalchemy.url"))
    with engine.begin() as conn:
        run(conn)
    engine.dispose()
