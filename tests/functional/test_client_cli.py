"""The unmodified python-karborclient 2.1.0 CLI against a real karbor-server.

Every subcommand listed by ``karbor help`` is driven here (see ``SUBCOMMANDS``), once per
database backend (SQLite and PostgreSQL, see the ``server`` fixture), in the client's
``--os-no-client-auth`` mode with ``--os-auth-token user:project``.  Outputs are parsed from
the client's tables and compared value by value.  The copy action, which the client has no
command for, is driven over HTTP.
"""

from __future__ import annotations

import datetime
import re
import subprocess
import uuid

import pytest

from ._cli import as_json, as_python, column, error, props, rows, wait_for
from .conftest import KarborServer, new_project_id

NOOP = "b766f37c-d011-4026-8228-28730d734a3f"
PROJECT_TYPE = "OS::Keystone::Project"
SEED_PATTERN = r"BEGIN:VEVENT\nRRULE:FREQ=MINUTELY;INTERVAL=5;\nEND:VEVENT"
TIME_RE = re.compile(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")

# Every subcommand of python-karborclient 2.1.0 (``karbor help``) and the test(s) driving it.
SUBCOMMANDS = {
    "provider-list": "test_providers",
    "provider-show": "test_providers",
    "protectable-list": "test_protectables",
    "protectable-show": "test_protectables",
    "protectable-list-instances": "test_protectables",
    "protectable-show-instance": "test_protectables",
    "plan-create": "test_plan_lifecycle",
    "plan-list": "test_plan_list_filters_sorting_paging",
    "plan-show": "test_plan_lifecycle",
    "plan-update": "test_plan_lifecycle",
    "plan-delete": "test_plan_lifecycle",
    "checkpoint-create": "test_checkpoint_lifecycle",
    "checkpoint-list": "test_checkpoint_list_filters_and_paging",
    "checkpoint-show": "test_checkpoint_lifecycle",
    "checkpoint-delete": "test_checkpoint_lifecycle",
    "checkpoint-reset-state": "test_checkpoint_lifecycle",
    "restore-create": "test_restores",
    "restore-list": "test_restores",
    "restore-show": "test_restores",
    "verification-create": "test_verifications",
    "verification-list": "test_verifications",
    "verification-show": "test_verifications",
    "operationlog-list": "test_operation_logs",
    "operationlog-show": "test_operation_logs",
    "trigger-create": "test_trigger_lifecycle",
    "trigger-list": "test_trigger_lifecycle",
    "trigger-show": "test_trigger_lifecycle",
    "trigger-update": "test_trigger_lifecycle",
    "trigger-delete": "test_trigger_lifecycle",
    "scheduledoperation-create": "test_scheduled_operations",
    "scheduledoperation-list": "test_scheduled_operations",
    "scheduledoperation-show": "test_scheduled_operations",
    "scheduledoperation-delete": "test_scheduled_operations",
    "service-list": "test_services",
    "service-enable": "test_services",
    "service-disable": "test_services",
    "quota-show": "test_quotas",
    "quota-update": "test_quotas",
    "quota-defaults": "test_quotas",
    "quota-class-show": "test_quota_classes",
    "quota-class-update": "test_quota_classes",
}


# --------------------------------------------------------------------------- helpers


def ok(server: KarborServer, *args: str, **kw) -> str:
    rc, out, err = server.cli(*args, **kw)
    assert rc == 0, f"karbor {' '.join(args)} failed ({rc}):\nstdout:\n{out}\nstderr:\n{err}"
    return out


def fails(server: KarborServer, *args: str, **kw) -> str:
    """Run a command that must fail; return everything it printed."""
    rc, out, err = server.cli(*args, **kw)
    assert rc != 0, f"karbor {' '.join(args)} unexpectedly succeeded:\n{out}"
    return out + err


def api_error(server: KarborServer, *args: str, **kw) -> tuple[str, int]:
    """Run a command that must fail with an API error; return (message, HTTP code)."""
    return error(fails(server, *args, **kw))


def today() -> str:
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d")


def project_resource(project: str, name: str = "my-project") -> str:
    return f"{project}={PROJECT_TYPE}={name}"


def create_plan(server: KarborServer, name: str, *extra: str, project: str | None = None,
                user: str | None = None, resource_name: str = "my-project") -> dict:
    project = project or server.project
    out = ok(server, "plan-create", name, NOOP, project_resource(project, resource_name),
             *extra, project=project, user=user)
    return props(out)


def checkpoint_status(server: KarborServer, checkpoint_id: str, **kw) -> str | None:
    rc, out, _ = server.cli("checkpoint-show", NOOP, checkpoint_id, **kw)
    return props(out)["status"] if rc == 0 else None


# Setup steps that are not the subject of a test go over HTTP: every CLI run costs a
# Python start-up (~0.3 s), and the suite runs everything twice (SQLite, PostgreSQL).


def api(server: KarborServer, method: str, path: str, body: dict | None = None, *,
        project: str, user: str | None = None) -> dict:
    resp = server.http(method, path, json=body, project=project, user=user)
    assert resp.status_code == 200, f"{method} {path} -> {resp.status_code} {resp.text}"
    return resp.json() if resp.content else {}


def api_plan(server: KarborServer, name: str, *, project: str, **fields) -> dict:
    body = {"name": name, "provider_id": NOOP, "parameters": {},
            "resources": [{"id": project, "type": PROJECT_TYPE, "name": "my-project"}],
            **fields}
    return api(server, "POST", "plans", {"plan": body}, project=project)["plan"]


def http_checkpoint_status(server: KarborServer, checkpoint_id: str, *,
                           project: str) -> str | None:
    resp = server.http("GET", f"providers/{NOOP}/checkpoints/{checkpoint_id}",
                       project=project)
    return resp.json()["checkpoint"]["status"] if resp.status_code == 200 else None


def api_checkpoint(server: KarborServer, plan_id: str, *, project: str) -> str:
    """Protect ``plan_id`` over HTTP and wait until the checkpoint is available."""
    checkpoint_id = api(server, "POST", f"providers/{NOOP}/checkpoints",
                        {"checkpoint": {"plan_id": plan_id}}, project=project)["checkpoint"]["id"]
    status = wait_for(lambda: http_checkpoint_status(server, checkpoint_id, project=project),
                      {"available", "error"}, what=f"checkpoint {checkpoint_id}")
    assert status == "available"
    return checkpoint_id


def listed_checkpoints(server: KarborServer, *args: str, **kw) -> list[str]:
    return column(ok(server, "checkpoint-list", NOOP, *args, **kw), "Id")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def protected(server: KarborServer) -> dict:
    """A fresh project with a plan and an available checkpoint of it."""
    project = new_project_id()
    plan = api_plan(server, "protected plan", project=project)
    checkpoint = api_checkpoint(server, plan["id"], project=project)
    return {"project": project, "plan": plan, "checkpoint": checkpoint}


# --------------------------------------------------------------------------- tests


def test_help_lists_every_subcommand(karborclient):
    version = subprocess.run([karborclient, "--version"], capture_output=True, text=True,
                             timeout=60)
    assert (version.stdout + version.stderr).strip() == "2.1.0"
    proc = subprocess.run([karborclient, "help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    section = proc.stdout.split("Positional arguments:", 1)[1].split("Options:", 1)[0]
    listed = set(re.findall(r"^    ([a-z][a-z-]+)", section, re.M))
    assert listed - {"bash-completion", "help"} == set(SUBCOMMANDS)


def test_versions_document(server: KarborServer):
    resp = server.http("GET", "/")
    assert resp.status_code == 300
    versions = resp.json()["versions"]
    assert [v["id"] for v in versions] == ["v1.0"]
    assert versions[0]["status"] == "CURRENT"


def test_providers(server: KarborServer):
    listing = rows(ok(server, "provider-list"))
    noop = [r for r in listing if r["Id"] == NOOP]
    assert noop == [{
        "Id": NOOP, "Name": "No-Op Provider",
        "Description": "This provider does nothing for each protect and restore operation. "
                       "Used for testing"}]
    assert column(ok(server, "provider-list", "--name", "No-Op Provider"), "Id") == [NOOP]
    assert rows(ok(server, "provider-list", "--name", "no such provider")) == []
    assert NOOP in column(ok(server, "provider-list", "--limit", "5"), "Id")

    shown = props(ok(server, "provider-show", NOOP))
    assert shown["id"] == NOOP
    assert shown["name"] == "No-Op Provider"
    assert shown["description"].startswith("This provider does nothing")
    schema = as_json(shown["extended_info_schema"])
    for key in ("options_schema", "restore_schema", "saved_info_schema"):
        assert PROJECT_TYPE in schema[key], key

    missing = str(uuid.uuid4())
    message, code = api_error(server, "provider-show", missing)
    assert code == 404
    assert message == f"Provider {missing} could not be found."


def test_protectables(server: KarborServer):
    project = server.project
    assert PROJECT_TYPE in column(ok(server, "protectable-list"), "Protectable type")

    shown = props(ok(server, "protectable-show", PROJECT_TYPE))
    assert shown == {"name": PROJECT_TYPE, "dependent_types": "[]"}
    message, code = api_error(server, "protectable-show", "OS::No::Such")
    assert code == 400
    assert "Invalid protectable type provided." in message

    instances = rows(ok(server, "protectable-list-instances", PROJECT_TYPE))
    assert [(r["Id"], r["Type"]) for r in instances] == [(project, PROJECT_TYPE)]
    assert instances[0]["Dependent resources"] == "[]"
    limited = rows(ok(server, "protectable-list-instances", PROJECT_TYPE, "--limit", "1"))
    assert [r["Id"] for r in limited] == [project]

    instance = props(ok(server, "protectable-show-instance", PROJECT_TYPE, project))
    assert instance["id"] == project
    assert instance["type"] == PROJECT_TYPE
    assert instance["name"]
    assert instance["dependent_resources"] == "[]"
    with_params = props(ok(server, "protectable-show-instance", PROJECT_TYPE, project,
                           "--parameters", "k=v"))
    assert with_params["id"] == project

    # another project sees its own project, and cannot show ours
    other = new_project_id()
    assert column(ok(server, "protectable-list-instances", PROJECT_TYPE, project=other),
                  "Id") == [other]
    message, code = api_error(server, "protectable-show-instance", PROJECT_TYPE, project,
                              project=other)
    assert code == 404
    assert project in message


def test_plan_lifecycle(server: KarborServer):
    project = new_project_id()
    plan = create_plan(server, "OS project protection plan.", "--description", "first plan",
                       project=project, resource_name="prj")
    plan_id = plan["id"]
    uuid.UUID(plan_id)
    assert plan["name"] == "OS project protection plan."
    assert plan["description"] == "first plan"
    assert plan["provider_id"] == NOOP
    assert plan["status"] == "suspended"
    assert as_json(plan["parameters"]) == {}
    assert as_json(plan["resources"]) == [{"id": project, "name": "prj", "type": PROJECT_TYPE}]

    shown = props(ok(server, "plan-show", plan_id, project=project))
    assert shown == plan

    # parameters: per type, per resource, as JSON; unknown option keys are refused
    by_type = create_plan(server, "by type", "--parameters", f"resource_type={PROJECT_TYPE}",
                          project=project)
    assert as_json(by_type["parameters"]) == {PROJECT_TYPE: {}}
    by_id = create_plan(server, "by id", "--parameters",
                        f"resource_type={PROJECT_TYPE},resource_id={project}", project=project)
    assert as_json(by_id["parameters"]) == {f"{PROJECT_TYPE}#{project}": {}}
    by_json = create_plan(server, "by json", "--parameters-json",
                          f'{{"{PROJECT_TYPE}": {{}}}}', project=project)
    assert as_json(by_json["parameters"]) == {PROJECT_TYPE: {}}
    message, code = api_error(server, "plan-create", "bad params", NOOP,
                              project_resource(project), "--parameters",
                              f"resource_type={PROJECT_TYPE},no_such_option=1",
                              project=project)
    assert code == 400
    message, code = api_error(server, "plan-create", "bad provider", str(uuid.uuid4()),
                              project_resource(project), project=project)
    assert code in (400, 404)
    # the client pre-checks resources with protectable-show-instance: a foreign project
    # is not an instance of this one, so nothing is created
    foreign = new_project_id()
    out = fails(server, "plan-create", "foreign", NOOP, project_resource(foreign),
                project=project)
    assert f"The resource: {foreign} can not be found." in out
    names = column(ok(server, "plan-list", project=project), "Name")
    assert sorted(names) == sorted(["OS project protection plan.", "by type", "by id",
                                    "by json"])

    # update name / description / resources, then start it
    updated = props(ok(server, "plan-update", plan_id, "--name", "renamed", "--description",
                       "second", "--resources", project_resource(project, "prj-2"),
                       project=project))
    assert updated["name"] == "renamed"
    assert updated["description"] == "second"
    assert updated["status"] == "suspended"
    # plan-update prints the resources with str(), not as JSON
    assert as_python(updated["resources"]) == [
        {"id": project, "name": "prj-2", "type": PROJECT_TYPE}]
    started = props(ok(server, "plan-update", plan_id, "--status", "started",
                       project=project))
    assert started["status"] == "started"
    shown = props(ok(server, "plan-show", plan_id, project=project))
    assert (shown["name"], shown["description"], shown["status"]) == (
        "renamed", "second", "started")
    # an empty update is refused
    message, code = api_error(server, "plan-update", plan_id, project=project)
    assert code == 400
    # the resources of a started plan cannot change (the original refused every update of
    # a started plan, even back to suspended; here name/description/status stay editable)
    message, code = api_error(server, "plan-update", plan_id, "--resources",
                              project_resource(project, "prj-3"), project=project)
    assert code in (400, 409)
    assert "suspended" in message
    assert as_json(props(ok(server, "plan-show", plan_id, project=project))["resources"]) == [
        {"id": project, "name": "prj-2", "type": PROJECT_TYPE}]
    assert props(ok(server, "plan-update", plan_id, "--status", "suspended",
                    project=project))["status"] == "suspended"
    assert as_python(props(ok(server, "plan-update", plan_id, "--resources",
                              project_resource(project, "prj-3"), project=project))[
        "resources"]) == [{"id": project, "name": "prj-3", "type": PROJECT_TYPE}]

    # delete by id, and by name (the client resolves names through plan-list)
    out = ok(server, "plan-delete", plan_id, project=project)
    assert "Failed" not in out
    message, code = api_error(server, "plan-show", plan_id, project=project)
    assert code == 404
    assert message == f"Plan {plan_id} could not be found."
    ok(server, "plan-delete", "by json", project=project)
    assert sorted(column(ok(server, "plan-list", project=project), "Name")) == [
        "by id", "by type"]
    out = fails(server, "plan-delete", plan_id, project=project)
    assert "Failed to delete" in out or "No plan with a name or ID" in out


def test_plan_list_filters_sorting_paging(server: KarborServer):
    project = new_project_id()
    plans = {}
    for name in ("alpha", "beta", "gamma"):
        plans[name] = api_plan(server, name, description=f"desc-{name}",
                               project=project)["id"]
    api(server, "PUT", f"plans/{plans['beta']}", {"plan": {"status": "started"}},
        project=project)

    def names(*args: str, **kw) -> list[str]:
        return column(ok(server, "plan-list", *args, project=project, **kw), "Name")

    listing = rows(ok(server, "plan-list", project=project))
    assert {r["Id"]: (r["Name"], r["Description"], r["Provider id"], r["Status"])
            for r in listing} == {
        plans["alpha"]: ("alpha", "desc-alpha", NOOP, "suspended"),
        plans["beta"]: ("beta", "desc-beta", NOOP, "started"),
        plans["gamma"]: ("gamma", "desc-gamma", NOOP, "suspended"),
    }
    assert names("--name", "alpha") == ["alpha"]
    assert names("--description", "desc-gamma") == ["gamma"]
    assert names("--status", "started") == ["beta"]
    assert sorted(names("--status", "suspended")) == ["alpha", "gamma"]
    assert names("--name", "nothing-like-this") == []

    # sorting (server side; the client keeps the server's order when --sort is given)
    assert names("--sort", "name:asc") == ["alpha", "beta", "gamma"]
    assert names("--sort", "name:desc") == ["gamma", "beta", "alpha"]
    assert names("--sort", "created_at:asc") == ["alpha", "beta", "gamma"]
    assert names("--sort", "created_at:desc") == ["gamma", "beta", "alpha"]
    assert names("--sort_key", "name", "--sort_dir", "desc") == ["gamma", "beta", "alpha"]

    # paging with limit and marker
    assert names("--sort", "name:asc", "--limit", "2") == ["alpha", "beta"]
    assert names("--sort", "name:asc", "--limit", "2", "--marker", plans["beta"]) == ["gamma"]
    assert names("--sort", "name:asc", "--marker", plans["alpha"]) == ["beta", "gamma"]
    assert names("--sort", "created_at:desc", "--limit", "1") == ["gamma"]

    # isolation: another project sees none of them; the admin sees them with --tenant
    other = new_project_id()
    api_plan(server, "other", project=other)
    assert column(ok(server, "plan-list", project=other), "Name") == ["other"]
    admin_view = column(ok(server, "plan-list", "--tenant", project, user="admin",
                           project=other), "Id")
    assert sorted(admin_view) == sorted(plans.values())
    all_view = column(ok(server, "plan-list", "--all-tenants", user="admin", project=other),
                      "Id")
    assert set(plans.values()) <= set(all_view)
    # a non-admin asking for all tenants still sees only its own project
    assert column(ok(server, "plan-list", "--all-tenants", project=other), "Name") == ["other"]


def test_project_isolation(server: KarborServer, protected: dict):
    owner = protected["project"]
    plan_id = protected["plan"]["id"]
    intruder = new_project_id()

    message, code = api_error(server, "plan-show", plan_id, project=intruder)
    assert code == 404
    assert message == f"Plan {plan_id} could not be found."
    assert plan_id not in column(ok(server, "plan-list", project=intruder), "Id")
    fails(server, "plan-update", plan_id, "--name", "stolen", project=intruder)
    fails(server, "plan-delete", plan_id, project=intruder)
    assert props(ok(server, "plan-show", plan_id, project=owner))["name"] == "protected plan"

    # the checkpoint is neither listed nor shown to another project
    assert protected["checkpoint"] not in listed_checkpoints(server, project=intruder)
    _, code = api_error(server, "checkpoint-show", NOOP, protected["checkpoint"],
                        project=intruder)
    assert code in (403, 404)
    # a protect of someone else's plan is refused
    _, code = api_error(server, "checkpoint-create", NOOP, plan_id, project=intruder)
    assert code == 404

    # over HTTP: same answers; and a URL naming another project than the token is refused
    resp = server.http("GET", f"plans/{plan_id}", project=intruder)
    assert resp.status_code == 404
    assert resp.json() == {"itemNotFound": {
        "code": 404, "message": f"Plan {plan_id} could not be found."}}
    resp = server.http("GET", f"/v1/{owner}/plans/{plan_id}", project=intruder)
    assert resp.status_code == 400
    assert resp.json()["badRequest"]["code"] == 400


def test_checkpoint_lifecycle(server: KarborServer):
    project = new_project_id()
    plan = create_plan(server, "cp plan", project=project, resource_name="prj")
    created = props(ok(server, "checkpoint-create", NOOP, plan["id"], project=project))
    checkpoint_id = created["id"]
    uuid.UUID(checkpoint_id)
    assert created["project_id"] == project
    assert created["status"] in ("protecting", "available")
    assert as_json(created["extra_info"]) == {"created_by": "manual"}
    create_plan_view = as_json(created["protection_plan"])
    assert create_plan_view["id"] == plan["id"]
    assert create_plan_view["name"] == "cp plan"
    assert create_plan_view["resources"] == [
        {"id": project, "name": "prj", "type": PROJECT_TYPE}]

    # the client can pass --extra_info; it is accepted (and ignored, like the original)
    other = props(ok(server, "checkpoint-create", NOOP, plan["id"], "--extra_info", "a=b",
                     project=project))["id"]

    for cp in (checkpoint_id, other):
        wait_for(lambda cp=cp: checkpoint_status(server, cp, project=project),
                 {"available"}, what=f"checkpoint {cp}")
    shown = props(ok(server, "checkpoint-show", NOOP, checkpoint_id, project=project))
    assert shown["id"] == checkpoint_id
    assert shown["status"] == "available"
    assert shown["project_id"] == project
    assert shown["created_at"] == today()
    assert as_json(shown["extra_info"]) == {"created_by": "manual"}
    assert as_json(shown["protection_plan"]) == {
        "id": plan["id"], "name": "cp plan", "provider_id": NOOP,
        "resources": [{"id": project, "name": "prj", "type": PROJECT_TYPE}]}
    nodes, edges = as_json(shown["resource_graph"])
    assert edges == []
    assert [v[:3] for v in nodes.values()] == [[PROJECT_TYPE, project, "prj"]]

    listing = {r["Id"]: r for r in rows(ok(server, "checkpoint-list", NOOP, project=project))}
    assert set(listing) == {checkpoint_id, other}
    assert listing[checkpoint_id]["Project id"] == project
    assert listing[checkpoint_id]["Status"] == "available"
    assert listing[checkpoint_id]["Created at"] == today()
    assert listing[checkpoint_id]["Protection plan"] == f"Name: cp plan\nId: {plan['id']}"

    # reset-state: to error (the default) and back to available
    out = ok(server, "checkpoint-reset-state", NOOP, checkpoint_id, project=project)
    assert "Failed" not in out
    assert checkpoint_status(server, checkpoint_id, project=project) == "error"
    ok(server, "checkpoint-reset-state", NOOP, checkpoint_id, "--available", project=project)
    assert checkpoint_status(server, checkpoint_id, project=project) == "available"
    out = fails(server, "checkpoint-reset-state", NOOP, str(uuid.uuid4()), project=project)
    assert "not found" in out

    # errors
    message, code = api_error(server, "checkpoint-create", NOOP, str(uuid.uuid4()),
                              project=project)
    assert code == 404
    assert "could not be found" in message
    missing = str(uuid.uuid4())
    message, code = api_error(server, "checkpoint-show", NOOP, missing, project=project)
    assert code == 404
    assert message == f"Checkpoint {missing} could not be found."

    # delete: the checkpoint goes away from the list (show answers 404 or "deleted")
    out = ok(server, "checkpoint-delete", NOOP, checkpoint_id, project=project)
    assert "Failed" not in out

    def gone() -> str:
        resp = server.http("GET", f"providers/{NOOP}/checkpoints", project=project)
        listed = checkpoint_id in [c["id"] for c in resp.json()["checkpoints"]]
        status = http_checkpoint_status(server, checkpoint_id, project=project)
        return "gone" if not listed and status in (None, "deleted") else f"{listed}/{status}"

    wait_for(gone, {"gone"}, what=f"deletion of {checkpoint_id}")
    assert listed_checkpoints(server, project=project) == [other]
    out = fails(server, "checkpoint-delete", NOOP, str(uuid.uuid4()), project=project)
    assert "checkpoint not found" in out


def test_checkpoint_list_filters_and_paging(server: KarborServer):
    project = new_project_id()
    plan_a = api_plan(server, "plan a", project=project)["id"]
    plan_b = api_plan(server, "plan b", project=project)["id"]
    first = api_checkpoint(server, plan_a, project=project)
    second = api_checkpoint(server, plan_b, project=project)
    third = api_checkpoint(server, plan_a, project=project)

    def ids(*args: str) -> list[str]:
        return listed_checkpoints(server, *args, project=project)

    assert sorted(ids()) == sorted([first, second, third])
    assert sorted(ids("--plan_id", plan_a)) == sorted([first, third])
    assert ids("--plan_id", plan_b) == [second]
    day = datetime.datetime.now(datetime.UTC).date()
    tomorrow = (day + datetime.timedelta(days=1)).isoformat()
    yesterday = (day - datetime.timedelta(days=1)).isoformat()
    assert sorted(ids("--start_date", day.isoformat(), "--end_date", tomorrow)) == sorted(
        [first, second, third])
    assert ids("--start_date", "2000-01-01", "--end_date", yesterday) == []

    # newest first; limit/marker page through that order
    newest_first = ids("--sort", "created_at:desc")
    assert newest_first == [third, second, first]
    assert ids("--sort", "created_at:asc") == [first, second, third]
    assert ids("--sort", "created_at:desc", "--limit", "2") == [third, second]
    assert ids("--sort", "created_at:desc", "--limit", "2", "--marker", second) == [first]

    # admin: all tenants / a given project
    admin_all = column(ok(server, "checkpoint-list", NOOP, "--all-tenants", user="admin",
                          project=new_project_id()), "Id")
    assert {first, second, third} <= set(admin_all)
    admin_one = column(ok(server, "checkpoint-list", NOOP, "--all-tenants", "--project_id",
                          project, user="admin", project=new_project_id()), "Id")
    assert sorted(admin_one) == sorted([first, second, third])


def test_restores(server: KarborServer, protected: dict):
    project, checkpoint = protected["project"], protected["checkpoint"]
    created = props(ok(server, "restore-create", NOOP, checkpoint, project=project))
    restore_id = created["id"]
    uuid.UUID(restore_id)
    assert created["checkpoint_id"] == checkpoint
    assert created["provider_id"] == NOOP
    assert created["project_id"] == project
    assert created["restore_target"] == "None"
    assert as_python(created["parameters"]) == {}
    assert created["status"] in ("in_progress", "success")

    def status(rid: str) -> str:
        return api(server, "GET", f"restores/{rid}", project=project)["restore"]["status"]

    assert wait_for(lambda: status(restore_id), {"success", "fail"},
                    what=f"restore {restore_id}") == "success"
    shown = props(ok(server, "restore-show", restore_id, project=project))
    assert shown["id"] == restore_id
    assert shown["status"] == "success"
    assert shown["provider_id"] == NOOP
    assert shown["project_id"] == project
    assert shown["checkpoint_id"] == checkpoint
    assert as_python(shown["resources_status"]) == {f"{PROJECT_TYPE}#{project}": "available"}
    assert as_python(shown["resources_reason"]) == {}

    # with a target, credentials and parameters
    other = props(ok(server, "restore-create", NOOP, checkpoint, "--restore_target",
                     "http://keystone.example/v3", "--restore_username", "u",
                     "--restore_password", "p", "--parameters",
                     f"resource_type={PROJECT_TYPE}", project=project))
    assert other["restore_target"] == "http://keystone.example/v3"
    assert as_python(other["parameters"]) == {PROJECT_TYPE: {}}
    assert "restore_auth" not in other
    assert wait_for(lambda: status(other["id"]), {"success", "fail"}) == "success"

    listing = {r["Id"]: r for r in rows(ok(server, "restore-list", project=project))}
    assert set(listing) == {restore_id, other["id"]}
    assert listing[restore_id]["Checkpoint id"] == checkpoint
    assert listing[restore_id]["Provider id"] == NOOP
    assert listing[restore_id]["Project id"] == project
    assert listing[restore_id]["Status"] == "success"
    assert listing[other["id"]]["Restore target"] == "http://keystone.example/v3"
    assert len(column(ok(server, "restore-list", "--status", "success", project=project),
                      "Id")) == 2
    assert rows(ok(server, "restore-list", "--status", "fail", project=project)) == []
    assert column(ok(server, "restore-list", "--limit", "1", project=project), "Id") != []

    # a restore of a checkpoint that does not exist does not succeed
    rc, out, err = server.cli("restore-create", NOOP, str(uuid.uuid4()), project=project)
    if rc == 0:
        bogus = props(out)["id"]
        assert wait_for(lambda: status(bogus), {"success", "fail"}) == "fail"
    else:
        assert error(out + err)[1] in (400, 404)
    missing = str(uuid.uuid4())
    message, code = api_error(server, "restore-show", missing, project=project)
    assert code == 404
    assert message == f"Restore {missing} could not be found."
    # other projects cannot see it
    _, code = api_error(server, "restore-show", restore_id, project=new_project_id())
    assert code == 404


def test_verifications(server: KarborServer, protected: dict):
    project, checkpoint = protected["project"], protected["checkpoint"]
    created = props(ok(server, "verification-create", NOOP, checkpoint, project=project))
    verification_id = created["id"]
    uuid.UUID(verification_id)
    assert created["checkpoint_id"] == checkpoint
    assert created["provider_id"] == NOOP
    assert created["project_id"] == project
    assert as_python(created["parameters"]) == {}
    assert created["status"] in ("in_progress", "success")

    def status(vid: str) -> str:
        return api(server, "GET", f"verifications/{vid}", project=project)[
            "verification"]["status"]

    assert wait_for(lambda: status(verification_id), {"success", "fail"}) == "success"
    shown = props(ok(server, "verification-show", verification_id, project=project))
    assert shown["id"] == verification_id
    assert shown["status"] == "success"
    assert shown["checkpoint_id"] == checkpoint
    assert as_python(shown["resources_status"]) == {f"{PROJECT_TYPE}#{project}": "available"}

    listing = rows(ok(server, "verification-list", project=project))
    assert [(r["Id"], r["Checkpoint id"], r["Provider id"], r["Status"]) for r in listing] == [
        (verification_id, checkpoint, NOOP, "success")]
    assert column(ok(server, "verification-list", "--status", "success", project=project),
                  "Id") == [verification_id]
    assert rows(ok(server, "verification-list", "--status", "fail", project=project)) == []
    missing = str(uuid.uuid4())
    _, code = api_error(server, "verification-show", missing, project=project)
    assert code == 404
    _, code = api_error(server, "verification-show", verification_id,
                        project=new_project_id())
    assert code == 404


def test_operation_logs(server: KarborServer):
    project = new_project_id()
    plan = api_plan(server, "logged plan", project=project)
    checkpoint = api_checkpoint(server, plan["id"], project=project)
    restore_id = api(server, "POST", "restores", {"restore": {
        "provider_id": NOOP, "checkpoint_id": checkpoint, "parameters": {}}},
        project=project)["restore"]["id"]
    wait_for(lambda: api(server, "GET", f"restores/{restore_id}", project=project)[
        "restore"]["status"], {"success", "fail"})

    def logs(*args: str) -> list[dict]:
        return rows(ok(server, "operationlog-list", *args, project=project))

    def settled() -> str:
        statuses = {r["Operation Type"]: r["Status"] for r in logs()}
        return "done" if statuses == {"protect": "available", "restore": "success"} \
            else repr(statuses)

    wait_for(settled, {"done"}, what="operation logs")
    by_type = {r["Operation Type"]: r for r in logs()}
    protect, restore = by_type["protect"], by_type["restore"]
    assert protect["Checkpoint id"] == checkpoint
    assert protect["Plan Id"] == plan["id"]
    assert protect["Provider id"] == NOOP
    assert protect["Started At"] not in ("", "-")
    assert protect["Ended At"] not in ("", "-")
    assert restore["Restore Id"] == restore_id
    assert restore["Checkpoint id"] == checkpoint
    assert restore["Provider id"] == NOOP

    assert [r["Id"] for r in logs("--status", "success")] == [restore["Id"]]
    assert [r["Id"] for r in logs("--status", "available")] == [protect["Id"]]

    shown = props(ok(server, "operationlog-show", protect["Id"], project=project))
    assert shown["id"] == protect["Id"]
    assert shown["operation_type"] == "protect"
    assert shown["checkpoint_id"] == checkpoint
    assert shown["plan_id"] == plan["id"]
    assert shown["provider_id"] == NOOP
    assert shown["status"] == "available"
    shown = props(ok(server, "operationlog-show", restore["Id"], project=project))
    assert (shown["operation_type"], shown["restore_id"], shown["status"]) == (
        "restore", restore_id, "success")

    missing = str(uuid.uuid4())
    message, code = api_error(server, "operationlog-show", missing, project=project)
    assert code == 404
    assert message == f"Operation log {missing} could not be found."
    assert rows(ok(server, "operationlog-list", project=new_project_id())) == []


def _copy_and_wait(server: KarborServer, project: str, body: dict, source: str,
                   plan_id: str) -> list[str]:
    resp = server.http("POST", f"providers/{NOOP}/checkpoints/action", json=body,
                       project=project)
    assert resp.status_code == 200, resp.text
    copies = resp.json()["copy"]
    # the spec answers one "copy" object; a list (one entry per requested copy) is accepted
    entries = copies if isinstance(copies, list) else [copies]
    pairs = [pair for entry in entries for pair in entry["checkpoint_id"]]
    for entry in entries:
        assert entry["plan_id"] == plan_id
        assert entry["provider_id"] == NOOP
        assert entry["project_id"] == project
    assert [p["checkpoint_protect_id"] for p in pairs] == [source]
    copy_ids = [p["checkpoint_copy_id"] for p in pairs]

    def copy_status(cid: str) -> str:
        resp = server.http("GET", f"providers/{NOOP}/checkpoints/{cid}", project=project)
        assert resp.status_code == 200, resp.text
        return resp.json()["checkpoint"]["status"]

    for cid in copy_ids:
        assert wait_for(lambda cid=cid: copy_status(cid), {"finished", "error"},
                        what=f"copy {cid}") == "finished"
    return copy_ids


def test_copy_action(server: KarborServer):
    project = new_project_id()
    # the seed's form (spec-checkpoint-copy-api): a list of copies naming the provider
    plan_a = api_plan(server, "copy a", project=project)["id"]
    source_a = api_checkpoint(server, plan_a, project=project)
    copies_a = _copy_and_wait(server, project, {"copy": [
        {"provider_id": NOOP, "plan_id": plan_a, "parameters": {}}]}, source_a, plan_a)
    # the original's form: one object
    plan_b = api_plan(server, "copy b", project=project)["id"]
    source_b = api_checkpoint(server, plan_b, project=project)
    copies_b = _copy_and_wait(server, project, {"copy": {"plan_id": plan_b,
                                                         "parameters": {}}}, source_b, plan_b)

    listed = listed_checkpoints(server, project=project)
    assert sorted(listed) == sorted([source_a, source_b, *copies_a, *copies_b])
    for copy_id, plan_id in ((copies_a[0], plan_a), (copies_b[0], plan_b)):
        shown = props(ok(server, "checkpoint-show", NOOP, copy_id, project=project))
        assert shown["status"] == "finished"
        assert as_json(shown["extra_info"])["copy_status"] == "finished"
        assert as_json(shown["protection_plan"])["id"] == plan_id
    assert sorted(listed_checkpoints(server, "--plan_id", plan_a, project=project)) == sorted(
        [source_a, *copies_a])

    # errors: unknown plan, plan without checkpoints
    resp = server.http("POST", f"providers/{NOOP}/checkpoints/action",
                       json={"copy": {"plan_id": str(uuid.uuid4()), "parameters": {}}},
                       project=project)
    assert resp.status_code == 404
    fresh = api_plan(server, "never protected", project=project)["id"]
    resp = server.http("POST", f"providers/{NOOP}/checkpoints/action",
                       json={"copy": {"plan_id": fresh, "parameters": {}}}, project=project)
    assert resp.status_code == 400
    assert "not been protected" in resp.json()["badRequest"]["message"]


def test_trigger_lifecycle(server: KarborServer):
    project = new_project_id()
    before = datetime.datetime.now(datetime.UTC).replace(microsecond=0, tzinfo=None)
    created = props(ok(server, "trigger-create", "My Trigger", "time",
                       f"pattern={SEED_PATTERN},format=calendar", project=project))
    trigger_id = created["id"]
    uuid.UUID(trigger_id)
    assert created["name"] == "My Trigger"
    assert created["type"] == "time"
    properties = as_json(created["properties"])
    assert properties["pattern"] == SEED_PATTERN
    assert properties["format"] == "calendar"
    assert TIME_RE.match(properties["start_time"])
    start = datetime.datetime.strptime(properties["start_time"], "%Y-%m-%d %H:%M:%S")
    assert before - datetime.timedelta(seconds=5) <= start <= before + datetime.timedelta(
        seconds=60)
    assert set(properties) <= {"pattern", "format", "start_time", "end_time", "window"}

    windowed = props(ok(server, "trigger-create", "windowed", "time",
                        f"pattern={SEED_PATTERN},format=calendar,window=1800,"
                        "start_time=2030-01-01 00:00:00,end_time=2031-01-01 00:00:00",
                        project=project))
    assert as_json(windowed["properties"]) == {
        "pattern": SEED_PATTERN, "format": "calendar", "window": "1800",
        "start_time": "2030-01-01 00:00:00", "end_time": "2031-01-01 00:00:00"}

    shown = props(ok(server, "trigger-show", trigger_id, project=project))
    assert shown == created

    listing = {r["Id"]: r for r in rows(ok(server, "trigger-list", project=project))}
    assert set(listing) == {trigger_id, windowed["id"]}
    assert listing[trigger_id]["Name"] == "My Trigger"
    assert listing[trigger_id]["Type"] == "time"
    assert as_json(listing[trigger_id]["Properties"]) == properties
    assert column(ok(server, "trigger-list", "--name", "windowed", project=project),
                  "Id") == [windowed["id"]]
    assert len(rows(ok(server, "trigger-list", "--type", "time", project=project))) == 2
    assert rows(ok(server, "trigger-list", "--type", "event", project=project)) == []
    assert column(ok(server, "trigger-list", "--sort", "name:asc", project=project),
                  "Name") == ["My Trigger", "windowed"]
    assert column(ok(server, "trigger-list", "--sort", "name:desc", "--limit", "1",
                     project=project), "Name") == ["windowed"]
    assert rows(ok(server, "trigger-list", project=new_project_id())) == []

    # update: rename; replace the properties (which must name start_time)
    renamed = props(ok(server, "trigger-update", trigger_id, "--name", "Renamed",
                       project=project))
    assert renamed["name"] == "Renamed"
    assert as_json(renamed["properties"]) == properties
    hourly = r"BEGIN:VEVENT\nRRULE:FREQ=HOURLY;INTERVAL=1;\nEND:VEVENT"
    replaced = props(ok(server, "trigger-update", trigger_id, "--properties",
                        f"pattern={hourly},format=calendar,start_time=2030-01-01 00:00:00,"
                        "window=900", project=project))
    assert as_json(replaced["properties"]) == {
        "pattern": hourly, "format": "calendar", "start_time": "2030-01-01 00:00:00",
        "window": "900"}
    assert as_json(props(ok(server, "trigger-show", trigger_id, project=project))[
        "properties"]) == as_json(replaced["properties"])
    # the client sends only the properties given: the original refused that (start_time
    # missing); merging them into the current properties is accepted too
    rc, out, err = server.cli("trigger-update", trigger_id, "--properties", "window=1200",
                              project=project)
    if rc == 0:
        assert as_json(props(out)["properties"]) == {
            **as_json(replaced["properties"]), "window": "1200"}
    else:
        message, code = error(out + err)
        assert code == 400
        assert "start_time" in message
    message, code = api_error(server, "trigger-update", trigger_id, "--properties",
                              "pattern=not a calendar,start_time=2030-01-01 00:00:00",
                              project=project)
    assert code == 400

    # invalid triggers
    for props_arg, words in (
            ("pattern=not a calendar,format=calendar", "pattern"),
            (f"pattern={SEED_PATTERN},format=calendar,start_time=next tuesday",
             "start_time"),
            (f"pattern={SEED_PATTERN},format=calendar,start_time=2030-01-01 00:00:00,"
             "end_time=2029-01-01 00:00:00", "end_time"),
            # the test server runs with min_interval = 2 (seconds)
            (r"pattern=BEGIN:VEVENT\nRRULE:FREQ=SECONDLY;INTERVAL=1;\nEND:VEVENT,"
             "format=calendar", "interval")):
        message, code = api_error(server, "trigger-create", "bad", "time", props_arg,
                                  project=project)
        assert code == 400, message
        assert words in message, message
    message, code = api_error(server, "trigger-create", "bad", "event",
                              f"pattern={SEED_PATTERN},format=calendar", project=project)
    assert code == 400
    assert "Invalid trigger type" in message

    # another project can neither see nor delete it
    _, code = api_error(server, "trigger-show", trigger_id, project=new_project_id())
    assert code in (403, 404)

    out = ok(server, "trigger-delete", trigger_id, windowed["id"], project=project)
    assert "Failed" not in out
    for tid in (trigger_id, windowed["id"]):
        message, code = api_error(server, "trigger-show", tid, project=project)
        assert code == 404
        assert message == f"Trigger {tid} could not be found."
    assert rows(ok(server, "trigger-list", project=project)) == []


def test_scheduled_operations(server: KarborServer):
    project = new_project_id()
    plan_id = api_plan(server, "scheduled plan", project=project)["id"]
    trigger_id = api(server, "POST", "triggers", {"trigger_info": {
        "name": "My Trigger", "type": "time",
        "properties": {"pattern": SEED_PATTERN, "format": "calendar"}}},
        project=project)["trigger_info"]["id"]

    protect = props(ok(server, "scheduledoperation-create", "Protect with My Trigger",
                       "protect", trigger_id, f"plan_id={plan_id},provider_id={NOOP}",
                       project=project))
    uuid.UUID(protect["id"])
    assert protect["name"] == "Protect with My Trigger"
    assert protect["operation_type"] == "protect"
    assert protect["trigger_id"] == trigger_id
    assert protect["enabled"] == "True"
    assert protect["description"] == "None"
    assert as_json(protect["operation_definition"]) == {"plan_id": plan_id,
                                                        "provider_id": NOOP}

    retention = props(ok(server, "scheduledoperation-create", "Retention", "retention_protect",
                         trigger_id, f"plan_id={plan_id},provider_id={NOOP},max_backups=3",
                         project=project))
    assert retention["operation_type"] == "retention_protect"
    assert as_json(retention["operation_definition"]) == {
        "plan_id": plan_id, "provider_id": NOOP, "max_backups": "3"}

    shown = props(ok(server, "scheduledoperation-show", protect["id"], project=project))
    assert shown == protect

    # the client asks for columns OperationType/TriggerId/OperationDefinition, which match
    # no attribute, and drops them: only Id and Name are printed
    listing = rows(ok(server, "scheduledoperation-list", project=project))
    assert sorted((r["Id"], r["Name"]) for r in listing) == sorted(
        [(protect["id"], "Protect with My Trigger"), (retention["id"], "Retention")])
    assert set(listing[0]) == {"Id", "Name"}
    assert column(ok(server, "scheduledoperation-list", "--operation_type",
                     "retention_protect", project=project), "Id") == [retention["id"]]
    assert len(rows(ok(server, "scheduledoperation-list", "--trigger_id", trigger_id,
                       project=project))) == 2
    assert rows(ok(server, "scheduledoperation-list", "--trigger_id", str(uuid.uuid4()),
                   project=project)) == []
    assert column(ok(server, "scheduledoperation-list", "--name", "Retention",
                     project=project), "Id") == [retention["id"]]
    assert column(ok(server, "scheduledoperation-list", "--sort", "name:asc", "--limit", "1",
                     project=project), "Name") == ["Protect with My Trigger"]
    assert rows(ok(server, "scheduledoperation-list", project=new_project_id())) == []
    resp = server.http("GET", "scheduled_operations", project=project)
    assert resp.status_code == 200
    assert {op["id"]: op["operation_type"] for op in resp.json()["operations"]} == {
        protect["id"]: "protect", retention["id"]: "retention_protect"}

    # invalid operations (the client itself only accepts protect|retention_protect)
    resp = server.http("POST", "scheduled_operations", project=project, json={
        "scheduled_operation": {"name": "bad", "operation_type": "no_such_type",
                                "trigger_id": trigger_id,
                                "operation_definition": {"plan_id": plan_id,
                                                         "provider_id": NOOP}}})
    assert resp.status_code == 400, resp.text
    assert "operation type" in resp.json()["badRequest"]["message"]
    _, code = api_error(server, "scheduledoperation-create", "bad", "protect",
                        str(uuid.uuid4()), f"plan_id={plan_id},provider_id={NOOP}",
                        project=project)
    assert code == 404
    _, code = api_error(server, "scheduledoperation-create", "bad", "protect", trigger_id,
                        f"plan_id={plan_id},provider_id={uuid.uuid4()}", project=project)
    assert code == 400
    assert len(rows(ok(server, "scheduledoperation-list", project=project))) == 2
    # another project can neither see nor use them
    _, code = api_error(server, "scheduledoperation-show", protect["id"],
                        project=new_project_id())
    assert code in (403, 404)

    # a trigger in use cannot be deleted
    message, code = api_error(server, "trigger-delete", trigger_id, project=project)
    assert code in (409, 424)
    assert props(ok(server, "trigger-show", trigger_id, project=project))["id"] == trigger_id

    # nor can the plan they protect
    _, code = api_error(server, "plan-delete", plan_id, project=project)
    assert code in (400, 409)

    out = ok(server, "scheduledoperation-delete", protect["id"], retention["id"],
             project=project)
    assert "Failed" not in out
    for op_id in (protect["id"], retention["id"]):
        _, code = api_error(server, "scheduledoperation-show", op_id, project=project)
        assert code == 404
    assert rows(ok(server, "scheduledoperation-list", project=project)) == []
    ok(server, "trigger-delete", trigger_id, project=project)
    ok(server, "plan-delete", plan_id, project=project)


def test_services(server: KarborServer):
    def services(*args: str) -> list[dict]:
        return rows(ok(server, "service-list", *args, user="admin"))

    listing = services()
    by_binary = {r["Binary"]: r for r in listing}
    assert set(by_binary) == {"karbor-api", "karbor-protection", "karbor-operationengine"}
    for row in listing:
        assert row["Status"] == "enabled"
        assert row["State"] == "up"
        assert row["Host"]
        assert row["Id"].isdigit()
    engine = by_binary["karbor-operationengine"]
    assert [r["Id"] for r in services("--binary", "karbor-operationengine")] == [engine["Id"]]
    assert len(services("--host", engine["Host"])) == 3
    assert services("--host", "no-such-host") == []

    disabled = rows(ok(server, "service-disable", engine["Id"], "--reason", "maintenance",
                       user="admin"))
    assert [(r["Id"], r["Status"], r["Disabled Reason"]) for r in disabled] == [
        (engine["Id"], "disabled", "maintenance")]
    row = services("--binary", "karbor-operationengine")[0]
    assert (row["Status"], row["Disabled Reason"]) == ("disabled", "maintenance")
    enabled = rows(ok(server, "service-enable", engine["Id"], user="admin"))
    assert [(r["Id"], r["Status"]) for r in enabled] == [(engine["Id"], "enabled")]
    assert enabled[0]["Disabled Reason"] in ("-", "", "None")
    assert services("--binary", "karbor-operationengine")[0]["Status"] == "enabled"

    # only the operation engine can be updated; unknown ids; admin only
    message, code = api_error(server, "service-disable", by_binary["karbor-api"]["Id"],
                              user="admin")
    assert code == 400
    assert "Only karbor-operationengine services can be updated" in message
    _, code = api_error(server, "service-enable", "987654", user="admin")
    assert code == 404
    message, code = api_error(server, "service-list")
    assert code == 403
    assert "service:get_all" in message
    _, code = api_error(server, "service-disable", engine["Id"])
    assert code == 403
    assert services("--binary", "karbor-operationengine")[0]["Status"] == "enabled"


def test_quotas(server: KarborServer):
    project = new_project_id()
    shown = props(ok(server, "quota-show", "--tenant", project, project=project))
    assert shown == {"plans": "50", "checkpoints": "-1", "id": project}
    detail = props(ok(server, "quota-show", "--tenant", project, "--detail", project=project))
    assert detail["id"] == project
    assert detail["plans"] == "in_use = 0\nlimit = 50\nreserved = 0"
    assert detail["checkpoints"] == "in_use = 0\nlimit = -1\nreserved = 0"
    defaults = props(ok(server, "quota-defaults", "--tenant", project, project=project))
    assert defaults == {"plans": "50", "checkpoints": "-1", "id": project}

    # client bug in no-client-auth mode: without --tenant it cannot find the project id
    out = fails(server, "quota-show", project=project)
    assert "get_project_id" in out
    out = fails(server, "quota-defaults", project=project)
    assert "get_project_id" in out

    # only the admin may update, and then the limit is enforced
    message, code = api_error(server, "quota-update", project, "--plans", "2",
                              project=project)
    assert code == 403
    updated = props(ok(server, "quota-update", project, "--plans", "2", user="admin",
                       project=project))
    assert updated == {"plans": "2", "checkpoints": "-1"}
    assert props(ok(server, "quota-show", "--tenant", project, project=project))[
        "plans"] == "2"
    assert props(ok(server, "quota-defaults", "--tenant", project, project=project))[
        "plans"] == "50"
    first = api_plan(server, "q1", project=project)["id"]
    create_plan(server, "q2", project=project)
    message, code = api_error(server, "plan-create", "q3", NOOP, project_resource(project),
                              project=project)
    assert code == 413
    assert message == "Maximum number of plans allowed (2) exceeded"
    detail = props(ok(server, "quota-show", "--tenant", project, "--detail", project=project))
    assert detail["plans"] == "in_use = 2\nlimit = 2\nreserved = 0"
    api_checkpoint(server, first, project=project)
    detail = props(ok(server, "quota-show", "--tenant", project, "--detail", project=project))
    assert detail["checkpoints"].startswith("in_use = 1\n")
    ok(server, "plan-delete", first, project=project)
    detail = props(ok(server, "quota-show", "--tenant", project, "--detail", project=project))
    assert detail["plans"].startswith("in_use = 1\n")
    create_plan(server, "q3", project=project)

    # another project's quotas are the admin's business only; ids must be uuid-like
    other = new_project_id()
    _, code = api_error(server, "quota-show", "--tenant", other, project=project)
    assert code == 403
    assert props(ok(server, "quota-show", "--tenant", other, user="admin",
                    project=project))["plans"] == "50"
    message, code = api_error(server, "quota-show", "--tenant", "not-a-project",
                              user="admin", project=project)
    assert code == 400
    assert message == "Invalid project id provided."


def test_quota_classes(server: KarborServer):
    shown = props(ok(server, "quota-class-show", "default"))
    assert shown == {"plans": "50", "checkpoints": "-1", "id": "default"}
    name = f"gold{uuid.uuid4().hex[:6]}"
    assert props(ok(server, "quota-class-show", name)) == {
        "plans": "50", "checkpoints": "-1", "id": name}

    _, code = api_error(server, "quota-class-update", name, "--plans", "7")
    assert code == 403
    updated = props(ok(server, "quota-class-update", name, "--plans", "7", user="admin"))
    assert updated == {"plans": "7", "checkpoints": "-1"}
    assert props(ok(server, "quota-class-show", name)) == {
        "plans": "7", "checkpoints": "-1", "id": name}
    # another class is unaffected
    assert props(ok(server, "quota-class-show", "default"))["plans"] == "50"


def test_scheduled_retention_protect_runs(server: KarborServer):
    """A retention_protect operation fires on its trigger and keeps max_backups checkpoints."""
    project = new_project_id()
    plan_id = api_plan(server, "every two seconds", project=project)["id"]
    start = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M:%S")
    trigger = props(ok(server, "trigger-create", "fast", "time",
                       r"pattern=BEGIN:VEVENT\nRRULE:FREQ=SECONDLY;INTERVAL=2;\nEND:VEVENT,"
                       f"format=calendar,start_time={start},window=60", project=project))
    operation = props(ok(server, "scheduledoperation-create", "keep three", "retention_protect",
                         trigger["id"], f"plan_id={plan_id},provider_id={NOOP},max_backups=3",
                         project=project))

    seen: set[str] = set()

    def fired() -> str:
        resp = server.http("GET", f"providers/{NOOP}/checkpoints", project=project)
        seen.update(c["id"] for c in resp.json()["checkpoints"])
        return "enough" if len(seen) >= 5 else str(len(seen))

    wait_for(fired, {"enough"}, timeout=60, interval=0.3, what="checkpoints made by the engine")
    ok(server, "scheduledoperation-delete", operation["id"], project=project)

    def settled() -> str:
        resp = server.http("GET", f"providers/{NOOP}/checkpoints", project=project)
        statuses = sorted(c["status"] for c in resp.json()["checkpoints"])
        return "settled" if statuses == ["available"] * 3 else repr(statuses)

    wait_for(settled, {"settled"}, timeout=30, what="retention of max_backups=3")
    remaining = rows(ok(server, "checkpoint-list", NOOP, project=project))
    assert len(remaining) == 3
    assert {r["Status"] for r in remaining} == {"available"}
    assert {r["Protection plan"] for r in remaining} == {
        f"Name: every two seconds\nId: {plan_id}"}
    # the newest three survived: every checkpoint seen but not kept is deleted
    kept = {r["Id"] for r in remaining}
    assert len(seen - kept) >= 2
    for checkpoint_id in seen - kept:
        assert http_checkpoint_status(server, checkpoint_id, project=project) in (
            None, "deleted")
    shown = props(ok(server, "checkpoint-show", NOOP, sorted(kept)[0], project=project))
    assert as_json(shown["extra_info"])["created_by"] == "operation-engine"
    ok(server, "trigger-delete", trigger["id"], project=project)


def test_username_and_password_headers_mode(server, karborclient):
    """Without a token the client sends X-Auth-User/X-Auth-Key, which noauth does not
    accept (anyone could name any user): as from the original, the answer is the 204
    that says which token to use, on which the client fails without showing a plan."""
    project = new_project_id()
    plan = server.http("POST", "plans", user="carol", project=project, json={"plan": {
        "name": "carols", "provider_id": NOOP,
        "resources": [{"id": project, "type": "OS::Keystone::Project", "name": "p"}]}})
    assert plan.status_code == 200, plan.text
    proc = subprocess.run(
        [karborclient, "--os-no-client-auth", "--karbor-url",
         f"{server.base_url}/v1/{project}", "--os-username", "carol", "--os-password", "secret",
         "--os-auth-url", "http://keystone.invalid/v3", "--os-region-name", "R1", "plan-list"],
        capture_output=True, text=True, timeout=60)
    assert proc.returncode != 0, proc.stdout
    assert plan.json()["plan"]["id"] not in proc.stdout + proc.stderr
    assert "carols" not in proc.stdout + proc.stderr
    # the documented token form of the same client sees it
    rc, out, err = server.cli("plan-list", user="carol", project=project)
    assert rc == 0, err
    assert plan.json()["plan"]["id"] in out
