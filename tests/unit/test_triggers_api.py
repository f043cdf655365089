"""Triggers and scheduled operations through the real WSGI app (no server, no network).

One SQLite database per module; every test works in its own project so that
listings only see what the test created.
"""

from __future__ import annotations

import datetime as dt
import json
import urllib.parse
import uuid

import pytest
from sqlalchemy import select

from karbor.common.config import CONF
from karbor.db import models
from karbor.db.session import session_scope
from tests.unit.apiclient import NOOP, PATTERN, Api

SEED_PATTERN = "BEGIN:VEVENT\\nRRULE:FREQ=MINUTELY;INTERVAL=5;\\nEND:VEVENT"
MISSING = "2f1c0a8e-5b5a-4d53-9f55-000000000000"


@pytest.fixture(scope="module")
def app(unit_app):
    return unit_app


@pytest.fixture
def api(app):
    return Api(app, "proj-" + uuid.uuid4().hex[:12])


def error(body) -> tuple[str, str]:
    (name, fault), = body.items()
    return name, fault["message"]


def create_trigger_body(**overrides):
    info = {"name": "t1", "type": "time",
            "properties": {"pattern": PATTERN, "format": "calendar", "window": 1800,
                           "start_time": "2020-01-01 00:00:00"}}
    info.update(overrides)
    return {"trigger_info": info}


# ---------------------------------------------------------------------------------------
# triggers: the happy path


def test_create_trigger_as_the_client_sends_it(api):
    status, body = api.post("triggers", create_trigger_body())
    assert status == 200
    info = body["trigger_info"]
    assert uuid.UUID(info["id"])
    assert info == {"id": info["id"], "name": "t1", "type": "time",
                    "properties": {"pattern": PATTERN, "format": "calendar", "window": "1800",
                                   "start_time": "2020-01-01 00:00:00"}}
    assert api.get(f"triggers/{info['id']}") == (200, {"trigger_info": info})


def test_seed_trigger_defaults_start_time_to_now(api):
    before = dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)
    status, body = api.post("triggers", {"trigger_info": {
        "name": "My Trigger", "type": "time",
        "properties": {"pattern": SEED_PATTERN, "format": "calendar"}}})
    after = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    assert status == 200, body
    props = body["trigger_info"]["properties"]
    assert set(props) == {"pattern", "format", "start_time"}
    start = dt.datetime.strptime(props["start_time"], "%Y-%m-%d %H:%M:%S")
    assert before <= start <= after


def test_iso_start_time_is_stored_in_the_original_format(api):
    info = api.trigger(start_time="2021-05-06T07:08:09", end_time="2022-01-01T00:00:00")
    assert info["properties"]["start_time"] == "2021-05-06 07:08:09"
    assert info["properties"]["end_time"] == "2022-01-01 00:00:00"


def test_crontab_trigger(api):
    info = api.trigger(format="crontab", pattern="0 */2 * * *", window="600")
    assert info["properties"]["format"] == "crontab"
    assert info["properties"]["window"] == "600"


def test_trigger_is_stored_for_the_callers_project(api):
    info = api.trigger()
    with session_scope() as session:
        row = session.get(models.Trigger, info["id"])
        assert row.project_id == api.project
        assert json.loads(row.properties)["pattern"] == PATTERN


