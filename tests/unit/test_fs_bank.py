"""The file-system bank's own guarantees: atomic writes, confinement under its root,
binary values kept as bytes, listing order, leases."""

from __future__ import annotations

import json
import os
import time

import pytest

from karbor.common import exception
from karbor.services.protection.bank_plugin import Bank
from karbor.services.protection.bank_plugins import file_system
from karbor.services.protection.bank_plugins.file_system import FileSystemBankPlugin


@pytest.fixture
def plugin(tmp_path):
    return FileSystemBankPlugin(root=str(tmp_path / "bank"))


def _all_files(root) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root)
                  for d, _, files in os.walk(root) for f in files)


# ------------------------------------------------------------------------ atomic writes


def test_writes_leave_no_temp_files(plugin):
    for i in range(50):
        plugin.update_object(f"/a/{i % 5}/k{i}", {"i": i})
        plugin.update_object(f"/a/{i % 5}/k{i}", b"\x00" * i)  # overwrite
    assert not [f for f in _all_files(plugin.root) if ".tmp-" in f]
    assert len(_all_files(plugin.root)) == 50


def test_failed_rename_keeps_old_value_and_removes_temp_file(plugin, monkeypatch):
    plugin.update_object("/k", "old")

    def broken_replace(src, dst):
        raise OSError("disk on fire")

    monkeypatch.setattr(file_system.os, "replace", broken_replace)
    with pytest.raises(OSError, match="disk on fire"):
        plugin.update_object("/k", "new")
    monkeypatch.undo()
    assert plugin.get_object("/k") == "old"
    assert _all_files(plugin.root) == ["k"]


def test_unserializable_value_leaves_nothing_behind(plugin):
    plugin.update_object("/k", 1)
    with pytest.raises((TypeError, ValueError, exception.BankError)):
        plugin.update_object("/k", object())
    assert plugin.get_object("/k") == 1
    assert _all_files(plugin.root) == ["k"]


def test_flush_syncs_the_bank_filesystem(plugin, monkeypatch):
    synced: list[str] = []

    class FakeLibc:
        @staticmethod
        def syncfs(fd):
            synced.append(os.readlink(f"/proc/self/fd/{fd}"))
            return 0

    plugin.update_object("/x/y", b"data")
    monkeypatch.setattr(file_system, "_libc", FakeLibc)
    plugin.flush()
    assert synced == [plugin.root]
    monkeypatch.undo()
    plugin.flush()  # the real one
    assert Bank(plugin).get_object("/x/y") == b"data"


# ---------------------------------------------------------------------- confinement


