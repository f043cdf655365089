"""Unit-tier fixtures: the real WSGI app on a throw-away SQLite database."""

from __future__ import annotations

import pytest

from karbor import policy
from karbor.api.app import create_app
from karbor.common import config
from karbor.common.config import CONF
from karbor.db import migration
from karbor.db import session as db_session
from karbor.services.protection import provider as provider_mod


@pytest.fixture(scope="module")
def unit_app(tmp_path_factory):
    """One database per test module; tests isolate themselves by project."""
    config.parse_args([], "karbor-unit-tests")
    db_session.dispose()
    provider_mod.reset_registry()
    policy.reset()
    CONF.set_override("state_path", str(tmp_path_factory.mktemp("state")))
    migration.db_sync()
    yield create_app()
    db_session.dispose()
    provider_mod.reset_registry()
    policy.reset()
    CONF.clear_override("state_path")