def test_list_triggers_filters(api):
    t1 = api.trigger(name="daily-1.50")
    t2 = api.trigger(name="hourly-1.5x", format="crontab", pattern="0 * * * *")
    t3 = api.trigger(name="weekly", window=7200)
    status, body = api.get("triggers")
    assert status == 200
    assert {t["id"] for t in body["triggers"]} == {t1["id"], t2["id"], t3["id"]}
    assert "triggers_links" not in body
    # name is a regex taken verbatim (not literal_eval'ed: "1.50" must not become 1.5)
    assert [t["id"] for t in api.get("triggers", name="1.50")[1]["triggers"]] == [t1["id"]]
    assert {t["id"] for t in api.get("triggers", name="[0-9]")[1]["triggers"]} == \
        {t1["id"], t2["id"]}
    assert [t["id"] for t in api.get("triggers", name="^h")[1]["triggers"]] == [t2["id"]]
    assert [t["id"] for t in api.get("triggers", properties="crontab")[1]["triggers"]] == \
        [t2["id"]]
    assert [t["id"] for t in api.get("triggers", properties='"window": "7200"')[1]
            ["triggers"]] == [t3["id"]]
    assert len(api.get("triggers", type="time")[1]["triggers"]) == 3
    assert api.get("triggers", type="event")[1]["triggers"] == []
    # unknown filters are ignored
    assert len(api.get("triggers", colour="blue")[1]["triggers"]) == 3


def test_list_triggers_bad_regex_is_400(api):
    status, body = api.get("triggers", name="(")
    assert status == 400
    assert "Invalid regex for name" in error(body)[1]


def test_list_triggers_paginates_with_links(api):
    ids = [api.trigger(name=n)["id"] for n in ("a", "b", "c")]
    status, body = api.get("triggers", sort="name:asc", limit=2)
    assert status == 200
    assert [t["id"] for t in body["triggers"]] == ids[:2]
    (link,) = body["triggers_links"]
    assert link["rel"] == "next"
    href = urllib.parse.urlsplit(link["href"])
    assert href.path == f"/v1/{api.project}/triggers"
    query = dict(urllib.parse.parse_qsl(href.query))
    assert query == {"sort": "name:asc", "limit": "2", "marker": ids[1]}
    status, body = api.get("triggers", **query)
    assert [t["id"] for t in body["triggers"]] == ids[2:]
    assert "triggers_links" not in body
    assert [t["id"] for t in api.get("triggers", sort="name:desc")[1]["triggers"]] == ids[::-1]


def test_list_triggers_bad_marker_and_sort(api):
    status, body = api.get("triggers", marker=MISSING)
    assert (status, error(body)) == (404, ("itemNotFound",
                                           f"Trigger {MISSING} could not be found."))
    status, body = api.get("triggers", sort="pattern:asc")
    assert status == 400 and "Invalid sort key" in error(body)[1]


def test_all_tenants_is_for_admins_only(api, app):
    mine = api.trigger(name="mine")
    other = Api(app, api.project + "-other")
    theirs = other.trigger(name="theirs")
    # a member asking for all tenants still sees only its own project
    assert [t["id"] for t in api.get("triggers", all_tenants="1")[1]["triggers"]] == \
        [mine["id"]]
    admin = Api(app, api.project + "-admin", user="admin")
    seen = {t["id"] for t in admin.get("triggers", all_tenants="true")[1]["triggers"]}
    assert {mine["id"], theirs["id"]} <= seen
    assert admin.get("triggers")[1]["triggers"] == []
    # admins may narrow by project
    body = admin.get("triggers", all_tenants="1", project_id=other.project)[1]
    assert [t["id"] for t in body["triggers"]] == [theirs["id"]]


def test_update_trigger_name_and_merged_properties(api):
    info = api.trigger(window=1800, start_time="2020-01-01 00:00:00")
    # exactly what "trigger-update ID --name t2 --properties window=900" sends
    status, body = api.put(f"triggers/{info['id']}",
                           {"trigger_info": {"name": "t2", "properties": {"window": 900}}})
    assert status == 200, body
    assert body["trigger_info"] == {
        "id": info["id"], "name": "t2", "type": "time",
        "properties": {"pattern": PATTERN, "format": "calendar", "window": "900",
                       "start_time": "2020-01-01 00:00:00"}}
    assert api.get(f"triggers/{info['id']}")[1] == body


