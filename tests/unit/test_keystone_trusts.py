"""Trust bookkeeping of scheduled operations, and the keystoneauth helpers, without Keystone.

The API runs in noauth mode here; ``keystone.enabled`` is switched on and the two calls that
would reach Keystone (create/delete a trust) are recorded instead.  The real thing runs in
``tests/integration/test_keystone_mode.py``.
"""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from oslo_config import cfg
from sqlalchemy import select

from karbor.common import exception, keystone
from karbor.common.context import RequestContext
from karbor.db import models
from karbor.db.session import session_scope
from karbor.services.operationengine import operations, trusts
from tests.unit.apiclient import Api


class FakeKeystone:
    def __init__(self, monkeypatch):
        self.created: list[str] = []
        self.deleted: list[str] = []
        self.fail_create: Exception | None = None
        monkeypatch.setattr(keystone, "enabled", lambda: True)
        monkeypatch.setattr(keystone, "create_trust", self.create_trust)
        monkeypatch.setattr(keystone, "delete_trust", self.delete_trust)

    def create_trust(self, context):
        if self.fail_create is not None:
            raise self.fail_create
        trust_id = f"trust-{len(self.created) + 1}-{context.user_id}"
        self.created.append(trust_id)
        return trust_id

    def delete_trust(self, context, trust_id):
        self.deleted.append(trust_id)
        return True


@pytest.fixture
def fake(monkeypatch):
    return FakeKeystone(monkeypatch)


@pytest.fixture
def api(unit_app):
    return Api(unit_app, uuid.uuid4().hex)


def trust_of(operation_id: str) -> str | None:
    with session_scope() as session:
        return trusts.trust_of(session, operation_id)


def operation_count(project: str) -> int:
    with session_scope() as session:
        return len(session.scalars(select(models.ScheduledOperation).where(
            models.ScheduledOperation.project_id == project)).all())


def test_trust_created_reused_per_user_and_deleted_with_the_last_operation(api, fake):
    trigger, plan = api.trigger(), api.plan()
    first = api.operation(trigger["id"], plan["id"], name="first")
    second = api.operation(trigger["id"], plan["id"], name="second")
    bob = api.as_user("bob")
    third = bob.operation(trigger["id"], plan["id"], name="bob's")
    assert fake.created == ["trust-1-alice", "trust-2-bob"]
    assert trust_of(first["id"]) == trust_of(second["id"]) == "trust-1-alice"
    assert trust_of(third["id"]) == "trust-2-bob"

    assert api.delete(f"scheduled_operations/{first['id']}")[0] == 200
    assert fake.deleted == []
    assert api.delete(f"scheduled_operations/{second['id']}")[0] == 200
    assert fake.deleted == ["trust-1-alice"]
    assert bob.delete(f"scheduled_operations/{third['id']}")[0] == 200
    assert fake.deleted == ["trust-1-alice", "trust-2-bob"]
    # a new operation after that gets a new trust
    fourth = api.operation(trigger["id"], plan["id"], name="fourth")
    assert trust_of(fourth["id"]) == "trust-3-alice"


def test_bad_request_never_reaches_keystone(api, fake):
    trigger = api.trigger()
    status, body = api.post("scheduled_operations", {"scheduled_operation": {
        "name": "bad", "operation_type": "protect", "trigger_id": trigger["id"],
        "operation_definition": {"provider_id": str(uuid.uuid4()),
                                 "plan_id": str(uuid.uuid4())}}})
    assert status in (400, 404), body
    assert fake.created == [] and operation_count(api.project) == 0


@pytest.mark.parametrize("error, status", [
    (exception.NotAuthorized("Keystone refused to create a trust: no (HTTP 403)"), 403),
    (exception.ServiceUnavailable(reason="Karbor cannot create a trust: unreachable"), 503),
])
def test_keystone_refusal_is_shown_and_nothing_is_written(api, fake, error, status):
    trigger, plan = api.trigger(), api.plan()
    fake.fail_create = error
    code, body = api.post("scheduled_operations", {"scheduled_operation": {
        "name": "refused", "operation_type": "protect", "trigger_id": trigger["id"],
        "operation_definition": {"provider_id": plan["provider_id"], "plan_id": plan["id"]}}})
    assert code == status
    assert error.msg in str(body)
    assert operation_count(api.project) == 0


def test_failure_after_the_trust_was_created_deletes_it(api, fake, monkeypatch):
    from karbor.api.v1 import scheduled_operations

    trigger, plan = api.trigger(), api.plan()

    def broken_view(op):
        raise RuntimeError("boom")

    monkeypatch.setattr(scheduled_operations, "view", broken_view)
    code, _ = api.post("scheduled_operations", {"scheduled_operation": {
        "name": "x", "operation_type": "protect", "trigger_id": trigger["id"],
        "operation_definition": {"provider_id": plan["provider_id"], "plan_id": plan["id"]}}})
    assert code == 500
    assert fake.created == fake.deleted == ["trust-1-alice"]
    assert operation_count(api.project) == 0


def test_a_trust_lost_meanwhile_is_replaced(api, fake, monkeypatch):
    trigger, plan = api.trigger(), api.plan()
    monkeypatch.setattr(trusts, "reusable_trust", lambda *a, **k: "gone-trust")
    op = api.operation(trigger["id"], plan["id"])
    assert trust_of(op["id"]) == "trust-1-alice"


