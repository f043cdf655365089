"""Alembic environment: runs on the connection handed over by karbor.db.migration."""

from alembic import context

from karbor.db.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:
    raise RuntimeError("run migrations through 'karbor-manage db sync'")
context.configure(connection=connection, target_metadata=Base.metadata,
                  render_as_batch=connection.dialect.name == "sqlite")
with context.begin_transaction():
    context.run_migrations()