def test_update_trigger_pattern_and_drop_end_time(api):
    info = api.trigger(end_time="2099-01-01 00:00:00", start_time="2020-01-01 00:00:00")
    status, body = api.put(f"triggers/{info['id']}", {"trigger_info": {"properties": {
        "format": "crontab", "pattern": "0 3 * * *", "end_time": None}}})
    assert status == 200, body
    assert body["trigger_info"]["properties"] == {
        "format": "crontab", "pattern": "0 3 * * *", "start_time": "2020-01-01 00:00:00"}
    assert body["trigger_info"]["name"] == "t"


def test_update_trigger_name_only_keeps_properties(api):
    info = api.trigger()
    status, body = api.put(f"triggers/{info['id']}", {"trigger_info": {"name": "renamed"}})
    assert status == 200
    assert body["trigger_info"] == {**info, "name": "renamed"}


@pytest.mark.parametrize(("change", "message"), [
    ({"properties": {"window": 10}}, "window must be between 60 and 86400 seconds"),
    ({"properties": {"pattern": "nonsense"}}, "The trigger pattern(nonsense) is invalid"),
    ({"properties": {"end_time": "2019-01-01 00:00:00"}}, "later than start_time"),
    ({"type": "event"}, "Invalid trigger type:event"),
    ({"name": ""}, "The 'name' can not be None."),
    ({"name": "   "}, "The 'name' can not be empty."),
])
def test_update_trigger_refusals_change_nothing(api, change, message):
    info = api.trigger(start_time="2020-01-01 00:00:00")
    status, body = api.put(f"triggers/{info['id']}", {"trigger_info": change})
    assert status == 400
    assert message in error(body)[1]
    assert api.get(f"triggers/{info['id']}")[1]["trigger_info"] == info


@pytest.mark.parametrize("body", [{}, {"trigger_info": {}},
                                  {"trigger_info": {"colour": "red"}},
                                  {"trigger_info": {"properties": {"timezone": "UTC"}}}])
def test_update_trigger_schema_errors(api, body):
    info = api.trigger()
    status, resp = api.put(f"triggers/{info['id']}", body)
    assert status == 400, resp
    assert error(resp)[0] == "badRequest"


def test_delete_trigger(api):
    info = api.trigger()
    assert api.delete(f"triggers/{info['id']}") == (200, None)
    status, body = api.get(f"triggers/{info['id']}")
    assert (status, error(body)) == (404, ("itemNotFound",
                                           f"Trigger {info['id']} could not be found."))
    assert api.get("triggers")[1]["triggers"] == []
    assert api.delete(f"triggers/{info['id']}")[0] == 404


# ---------------------------------------------------------------------------------------
# triggers: refusals


@pytest.mark.parametrize(("props", "message"), [
    ({"pattern": "BEGIN:VEVENT\\nRRULE:FREQ=SOMETIMES\\nEND:VEVENT"},
     "The trigger pattern(BEGIN:VEVENT\\nRRULE:FREQ=SOMETIMES\\nEND:VEVENT) is invalid"),
    ({"pattern": "not a calendar"}, "not iCalendar text"),
    ({"format": "crontab", "pattern": "99 * * * *"}, "not a crontab expression"),
    ({"format": "cron"}, "The trigger format(cron) is invalid"),
    ({"window": 30}, "window must be between 60 and 86400 seconds"),
    ({"window": 86401}, "window must be between 60 and 86400 seconds"),
    ({"window": "soon"}, "The trigger window(soon) is invalid"),
    ({"pattern": "BEGIN:VEVENT\\nRRULE:FREQ=SECONDLY;INTERVAL=30\\nEND:VEVENT"},
     "30 seconds apart, less than min_interval (60 seconds)"),
    ({"start_time": "01/02/2020"}, "The trigger start_time(01/02/2020) is invalid"),
    ({"start_time": "2020-01-01 00:00:00", "end_time": "2020-01-01 00:00:00"},
     "The trigger end_time(2020-01-01 00:00:00) is invalid"),
])
def test_create_trigger_invalid_properties(api, props, message):
    status, body = api.post("triggers", create_trigger_body(
        properties={"format": "calendar", "pattern": PATTERN, **props}))
    assert status == 400, body
    name, text = error(body)
    assert name == "badRequest"
    assert text.startswith("Invalid input received: ")
    assert message in text
    assert api.get("triggers")[1]["triggers"] == []


