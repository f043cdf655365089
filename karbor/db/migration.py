"""Schema creation and upgrades through Alembic, with the scripts shipped in the package."""

from __future__ import annotations

import os

from alembic import command
from alembic.config import Config

from karbor.db import session as db_session

MIGRATIONS_DIR = os.path.join(os.path.dirname(__file__), "migrations")


def _config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    return cfg


def db_sync(version: str = "head") -> None:
    engine = db_session.get_engine()
    cfg = _config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, version)


def db_version() -> str | None:
    from alembic.runtime.migration import MigrationContext

    engine = db_session.get_engine()
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()
