"""Alembic environment: migrate the connection the store hands over, or the database of ``-x db=URL``."""

from alembic import context
from sqlalchemy import create_engine

from bnextbench.store import VERSION_TABLE, Base


def run(connection) -> None:
    context.configure(connection=connection, target_metadata=Base.metadata, version_table=VERSION_TABLE,
                      render_as_batch=True)  # SQLite alters tables by copying them
    with context.begin_transaction():
        context.run_migrations()


if "connection" in context.config.attributes:  # bnextbench.store.Store._migrate
    run(context.config.attributes["connection"])
else:  # the alembic command line
    with create_engine(context.get_x_argument(as_dictionary=True)["db"]).connect() as connection:
        run(connection)