def test_min_interval_follows_configuration(api):
    CONF.set_override("min_interval", 3600)
    try:
        status, body = api.post("triggers", create_trigger_body(
            properties={"format": "calendar", "pattern": SEED_PATTERN}))
    finally:
        CONF.clear_override("min_interval")
    assert status == 400
    assert "300 seconds apart, less than min_interval (3600 seconds)" in error(body)[1]


def test_create_trigger_wrong_type(api):
    status, body = api.post("triggers", create_trigger_body(type="event"))
    assert (status, error(body)) == (400, ("badRequest",
                                           "Invalid input received: Invalid trigger type:event"))


@pytest.mark.parametrize(("body", "message"), [
    ({}, "Missing required field/attribute trigger_info"),
    (create_trigger_body(name=None), "The 'name' can not be None."),
    ({"trigger_info": {"type": "time", "properties": {"format": "calendar",
                                                      "pattern": PATTERN}}},
     "Missing required field/attribute trigger_info/name"),
    ({"trigger_info": {"name": "x", "type": "time"}},
     "Missing required field/attribute trigger_info/properties"),
    (create_trigger_body(properties={"format": "calendar"}),
     "Missing required field/attribute trigger_info/properties/pattern"),
    (create_trigger_body(properties={"pattern": PATTERN}),
     "Missing required field/attribute trigger_info/properties/format"),
    (create_trigger_body(colour="red"), "Invalid input for field/attribute trigger_info/colour"),
    (create_trigger_body(properties={"format": "calendar", "pattern": PATTERN, "tz": "UTC"}),
     "Invalid input for field/attribute trigger_info/properties/tz"),
    (create_trigger_body(name=5), "Invalid input for field/attribute trigger_info/name"),
    (create_trigger_body(properties={"format": "calendar", "pattern": PATTERN,
                                     "window": [60]}),
     "Invalid input for field/attribute trigger_info/properties/window"),
    (create_trigger_body(properties={"format": "calendar", "pattern": PATTERN,
                                     "window": 900.5}),
     "Invalid input for field/attribute trigger_info/properties/window"),
    (create_trigger_body(properties="hourly"),
     "Invalid input for field/attribute trigger_info/properties"),
    ({"trigger_info": []}, "Invalid input for field/attribute trigger_info"),
])
def test_create_trigger_schema_errors(api, body, message):
    status, resp = api.post("triggers", body)
    assert status == 400, resp
    assert message in error(resp)[1]


def test_create_trigger_malformed_json(api):
    status, body = api.post("triggers", raw=b"{not json")
    assert status == 400
    assert error(body)[1].startswith("Malformed request body")


def test_trigger_id_must_be_a_uuid(api):
    for method in ("GET", "PUT", "DELETE"):
        status, body = api.call(method, "triggers/not-a-uuid",
                                {"trigger_info": {"name": "x"}} if method == "PUT" else None)
        assert (status, error(body)) == (400, ("badRequest", "Invalid trigger id provided."))


def test_unknown_trigger_is_404(api):
    for method in ("GET", "PUT", "DELETE"):
        status, body = api.call(method, f"triggers/{MISSING}",
                                {"trigger_info": {"name": "x"}} if method == "PUT" else None)
        assert (status, error(body)) == (404, ("itemNotFound",
                                               f"Trigger {MISSING} could not be found."))


