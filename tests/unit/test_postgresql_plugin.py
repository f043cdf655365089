"""Pure helpers of the Karbor::PostgreSQL::Database plugins (no PostgreSQL server needed)."""

from __future__ import annotations

import subprocess
import tempfile
import uuid

import pytest

from karbor.common import exception
from karbor.common.config import CONF
from karbor.services.protection.protectable_plugins import postgresql as protectable
from karbor.services.protection.protection_plugins import postgresql as plugin


@pytest.fixture
def override():
    done = []

    def set_(name, value):
        CONF.set_override(name, value, group="postgresql")
        done.append(name)

    yield set_
    for name in done:
        CONF.clear_override(name, group="postgresql")


def test_ids_are_stable_and_distinct():
    a = protectable.database_id("main", "shop")
    assert a == str(uuid.uuid5(protectable.NAMESPACE, "main/shop"))
    assert a == protectable.database_id("main", "shop")
    assert a != protectable.database_id("other", "shop")
    assert a != protectable.database_id("main", "shop2")
    r = protectable.resource("main", "shop")
    assert (r.type, r.id, r.name) == (protectable.RESOURCE_TYPE, a, "main/shop")
    assert r.extra_info == {"server": "main", "database": "shop"}


def test_servers_option_parses_urls_with_colons(override):
    override("servers", {"main": "postgresql://u:p%40ss@db1:6543/maint?sslmode=disable"})
    assert protectable.servers() == {
        "main": "postgresql://u:p%40ss@db1:6543/maint?sslmode=disable"}
    params = protectable.conn_params(protectable.server_url("main"), "shop")
    assert params["host"] == "db1" and params["port"] == "6543"
    assert params["user"] == "u" and params["password"] == "p@ss"
    assert params["dbname"] == "shop" and params["sslmode"] == "disable"
    assert protectable.conn_params(protectable.server_url("main"))["dbname"] == "maint"
    with pytest.raises(protectable.UnknownServer, match="'nope' is not a server"):
        protectable.server_url("nope")


def test_the_password_never_reaches_the_command_line():
    dsn, env = plugin.client_env({"host": "h", "user": "u", "password": "s3cret",
                                  "dbname": "my db"})
    assert "s3cret" not in dsn and "password" not in dsn
    assert env["PGPASSWORD"] == "s3cret"
    assert "dbname='my db'" in dsn


def test_find_program(override, tmp_path):
    override("bin_dir", str(tmp_path))
    with pytest.raises(protectable.ProgramNotFound) as info:
        protectable.find_program("pg_dump")
    assert "pg_dump not found" in info.value.msg and str(tmp_path) in info.value.msg
    exe = tmp_path / "pg_restore"
    exe.write_text("#!/bin/sh\n")
    exe.chmod(0o755)
    assert protectable.find_program("pg_restore") == str(exe)
    override("bin_dir", None)
    found = protectable.find_program("pg_dump")  # Debian's, in /usr/lib/postgresql/*/bin
    assert found.endswith("/pg_dump")
    assert "pg_dump (PostgreSQL)" in plugin.program_version(found)
    with pytest.raises(protectable.ProgramNotFound, match="no_such_pg_tool not found"):
        protectable.find_program("no_such_pg_tool")


def test_restore_target(override):
    override("servers", {"main": "postgresql://h", "other": "postgresql://h2"})
    dump = {"server": "main", "database": "shop"}
    assert plugin.restore_target(dump, {"restore_name": "copy"}) == ("main", "copy", False)
    assert plugin.restore_target(dump, {"restore_name": "copy", "restore_server": "other"}) \
        == ("other", "copy", False)
    assert plugin.restore_target(dump, {"in_place": True}) == ("main", "shop", True)
    for bad in ({}, {"in_place": True, "restore_name": "x"}, {"restore_name": "x" * 64},
                {"in_place": True, "restore_server": "other"}):
        with pytest.raises(exception.InvalidInput):
            plugin.restore_target(dump, bad)
    with pytest.raises(protectable.UnknownServer):
        plugin.restore_target(dump, {"restore_name": "x", "restore_server": "nope"})


def test_a_failing_dump_raises_at_end_of_stream_with_its_stderr():
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(["sh", "-c", "printf partial; echo 'pg_dump: error: boom' >&2;"
                                             " exit 1"], stdout=subprocess.PIPE, stderr=stderr)
        reader = plugin._ExitChecked(proc, stderr, "main", "shop")
        assert reader.read(100) == b"partial"
        with pytest.raises(plugin.DumpFailed) as info:
            reader.read(100)
        proc.stdout.close()
    assert info.value.msg == "pg_dump of 'shop' on 'main' failed: pg_dump: error: boom"
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(["printf", "all"], stdout=subprocess.PIPE, stderr=stderr)
        reader = plugin._ExitChecked(proc, stderr, "main", "shop")
        buf = bytearray(10)
        assert reader.readinto(buf) == 3
        assert reader.readinto(buf) == 0
        assert reader.size == 3
        proc.stdout.close()


def test_schemas():
    restore = plugin.PostgreSQLProtectionPlugin.get_restore_schema(protectable.RESOURCE_TYPE)
    assert set(restore["properties"]) == {"restore_name", "restore_server", "in_place"}
    assert plugin.PostgreSQLProtectionPlugin.get_supported_resources_types() == [
        protectable.RESOURCE_TYPE]


def test_unworkable_restore_parameters_are_refused_at_the_door(override):
    """The plugin's own checks, which the API runs before a restore is recorded: about the
    configuration only (no database server is contacted)."""
    from karbor.common.context import RequestContext

    override("servers", {"main": "postgresql://u@h/postgres",
                         "other": "postgresql://u@h2/postgres"})
    override("owners", {"other": "x" * 32})
    res = protectable.resource("main", "shop")
    ctx = RequestContext(project_id="p" * 32)
    check = plugin.PostgreSQLProtectionPlugin.check_restore_parameters
    for params, words in (({"in_place": True, "restore_server": "nope"},
                           "restore_server cannot be combined"),
                          ({"restore_name": "n", "restore_server": "nope"},
                           "'nope' is not a server"),
                          ({"restore_name": "n", "restore_server": "other"},
                           "'other' is not a server"),
                          ({"restore_name": "x" * 64}, "at most 63 bytes"),
                          ({}, "give either restore_name"),
                          ({"restore_name": "n", "in_place": True},
                           "give either restore_name")):
        with pytest.raises(exception.InvalidInput, match=words):
            check(res, params, ctx)
    check(res, {"restore_name": "n"}, ctx)
    check(res, {"in_place": True}, ctx)
