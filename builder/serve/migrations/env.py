"""Alembic's environment for the back end's schema: always run from
`builder.serve.storage.Storage.migrate`, which hands in the connection (already in its
transaction) through `config.attributes`. There is no alembic.ini: the Config is built
in code. The next revision goes beside the first in versions/, written by hand or with
`alembic.command.revision(config, autogenerate=True)` against a migrated database.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from builder.serve.storage import METADATA

connection: Connection = context.config.attributes["connection"]
# render_as_batch: SQLite alters a table by copying it, which batch mode spells out.
context.configure(connection=connection, target_metadata=METADATA,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