def test_other_projects_trigger_is_403_for_members(api, app):
    info = api.trigger()
    other = Api(app, api.project + "-x", user="bob")
    for method in ("GET", "PUT", "DELETE"):
        status, body = other.call(method, f"triggers/{info['id']}",
                                  {"trigger_info": {"name": "x"}} if method == "PUT" else None)
        assert (status, error(body)) == (
            403, ("forbidden", "Policy doesn't allow trigger:get to be performed."))
    assert api.get(f"triggers/{info['id']}")[1]["trigger_info"] == info


def test_admin_sees_other_projects_trigger(api, app):
    info = api.trigger()
    admin = Api(app, api.project + "-admin", user="admin")
    assert admin.get(f"triggers/{info['id']}") == (200, {"trigger_info": info})


def test_url_project_must_match_the_token(api):
    resp = api.client.open(f"/v1/{api.project}/triggers",
                           headers={"X-Auth-Token": "alice:someone-else"})
    assert resp.status_code == 400
    assert error(resp.get_json()) == ("badRequest", "Malformed request url")


# ---------------------------------------------------------------------------------------
# scheduled operations


def test_create_protect_operation(api):
    trigger, plan = api.trigger(), api.plan()
    status, body = api.post("scheduled_operations", {"scheduled_operation": {
        "name": "Protect with My Trigger", "operation_type": "protect",
        "trigger_id": trigger["id"],
        "operation_definition": {"plan_id": plan["id"], "provider_id": NOOP}}})
    assert status == 200, body
    op = body["scheduled_operation"]
    assert op == {"id": op["id"], "name": "Protect with My Trigger", "description": None,
                  "operation_type": "protect", "trigger_id": trigger["id"],
                  "operation_definition": {"plan_id": plan["id"], "provider_id": NOOP},
                  "enabled": True}
    assert api.get(f"scheduled_operations/{op['id']}") == (200, {"scheduled_operation": op})
    with session_scope() as session:
        row = session.get(models.ScheduledOperation, op["id"])
        assert (row.user_id, row.project_id, row.enabled) == ("alice", api.project, True)
        (state,) = session.scalars(select(models.ScheduledOperationState).where(
            models.ScheduledOperationState.operation_id == op["id"])).all()
        assert (state.state, state.deleted) == ("registered", False)


def test_create_retention_operation_as_the_client_sends_it(api):
    trigger, plan = api.trigger(), api.plan()
    status, body = api.post("scheduled_operations", {"scheduled_operation": {
        "name": "s1", "operation_type": "retention_protect", "trigger_id": trigger["id"],
        "operation_definition": {"provider_id": NOOP, "plan_id": plan["id"],
                                 "max_backups": "3", "retention_duration": "7"}}})
    assert status == 200, body
    assert body["scheduled_operation"]["operation_definition"] == {
        "provider_id": NOOP, "plan_id": plan["id"], "max_backups": "3",
        "retention_duration": "7"}


def test_retention_numbers_may_be_integers(api):
    trigger, plan = api.trigger(), api.plan()
    op = api.operation(trigger["id"], plan["id"], operation_type="retention_protect",
                       max_backups=5, retention_duration=-1)
    assert op["operation_definition"] == {"provider_id": NOOP, "plan_id": plan["id"],
                                          "max_backups": "5", "retention_duration": "-1"}


def test_description_is_kept(api):
    trigger, plan = api.trigger(), api.plan()
    status, body = api.post("scheduled_operations", {"scheduled_operation": {
        "name": "n", "description": "nightly", "operation_type": "protect",
        "trigger_id": trigger["id"],
        "operation_definition": {"provider_id": NOOP, "plan_id": plan["id"]}}})
    assert status == 200
    assert body["scheduled_operation"]["description"] == "nightly"


