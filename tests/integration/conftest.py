"""Fixtures of the integration tier.

* ``postgresql_server`` -- the functional tier's throw-away PostgreSQL server from
  Debian's packages (re-used, not duplicated: see ``tests/functional/conftest.py``).
* ``in_process_karbor`` -- a factory that points this process's configuration at a
  database URL, migrates it and returns the real WSGI app, for setting up data the way
  the API does; configuration and connections are restored afterwards.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from karbor import policy
from karbor.api.app import create_app
from karbor.common import config
from karbor.common.config import CONF
from karbor.db import migration
from karbor.db import session as db_session
from karbor.services.protection import provider as provider_mod
from tests.functional.conftest import PostgresServer, postgresql_server  # noqa: F401

__all__ = ["PostgresServer"]


@pytest.fixture
def in_process_karbor(tmp_path) -> Iterator[Callable[[str], object]]:
    def configure(db_url: str):
        config.parse_args([], "karbor-integration-tests")
        db_session.dispose()
        provider_mod.reset_registry()
        policy.reset()
        CONF.set_override("state_path", str(tmp_path / "state"))
        CONF.set_override("connection", db_url, group="database")
        migration.db_sync()
        return create_app()

    yield configure
    db_session.dispose()
    provider_mod.reset_registry()
    policy.reset()
    CONF.clear_override("connection", group="database")
    CONF.clear_override("state_path")


# --------------------------------------------------------------------------- Swift + S3


@pytest.fixture(scope="session")
def swift_server():
    """A real Swift all-in-one on 127.0.0.1 with tempauth and s3api (one server for the
    Swift and the S3 banks; see ``tests/integration/swift_server.py``).  Swift is installed
    into ``.state/swift-venv`` on first use.  Failing to install or start is a failure."""
    from tests.integration.swift_server import SwiftError, SwiftServer, ensure_swift_venv

    try:
        server = SwiftServer(ensure_swift_venv())
        server.start()
    except SwiftError as exc:
        pytest.fail(f"cannot run Swift: {exc}")
    try:
        yield server
    finally:
        server.stop()
