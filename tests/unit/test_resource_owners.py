"""Roots and PostgreSQL servers that belong to one project (issue 17, item 5).

Before, any project's member saw, protected and restored over every directory under the
roots and every database of the configured servers. An owned root or server is now its
project's alone; one without an owner stays shared.
"""

from __future__ import annotations

import os

import pytest

from karbor.common import exception
from karbor.common.config import CONF
from karbor.common.context import RequestContext
from karbor.services.protection.protectable_plugins import directory as dirs
from karbor.services.protection.protectable_plugins import postgresql as pg
from karbor.services.protection.protection_plugins import postgresql as pg_plugin

A, B = "a" * 32, "b" * 32


@pytest.fixture
def override():
    done = []

    def set_(group, name, value):
        CONF.set_override(name, value, group=group)
        done.append((group, name))

    yield set_
    for group, name in done:
        CONF.clear_override(name, group=group)


@pytest.fixture
def layout(tmp_path, override):
    for root in ("mine", "theirs", "shared"):
        (tmp_path / root / "data").mkdir(parents=True)
    override("local_directory", "roots", [f"{tmp_path / 'mine'}:{A}",
                                          f"{tmp_path / 'theirs'}:{B}",
                                          str(tmp_path / "shared")])
    return tmp_path


def names(project: str) -> list[str]:
    plugin = dirs.DirectoryProtectablePlugin()
    return [r.name for r in plugin.list_resources(RequestContext(project_id=project))]


def test_each_project_lists_its_own_roots_and_the_shared_ones(layout):
    assert names(A) == [str(layout / "mine" / "data"), str(layout / "shared" / "data")]
    assert names(B) == [str(layout / "theirs" / "data"), str(layout / "shared" / "data")]
    assert names("c" * 32) == [str(layout / "shared" / "data")]


def test_another_projects_directory_is_not_found_nor_usable(layout):
    plugin = dirs.DirectoryProtectablePlugin()
    theirs = str(layout / "theirs" / "data")
    with pytest.raises(exception.ProtectableResourceNotFound):
        plugin.show_resource(RequestContext(project_id=A), dirs.directory_id(theirs))
    assert plugin.show_resource(RequestContext(project_id=B),
                                dirs.directory_id(theirs)).name == theirs
    with pytest.raises(exception.InvalidInput, match="roots open to this project"):
        dirs.check_path(theirs, A)
    with pytest.raises(exception.InvalidInput, match="roots open to this project"):
        dirs.check_path(str(layout / "theirs" / "new"), A)   # a restore_path there
    assert dirs.check_path(theirs, B) == os.path.realpath(theirs)
    assert dirs.check_path(str(layout / "shared" / "new"), A)


def test_a_path_with_a_colon_is_still_a_path(tmp_path, override):
    root = tmp_path / "odd:name" / "sub"
    root.mkdir(parents=True)
    override("local_directory", "roots", [str(root)])
    assert dirs.root_owners() == {os.path.realpath(root): None}
    assert dirs._split_root(f"{root}:{A}") == (str(root), A)


def test_an_owned_postgresql_server_is_unknown_to_other_projects(override):
    override("postgresql", "servers", {"ours": "postgresql://u@db1/postgres",
                                       "shared": "postgresql://u@db2/postgres"})
    override("postgresql", "owners", {"ours": A})
    assert set(pg.servers(A)) == {"ours", "shared"}
    assert set(pg.servers(B)) == {"shared"}
    with pytest.raises(pg.UnknownServer, match="'ours' is not a server"):
        pg.server_url("ours", B)
    assert pg.server_url("ours", A) == "postgresql://u@db1/postgres"
    dump = {"server": "shared", "database": "shop"}
    # Restoring project B's own dump onto project A's server, or in place on a server
    # that has since become another project's, is refused before anything runs.
    with pytest.raises(pg.UnknownServer):
        pg_plugin.restore_target(dump, {"restore_name": "x", "restore_server": "ours"}, B)
    with pytest.raises(pg.UnknownServer):
        pg_plugin.restore_target({"server": "ours", "database": "shop"},
                                 {"in_place": True}, B)
    assert pg_plugin.restore_target(dump, {"restore_name": "x"}, B) == ("shared", "x", False)
    with pytest.raises(pg.UnknownServer):
        pg_plugin._source(pg.resource("ours", "shop"), B)