def op_body(trigger_id, plan_id, operation_type="protect", provider_id=NOOP, **extra):
    return {"scheduled_operation": {
        "name": "op", "operation_type": operation_type, "trigger_id": trigger_id,
        "operation_definition": {"provider_id": provider_id, "plan_id": plan_id, **extra}}}


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"operation_type": "backup"}, "Invalid input received: Invalid operation type: backup"),
    ({"operation_type": "retention_protect", "max_backups": "three"},
     "Invalid operation definition: max_backups must be an integer, not 'three'."),
    ({"operation_type": "retention_protect", "retention_duration": "1.5"},
     "Invalid operation definition: retention_duration must be an integer"),
    ({"operation_type": "retention_protect", "max_backups": True},
     "Invalid input for field/attribute scheduled_operation/operation_definition/max_backups"),
    ({"operation_type": "retention_protect", "max_backups": 2.5},
     "Invalid input for field/attribute scheduled_operation/operation_definition/max_backups"),
    ({"max_backups": "3"},
     "Invalid operation definition: max_backups is only allowed for retention_protect"),
    ({"colour": "red"},
     "Invalid input for field/attribute scheduled_operation/operation_definition/colour"),
    ({"provider_id": MISSING}, f"provider_id: the provider {MISSING} could not be found."),
    ({"provider_id": "nope"},
     "Invalid input for field/attribute scheduled_operation/operation_definition/provider_id"),
])
def test_create_operation_bad_definition(api, kwargs, message):
    trigger, plan = api.trigger(), api.plan()
    status, body = api.post("scheduled_operations", op_body(trigger["id"], plan["id"],
                                                            **kwargs))
    assert status == 400, body
    assert message in error(body)[1]
    assert api.get("scheduled_operations")[1]["operations"] == []


def test_create_operation_unknown_plan(api):
    trigger = api.trigger()
    status, body = api.post("scheduled_operations", op_body(trigger["id"], MISSING))
    assert status == 400
    assert error(body)[1] == (f"Invalid input received: Invalid operation definition: "
                              f"plan_id {MISSING} is not a plan of this project.")


def test_create_operation_with_another_projects_plan(api, app):
    trigger = api.trigger()
    plan = Api(app, api.project + "-p").plan()
    status, body = api.post("scheduled_operations", op_body(trigger["id"], plan["id"]))
    assert status == 400
    assert f"plan_id {plan['id']} is not a plan of this project" in error(body)[1]


def test_create_operation_provider_conflict(api):
    trigger = api.trigger()
    plan_id = str(uuid.uuid4())
    other_provider = str(uuid.uuid4())
    with session_scope(write=True) as session:
        session.add(models.Plan(id=plan_id, name="elsewhere", provider_id=other_provider,
                                project_id=api.project, status="suspended", parameters="{}"))
    status, body = api.post("scheduled_operations", op_body(trigger["id"], plan_id))
    assert status == 400
    assert error(body)[1] == (
        f"Invalid input received: Invalid operation definition: provider_id {NOOP} conflicts "
        f"with the provider {other_provider} of plan {plan_id}.")


def test_create_operation_unknown_trigger_is_404(api):
    plan = api.plan()
    status, body = api.post("scheduled_operations", op_body(MISSING, plan["id"]))
    assert (status, error(body)) == (404, ("itemNotFound",
                                           f"Trigger {MISSING} could not be found."))