def test_dot_dot_keys_cannot_escape_the_root(plugin, tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text('"secret"')
    sibling = tmp_path / "bank" / "karbor2"  # shares the root's name as a string prefix
    sibling.mkdir()
    (sibling / "f").write_text('"sibling"')
    for key in ("/../../outside.txt", "/a/../../../outside.txt", "/../karbor2/f"):
        with pytest.raises(exception.InvalidBankKey):
            plugin.get_object(key)
        with pytest.raises(exception.InvalidBankKey):
            plugin.update_object(key, "overwritten")
        with pytest.raises(exception.InvalidBankKey):
            plugin.delete_object(key)
    with pytest.raises(exception.InvalidBankKey):
        plugin.list_objects("/../")
    assert outside.read_text() == '"secret"'
    assert (sibling / "f").read_text() == '"sibling"'
    # the Bank refuses such keys before the plugin sees them
    with pytest.raises(exception.InvalidBankKey):
        Bank(plugin).get_object("../outside.txt")


def test_symlinks_inside_the_root_cannot_lead_out(plugin, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text('"secret"')
    os.symlink(outside, os.path.join(plugin.root, "dirlink"))
    os.symlink(outside / "secret", os.path.join(plugin.root, "filelink"))
    for key in ("/dirlink/secret", "/filelink", "/dirlink/new"):
        with pytest.raises(exception.InvalidBankKey):
            plugin.get_object(key)
        with pytest.raises(exception.InvalidBankKey):
            plugin.update_object(key, "overwritten")
        with pytest.raises(exception.InvalidBankKey):
            plugin.delete_object(key)
    with pytest.raises(exception.InvalidBankKey):
        plugin.list_objects("/dirlink/")
    assert not any(k.startswith("/dirlink/") for k in plugin.list_objects("/"))
    assert sorted(os.listdir(outside)) == ["secret"]
    assert (outside / "secret").read_text() == '"secret"'


def test_a_symlink_that_stays_inside_the_root_is_followed(plugin):
    plugin.update_object("/real/k", "v")
    os.symlink(os.path.join(plugin.root, "real"), os.path.join(plugin.root, "alias"))
    assert plugin.get_object("/alias/k") == "v"


def test_delete_removes_empty_directories_but_never_the_root(plugin):
    plugin.update_object("/a/b/c/k", 1)
    plugin.update_object("/a/other", 2)
    plugin.delete_object("/a/b/c/k")
    assert not os.path.exists(os.path.join(plugin.root, "a", "b"))
    assert plugin.list_objects("/") == ["/a/other"]
    plugin.delete_object("/a/other")
    assert os.path.isdir(plugin.root) and os.listdir(plugin.root) == []
    plugin.delete_object("/a/other")  # idempotent


# -------------------------------------------------------------------------------- values


@pytest.mark.parametrize("value", [b"", b"\x00\xff", bytes(range(256)), b'{"a": 1}',
                                   file_system.BINARY_MAGIC + b"x", bytearray(b"ab")])
def test_bytes_come_back_as_bytes(plugin, value):
    plugin.update_object("/b", value)
    got = plugin.get_object("/b")
    assert type(got) is bytes and got == bytes(value)


@pytest.mark.parametrize("value", [{"a": [1, None]}, [1], "text", "", 0, 1.5, None, False])
def test_other_values_are_json(plugin, value):
    plugin.update_object("/j", value)
    assert plugin.get_object("/j") == value
    with open(os.path.join(plugin.root, "j"), "rb") as f:
        assert json.loads(f.read()) == value  # plain JSON on disk, as the original wrote


def test_reads_objects_written_as_plain_json(plugin):
    with open(os.path.join(plugin.root, "legacy"), "w") as f:
        f.write('{"version": "0.9", "id": "cp"}')
    assert plugin.get_object("/legacy") == {"version": "0.9", "id": "cp"}


def test_missing_and_directory_keys_are_not_found(plugin):
    plugin.update_object("/dir/k", 1)
    for key in ("/missing", "/dir", "/dir/k/deeper"):
        with pytest.raises(exception.BankObjectNotFound):
            plugin.get_object(key)


# ------------------------------------------------------------------------------- listing


def test_listing_is_in_key_order_whatever_the_creation_order(plugin):
    keys = ["/i/b/2", "/i/a", "/i/b/1", "/i/c", "/i/a-z", "/i/a0", "/j/x", "/i2/y"]
    for key in keys:
        plugin.update_object(key, 1)
    expected = sorted(k for k in keys if k.startswith("/i/"))
    assert plugin.list_objects("/i/") == expected
    assert plugin.list_objects("/i/", sort_dir="desc") == expected[::-1]
    assert plugin.list_objects("/i") == sorted(k for k in keys if k.startswith("/i"))
    assert plugin.list_objects("/i/a") == ["/i/a", "/i/a-z", "/i/a0"]
    assert plugin.list_objects("/i/", limit=2) == expected[:2]
    assert plugin.list_objects("/i/", marker="/i/a0") == ["/i/b/1", "/i/b/2", "/i/c"]
    assert plugin.list_objects("/i/", marker="/i/b", sort_dir="desc") == [
        "/i/a0", "/i/a-z", "/i/a"]
    assert plugin.list_objects("/i/", marker="/i/a1", limit=1) == ["/i/b/1"]
    assert plugin.list_objects("/nothing/") == []
    assert plugin.list_objects() == sorted(keys)


def test_listing_ignores_temporary_files(plugin):
    plugin.update_object("/t/k", 1)
    with open(os.path.join(plugin.root, "t", ".tmp-crashed"), "w") as f:
        f.write("half")
    os.makedirs(os.path.join(plugin.root, ".tmp-dir"))
    with open(os.path.join(plugin.root, ".tmp-dir", "x"), "w") as f:
        f.write("half")
    assert plugin.list_objects("/") == ["/t/k"]


# -------------------------------------------------------------------------------- leases


def test_leases(tmp_path):
    holder = FileSystemBankPlugin(root=str(tmp_path))
    observer = FileSystemBankPlugin(root=str(tmp_path))
    holder._lease_expire = 1
    assert not holder.check_lease_validity()
    assert not observer.is_owner_alive(holder.get_owner_id())
    holder.acquire_lease()
    assert holder.check_lease_validity()
    assert observer.is_owner_alive(holder.get_owner_id())
    assert not observer.check_lease_validity()
    time.sleep(1.1)
    assert not holder.check_lease_validity()
    assert not observer.is_owner_alive(holder.get_owner_id())
    holder.renew_lease()
    assert observer.is_owner_alive(holder.get_owner_id())