def test_engine_acts_through_the_trust(api, fake, monkeypatch):
    trigger, plan = api.trigger(), api.plan()
    op_view = api.operation(trigger["id"], plan["id"])
    seen = []

    def trust_context(trust_id, *, project_id=None):
        seen.append((trust_id, project_id))
        return RequestContext(user_id="alice-id", project_id=project_id, roles=["member"],
                              auth_token="trust-token")

    monkeypatch.setattr(trusts, "trust_context", trust_context)
    with session_scope() as session:
        op = session.get(models.ScheduledOperation, op_view["id"])
        ctx = operations.owner_context(op, session)
    assert seen == [("trust-1-alice", api.project)]
    assert (ctx.user_id, ctx.auth_token) == ("alice-id", "trust-token")
    # without a session it opens its own
    assert operations.owner_context(op).auth_token == "trust-token"


def test_engine_refuses_an_operation_without_trust(api, monkeypatch):
    trigger, plan = api.trigger(), api.plan()
    op_view = api.operation(trigger["id"], plan["id"])  # noauth: no trust
    monkeypatch.setattr(keystone, "enabled", lambda: True)
    with session_scope() as session:
        op = session.get(models.ScheduledOperation, op_view["id"])
        with pytest.raises(exception.NotAuthorized, match="no Keystone trust"):
            operations.owner_context(op, session)
    monkeypatch.setattr(keystone, "enabled", lambda: False)
    ctx = operations.owner_context(op)
    assert (ctx.user_id, ctx.project_id) == ("alice", api.project)


def test_noauth_creates_no_trust(api, monkeypatch):
    called = []
    monkeypatch.setattr(keystone, "create_trust", lambda ctx: called.append(ctx))
    trigger, plan = api.trigger(), api.plan()
    op = api.operation(trigger["id"], plan["id"])
    assert called == [] and trust_of(op["id"]) is None


# --------------------------------------------------------------------------- keystone.py


@pytest.fixture
def trustee_conf(monkeypatch):
    """A private ConfigOpts with a [trustee] section (the plugin's options are required ones:
    registered on the global CONF they would outlive the test)."""
    conf = cfg.ConfigOpts()
    ks_loading.register_auth_conf_options(conf, "trustee")
    ks_loading.register_session_conf_options(conf, "trustee")
    conf([], project="karbor-unit-tests", default_config_files=[])
    conf.register_opts(ks_loading.get_auth_plugin_conf_options("password"), group="trustee")
    values = {"auth_type": "password", "auth_url": "http://keystone.example:5000",
              "username": "karbor", "password": "secret", "user_domain_id": "default",
              "project_name": "service", "project_domain_id": "default"}
    for key, value in values.items():
        conf.set_override(key, value, group="trustee")
    monkeypatch.setattr(keystone, "CONF", conf)
    keystone._reset_for_tests()
    yield conf
    keystone._reset_for_tests()


def test_trust_auth_is_the_service_user_scoped_to_the_trust(trustee_conf):
    elements = keystone.trust_auth("abc").get_cache_id_elements()
    assert elements["trust_id"] == "abc"
    assert elements["username"] == "karbor" and elements["password"] == "secret"
    assert elements["project_name"] is None and elements["project_id"] is None
    service = keystone.service_auth().get_cache_id_elements()
    assert service["project_name"] == "service" and service["trust_id"] is None


def test_identity_url(trustee_conf):
    assert keystone.identity_url() == "http://keystone.example:5000/v3"
    trustee_conf.set_override("auth_url", "http://k/identity/v3/", group="trustee")
    assert keystone.identity_url() == "http://k/identity/v3"


def test_missing_trustee_section_is_a_clear_503(unit_app):
    keystone._reset_for_tests()
    with pytest.raises(exception.ServiceUnavailable, match=r"\[trustee\]"):
        keystone.service_auth()


def test_user_auth_uses_the_validated_token_without_authenticating():
    body = {"token": {"user": {"id": "u1", "name": "demo", "domain": {"id": "default"}},
                      "project": {"id": "p1", "name": "demo", "domain": {"id": "default"}},
                      "roles": [{"id": "r", "name": "member"}], "catalog": [],
                      "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1))
                      .strftime("%Y-%m-%dT%H:%M:%S.000000Z")}}
    ctx = RequestContext(user_id="u1", project_id="p1", roles=["member"], auth_token="tok",
                         auth_token_info=body)
    auth = keystone.user_auth(ctx)
    assert auth.get_token(None) == "tok"
    again = keystone.context_from_access(auth.get_auth_ref(None))
    assert (again.user_id, again.project_id, again.roles, again.auth_token) == (
        "u1", "p1", ["member"], "tok")
    with pytest.raises(exception.NotAuthenticated):
        keystone.user_auth(RequestContext(user_id="u1", project_id="p1"))


@pytest.mark.parametrize("error, cls, code", [
    (ks_exc.Unauthorized(http_status=401), exception.NotAuthenticated, 401),
    (ks_exc.Forbidden(http_status=403, details="no"), exception.NotAuthorized, 403),
    (ks_exc.NotFound(http_status=404), exception.NotFound, 404),
    (ks_exc.BadRequest(http_status=400), exception.Invalid, 400),
    (ks_exc.InternalServerError(http_status=500), exception.ServiceUnavailable, 503),
    (ks_exc.ConnectFailure("refused"), exception.ServiceUnavailable, 503),
])
def test_identity_errors_keep_a_status(error, cls, code):
    converted = keystone.identity_error(error, "create a trust")
    assert isinstance(converted, cls) and converted.code == code
    assert "create a trust" in converted.msg