def test_create_operation_with_another_projects_trigger_is_400(api, app):
    plan = api.plan()
    trigger = Api(app, api.project + "-t").trigger()
    status, body = api.post("scheduled_operations", op_body(trigger["id"], plan["id"]))
    assert (status, error(body)) == (400, ("badRequest", "Invalid trigger id provided."))


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda b: b.pop("scheduled_operation"), "Missing required field/attribute"),
    (lambda b: b["scheduled_operation"].pop("name"),
     "Missing required field/attribute scheduled_operation/name"),
    (lambda b: b["scheduled_operation"].pop("operation_type"),
     "Missing required field/attribute scheduled_operation/operation_type"),
    (lambda b: b["scheduled_operation"].pop("trigger_id"),
     "Missing required field/attribute scheduled_operation/trigger_id"),
    (lambda b: b["scheduled_operation"].pop("operation_definition"),
     "Missing required field/attribute scheduled_operation/operation_definition"),
    (lambda b: b["scheduled_operation"]["operation_definition"].pop("plan_id"),
     "Missing required field/attribute scheduled_operation/operation_definition/plan_id"),
    (lambda b: b["scheduled_operation"].update(trigger_id="t-1"),
     "Invalid input for field/attribute scheduled_operation/trigger_id"),
    (lambda b: b["scheduled_operation"].update(enabled=False),
     "Invalid input for field/attribute scheduled_operation/enabled"),
    (lambda b: b["scheduled_operation"].update(name=""), "The 'name' can not be None."),
    (lambda b: b["scheduled_operation"].update(operation_type=1),
     "Invalid input for field/attribute scheduled_operation/operation_type"),
])
def test_create_operation_schema_errors(api, mutate, message):
    body = op_body(MISSING, MISSING)
    mutate(body)
    status, resp = api.post("scheduled_operations", body)
    assert status == 400, resp
    assert message in error(resp)[1]


def test_list_operations_filters_and_links(api):
    t1, t2, plan = api.trigger(), api.trigger(), api.plan()
    a = api.operation(t1["id"], plan["id"], name="alpha")
    b = api.operation(t2["id"], plan["id"], name="beta", operation_type="retention_protect",
                      max_backups="2")
    status, body = api.get("scheduled_operations")
    assert status == 200
    assert {o["id"] for o in body["operations"]} == {a["id"], b["id"]}
    assert "operations_links" not in body

    def ids(**query):
        return [o["id"] for o in api.get("scheduled_operations", **query)[1]["operations"]]

    assert ids(trigger_id=t2["id"]) == [b["id"]]
    assert ids(operation_type="protect") == [a["id"]]
    assert ids(name="^al") == [a["id"]]
    assert ids(operation_definition='"max_backups": "2"') == [b["id"]]
    assert ids(sort="name:asc") == [a["id"], b["id"]]
    body = api.get("scheduled_operations", sort="name:asc", limit=1)[1]
    assert [o["id"] for o in body["operations"]] == [a["id"]]
    (link,) = body["operations_links"]
    href = urllib.parse.urlsplit(link["href"])
    assert href.path == f"/v1/{api.project}/scheduled_operations"
    assert dict(urllib.parse.parse_qsl(href.query))["marker"] == a["id"]
    assert ids(sort="name:asc", marker=a["id"]) == [b["id"]]


def test_list_operations_is_scoped_to_the_project(api, app):
    trigger, plan = api.trigger(), api.plan()
    op = api.operation(trigger["id"], plan["id"])
    other = Api(app, api.project + "-o", user="bob")
    assert other.get("scheduled_operations", all_tenants="1")[1]["operations"] == []
    admin = Api(app, api.project + "-admin", user="admin")
    seen = admin.get("scheduled_operations", all_tenants="1")[1]["operations"]
    assert op["id"] in {o["id"] for o in seen}


def test_operation_access_errors(api, app):
    trigger, plan = api.trigger(), api.plan()
    op = api.operation(trigger["id"], plan["id"])
    other = Api(app, api.project + "-o", user="bob")
    for method in ("GET", "DELETE"):
        status, body = other.call(method, f"scheduled_operations/{op['id']}")
        assert (status, error(body)) == (
            403, ("forbidden", "Policy doesn't allow scheduled_operation:get to be performed."))
        status, body = api.call(method, f"scheduled_operations/{MISSING}")
        assert (status, error(body)) == (
            404, ("itemNotFound", f"Scheduled Operation {MISSING} could not be found."))
        status, body = api.call(method, "scheduled_operations/xyz")
        assert (status, error(body)) == (400, ("badRequest", "Invalid operation id provided."))
    admin = Api(app, api.project + "-admin", user="admin")
    assert admin.get(f"scheduled_operations/{op['id']}")[0] == 200


