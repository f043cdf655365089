"""Unworkable restore, verify and copy parameters are refused before anything is recorded
(issue 11, item 3): 400 naming the parameter and the resource, no restore, verification,
copy or operation log written. They used to be accepted and fail later."""

from __future__ import annotations

import uuid

import pytest

from tests.functional._server import karbor_server, local_providers
from tests.functional.test_local_directory import (  # noqa: F401  (local_env is a fixture)
    LOCAL_PROVIDER,
    TYPE,
    Client,
    local_env,
)

DIRECTORY_NS = uuid.UUID("6a1d3c52-0b7e-5f8e-9c41-6f0a8d2b7e13")


def _records(api: Client) -> dict:
    return {"restores": len(api.call("GET", "restores")["restores"]),
            "verifications": len(api.call("GET", "verifications")["verifications"]),
            "logs": len(api.call("GET", "operation_logs")["operation_logs"]),
            "checkpoints": len(api.call("GET", f"providers/{LOCAL_PROVIDER}/checkpoints")
                               ["checkpoints"])}


@pytest.fixture(scope="module")
def protected(tmp_path_factory):
    """A checkpoint of a directory and of a PostgreSQL database (on a server that need not
    answer: the door checks are about configuration and the file system only)."""
    tmp = tmp_path_factory.mktemp("door")
    providers = local_providers(tmp)
    roots, elsewhere = tmp / "roots", tmp / "elsewhere"
    (roots / "data").mkdir(parents=True)
    (roots / "data" / "file.txt").write_text("keep me\n")
    (roots / "full").mkdir()
    (roots / "full" / "x").write_text("x")
    (roots / "a-file").write_text("not a directory")
    elsewhere.mkdir()
    other = uuid.uuid4().hex
    (tmp / "theirs").mkdir()
    config = {"DEFAULT": {"provider_config_dir": providers},
              "local_directory": {"roots": f"{roots},{tmp / 'theirs'}:{other}"},
              "postgresql": {"servers": "main:postgresql://postgres@127.0.0.1:1",
                             "owners": f"other:{other}"}}
    with karbor_server(config) as srv:
        api = Client(srv.url, uuid.uuid4().hex)
        path = roots / "data"
        plan = api.call("POST", "plans", {"plan": {
            "name": "door", "provider_id": LOCAL_PROVIDER,
            "resources": [{"id": str(uuid.uuid5(DIRECTORY_NS, str(path))), "type": TYPE,
                           "name": str(path), "extra_info": {"path": str(path)}}]}})["plan"]
        cp = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                      {"checkpoint": {"plan_id": plan["id"]}})["checkpoint"]["id"]
        assert api.checkpoint(cp)["status"] == "available"
        yield api, cp, plan, tmp, roots, elsewhere


BAD_DIRECTORY_RESTORES = [
    ({}, "give either restore_path"),
    ({"restore_path": "{roots}/new", "in_place": True}, "not both"),
    ({"restore_path": "relative/path"}, "not an absolute path"),
    ({"restore_path": "{elsewhere}/new"}, "is not under the [local_directory] roots"),
    ({"restore_path": "{tmp}/theirs/new"}, "roots open to this project"),
    ({"restore_path": "{roots}/full"}, "exists and is not an empty directory"),
    ({"restore_path": "{roots}/a-file"}, "exists and is not an empty directory"),
    ({"restore_path": "{roots}/missing/new"}, "parent directory does not exist"),
    ({"in_place": "maybe"}, "in_place"),
    ({"restore_path": 42}, "restore_path"),
    ({"target": "/tmp"}, "'target'"),
]


@pytest.mark.parametrize("params,words", BAD_DIRECTORY_RESTORES,
                         ids=[w for _, w in BAD_DIRECTORY_RESTORES])
def test_unworkable_directory_restore_is_refused_and_nothing_recorded(protected, params,
                                                                       words):
    api, cp, _plan, tmp, roots, elsewhere = protected
    params = {k: v.format(roots=roots, elsewhere=elsewhere, tmp=tmp) if isinstance(v, str)
              else v for k, v in params.items()}
    before = _records(api)
    body = api.call("POST", "restores", {"restore": {
        "provider_id": LOCAL_PROVIDER, "checkpoint_id": cp,
        "parameters": {TYPE: params}}}, status=400)
    message = body["badRequest"]["message"]
    assert words in message, message
    if words not in ("in_place", "restore_path", "'target'"):
        assert TYPE in message  # the resource is named
    assert _records(api) == before
    assert not (elsewhere / "new").exists() and not (roots / "new").exists()


def test_a_workable_restore_is_still_accepted(protected):
    api, cp, _plan, _tmp, roots, _elsewhere = protected
    done = api.restore(cp, {"restore_path": str(roots / "copy")})
    assert done["status"] == "success", done
    assert (roots / "copy" / "file.txt").read_text() == "keep me\n"


def test_unworkable_verify_and_copy_parameters_are_refused(protected):
    api, cp, plan, *_ = protected
    before = _records(api)
    body = api.call("POST", "verifications", {"verification": {
        "provider_id": LOCAL_PROVIDER, "checkpoint_id": cp,
        "parameters": {TYPE: {"deep": True}}}}, status=400)
    assert "'deep'" in body["badRequest"]["message"]
    body = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints/action", {"copy": {
        "plan_id": plan["id"], "parameters": {TYPE: {"target": "x"}}}}, status=400)
    assert "'target'" in body["badRequest"]["message"]
    body = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints/action", {"copy": {
        "plan_id": plan["id"], "parameters": {"OS::Nova::Server": {}}}}, status=400)
    assert "OS::Nova::Server" in body["badRequest"]["message"]
    assert _records(api) == before
