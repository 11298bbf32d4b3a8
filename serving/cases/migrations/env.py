"""Alembic environment of the case store. Run through ``umrisk db upgrade`` (or at the service's start):
the caller hands over its connection in ``config.attributes["connection"]``; ``sqlalchemy.url`` is the
fallback for Alembic's own command line."""

from alembic import context
from sqlalchemy import engine_from_config, pool

from umrisk.serving.cases.models import Base

config = context.config
target_metadata = Base.metadata


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True,
                      compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run(connection)
else:
    engine = engine_from_config(config.get_section(config.config_ini_section, {}), prefix="sqlalchemy.",
                                poolclass=pool.NullPool)
    with engine.connect() as conn:
        run(conn)