def test_update_operation_renames_and_pauses(api):
    trigger, plan = api.trigger(), api.plan()
    op = api.operation(trigger["id"], plan["id"])
    status, body = api.put(f"scheduled_operations/{op['id']}", {"scheduled_operation": {}})
    assert status == 400
    status, body = api.put(f"scheduled_operations/{op['id']}",
                           {"scheduled_operation": {"enabled": "no"}})
    assert status == 400 and "enabled" in error(body)[1]
    status, body = api.put(f"scheduled_operations/{op['id']}", {"scheduled_operation": {
        "enabled": False, "name": "paused", "description": "holiday"}})
    assert status == 200, body
    shown = api.get(f"scheduled_operations/{op['id']}")[1]["scheduled_operation"]
    assert (shown["enabled"], shown["name"], shown["description"]) == (
        False, "paused", "holiday")
    other = api.as_user("mallory", api.project + "-other")
    status, _ = other.put(f"scheduled_operations/{op['id']}",
                          {"scheduled_operation": {"enabled": True}})
    assert status == 403


def test_delete_operation_and_then_its_trigger(api):
    trigger, plan = api.trigger(), api.plan()
    op = api.operation(trigger["id"], plan["id"])
    status, body = api.delete(f"triggers/{trigger['id']}")
    assert (status, error(body)) == (
        424, ("failedDependency", "Trigger is being used by one or more operations"))
    assert api.get(f"triggers/{trigger['id']}")[0] == 200

    assert api.delete(f"scheduled_operations/{op['id']}") == (200, None)
    assert api.get(f"scheduled_operations/{op['id']}")[0] == 404
    assert api.get("scheduled_operations")[1]["operations"] == []
    with session_scope() as session:
        state = session.scalar(select(models.ScheduledOperationState).where(
            models.ScheduledOperationState.operation_id == op["id"]))
        assert (state.state, state.deleted) == ("deleted", True)
        assert session.get(models.ScheduledOperation, op["id"]).deleted is True

    assert api.delete(f"triggers/{trigger['id']}") == (200, None)
    assert api.get(f"triggers/{trigger['id']}")[0] == 404


def next_run_at(operation_id):
    with session_scope() as session:
        return session.scalar(select(models.ScheduledOperationState.next_run_at).where(
            models.ScheduledOperationState.operation_id == operation_id))


def set_next_run_at(operation_id, value):
    with session_scope(write=True) as session:
        state = session.scalar(select(models.ScheduledOperationState).where(
            models.ScheduledOperationState.operation_id == operation_id))
        state.next_run_at = value


def test_changing_a_trigger_makes_the_engine_reschedule_its_operations(api):
    trigger, plan = api.trigger(start_time="2020-01-01 00:00:00"), api.plan()
    op = api.operation(trigger["id"], plan["id"])
    later = dt.datetime(2020, 1, 8)
    set_next_run_at(op["id"], later)
    # a rename, or properties that normalise to the same ones, change no schedule
    assert api.put(f"triggers/{trigger['id']}", {"trigger_info": {
        "name": "n", "properties": {"start_time": "2020-01-01T00:00:00"}}})[0] == 200
    assert next_run_at(op["id"]) == later
    assert api.put(f"triggers/{trigger['id']}", {"trigger_info": {
        "properties": {"pattern": "BEGIN:VEVENT\\nRRULE:FREQ=MINUTELY;INTERVAL=10\\nEND:VEVENT"}
    }})[0] == 200
    assert next_run_at(op["id"]) is None


def test_operation_on_a_deleted_trigger_is_404(api):
    trigger, plan = api.trigger(), api.plan()
    assert api.delete(f"triggers/{trigger['id']}")[0] == 200
    status, body = api.post("scheduled_operations", op_body(trigger["id"], plan["id"]))
    assert status == 404
    assert error(body)[1] == f"Trigger {trigger['id']} could not be found."
