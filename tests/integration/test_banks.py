"""The three banks against real storage: a directory, and a real Swift server in both of
its APIs (the Swift API for the Swift bank, s3api for the S3 bank; ``swift_server``).

Every bank is built from a provider-style configuration file, as ``Provider`` builds it.
Listings are checked against a pure-Python model and against the file-system bank's
answer, on 2,500 keys: several listing pages in both object-store APIs.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests
from oslo_config import cfg

from karbor.common import exception
from karbor.services.protection.bank_plugin import Bank
from karbor.services.protection.bank_plugins.file_system import FileSystemBankPlugin
from karbor.services.protection.bank_plugins.s3 import S3BankPlugin
from karbor.services.protection.bank_plugins.swift import SwiftBankPlugin
from tests.functional._server import karbor_server

KINDS = ["fs", "s3", "swift"]


def _unique(prefix: str = "kb") -> str:
    """A bucket/container name: DNS-compliant for S3."""
    return f"{prefix}-{uuid.uuid4().hex[:16]}"


def _render(sections: dict[str, dict[str, object]]) -> str:
    return "".join(f"[{name}]\n" + "".join(f"{k} = {v}\n" for k, v in values.items()) + "\n"
                   for name, values in sections.items())


def _load_config(directory: Path, sections: dict[str, dict[str, object]]) -> cfg.ConfigOpts:
    path = directory / f"bank-{uuid.uuid4().hex[:8]}.conf"
    path.write_text(_render(sections))
    conf = cfg.ConfigOpts()
    conf(args=[], default_config_files=[str(path)])
    return conf


def s3_sections(server, bucket: str, lease_bucket: str, **bank) -> dict:
    return {"s3_client": {"s3_endpoint": server.endpoint, "s3_access_key": server.access_key,
                          "s3_secret_key": server.secret_key, "s3_region": server.region,
                          "s3_retry_attempts": 2, "s3_connect_timeout": 5},
            "s3_bank_plugin": {"bank_s3_object_bucket": bucket,
                               "bank_s3_lease_bucket": lease_bucket, **bank}}


def swift_sections(server, container: str, lease_container: str, **bank) -> dict:
    return {"swift_client": {"swift_auth_url": server.auth_url, "swift_auth_version": 1,
                             "swift_user": server.user, "swift_key": server.key,
                             "swift_retry_attempts": 1, "swift_retry_backoff": 0.2},
            "swift_bank_plugin": {"bank_swift_object_container": container,
                                  "bank_swift_lease_container": lease_container, **bank}}


class BankMaker:
    """Makes banks of one kind; banks made with the same ``name`` share their storage."""

    def __init__(self, kind: str, directory: Path, server=None):
        self.kind = kind
        self.directory = directory
        self.server = server
        self.made: list = []

    def __call__(self, name: str | None = None, lease_name: str | None = None, **bank):
        name = name or _unique()
        lease_name = lease_name or f"{name}-lease"
        if self.kind == "fs":
            sections = {"file_system_bank_plugin": {
                "file_system_bank_path": self.directory / "fs", "bank_object_container": name,
                **{k: v for k, v in bank.items() if k == "lease_expire_window"}}}
            plugin = FileSystemBankPlugin(_load_config(self.directory, sections))
        elif self.kind == "s3":
            plugin = S3BankPlugin(_load_config(
                self.directory, s3_sections(self.server, name, lease_name, **bank)))
        else:
            plugin = SwiftBankPlugin(_load_config(
                self.directory, swift_sections(self.server, name, lease_name, **bank)))
        self.made.append(plugin)
        return plugin

    def close(self) -> None:
        for plugin in self.made:
            close = getattr(plugin, "close", None)
            if close is not None:
                close()


@pytest.fixture(params=KINDS)
def make_bank(request, tmp_path) -> Iterator[BankMaker]:
    server = request.getfixturevalue("swift_server") if request.param != "fs" else None
    maker = BankMaker(request.param, tmp_path, server)
    yield maker
    maker.close()


@pytest.fixture
def plugin(make_bank):
    return make_bank()


# ------------------------------------------------------------------------------- values


JSON_VALUES = [
    {"id": "cp", "nested": {"list": [1, 2.5, None, True, False], "text": "ünïcødé ✓"}},
    [1, "two", {"three": 3}],
    "a plain string",
    "",
    0,
    -12345678901234,
    3.25,
    None,
    True,
    {"bytes-looking": "\\x00\\xff"},
]


@pytest.mark.parametrize("value", JSON_VALUES, ids=range(len(JSON_VALUES)))
def test_json_values_round_trip(plugin, value):
    plugin.update_object("/values/json", value)
    got = plugin.get_object("/values/json")
    assert got == value
    assert type(got) is type(value)


def test_bytes_round_trip_as_bytes(plugin):
    random_mib = os.urandom(1 << 20)
    values = {"/b/binary": b"\x00\xff", "/b/empty": b"", "/b/mib": random_mib,
              "/b/json-lookalike": b'{"a": 1}', "/b/bytearray": bytearray(b"\x01\x02"),
              "/b/not-utf8": bytes(range(256))}
    for key, value in values.items():
        plugin.update_object(key, value)
    for key, value in values.items():
        got = plugin.get_object(key)
        assert type(got) is bytes, key
        assert got == bytes(value), key


def test_overwrite_changes_value_and_kind(plugin):
    plugin.update_object("/o/k", b"\x00raw")
    plugin.update_object("/o/k", {"now": "json"})
    assert plugin.get_object("/o/k") == {"now": "json"}
    plugin.update_object("/o/k", b"\x00raw again")
    assert plugin.get_object("/o/k") == b"\x00raw again"


def test_missing_key_is_bank_object_not_found(plugin):
    with pytest.raises(exception.BankObjectNotFound) as info:
        plugin.get_object("/no/such/key")
    assert "/no/such/key" in str(info.value)
    assert isinstance(info.value, exception.BankError)
    # a "directory" of existing keys is not an object either
    plugin.update_object("/dir/child", 1)
    with pytest.raises(exception.BankObjectNotFound):
        plugin.get_object("/dir")


def test_delete_is_idempotent(plugin):
    plugin.update_object("/d/a", 1)
    plugin.update_object("/d/b", 2)
    plugin.delete_object("/d/a")
    plugin.delete_object("/d/a")
    plugin.delete_object("/d/never-existed")
    with pytest.raises(exception.BankObjectNotFound):
        plugin.get_object("/d/a")
    assert plugin.get_object("/d/b") == 2
    assert plugin.list_objects("/d/") == ["/d/b"]


def test_keys_with_every_allowed_character(plugin):
    bank = Bank(plugin)
    key = "/indices/by-plan/p_1/x.y/2024-01-02/1700000000@a-b_c.d#e:f"
    bank.update_object(key, "v")
    assert bank.get_object(key) == "v"
    assert bank.list_objects("/indices/by-plan/p_1/") == [key]
    bank.delete_object(key)
    assert bank.list_objects("/indices/") == []


@pytest.mark.parametrize("key", ["../escape", "/a/../b", "/a/./b", "/a/..", "..", "/a/",
                                 "", "/a b", "/a\nb", "/ü", "/a?b", "/a%2e%2e"])
def test_bank_rejects_invalid_keys(plugin, key):
    bank = Bank(plugin)
    with pytest.raises(exception.InvalidBankKey):
        bank.update_object(key, 1)
    with pytest.raises(exception.InvalidBankKey):
        bank.get_object(key)
    with pytest.raises(exception.InvalidBankKey):
        bank.delete_object(key)


def test_bank_normalizes_relative_keys(plugin):
    bank = Bank(plugin)
    bank.update_object("rel/key", {"v": 1})
    assert bank.get_object("/rel/key") == {"v": 1}
    assert plugin.list_objects("/rel/") == ["/rel/key"]


def test_object_store_banks_read_each_others_objects(swift_server, tmp_path):
    """The S3 bucket and the Swift container of one name are the same storage in Swift:
    each bank reads what the other wrote, with the same value kinds and key layout."""
    name = _unique()
    s3 = BankMaker("s3", tmp_path, swift_server)(name)
    swift = BankMaker("swift", tmp_path, swift_server)(name)
    s3.update_object("/x/from-s3", {"json": [1]})
    s3.update_object("/x/from-s3.bin", b"\x00\xff")
    swift.update_object("/x/from-swift", "text")
    swift.update_object("/x/from-swift.bin", b"\xfe")
    for bank in (s3, swift):
        assert bank.get_object("/x/from-s3") == {"json": [1]}
        assert bank.get_object("/x/from-s3.bin") == b"\x00\xff"
        assert bank.get_object("/x/from-swift") == "text"
        assert bank.get_object("/x/from-swift.bin") == b"\xfe"
        assert bank.list_objects("/x/") == sorted(["/x/from-s3", "/x/from-s3.bin",
                                                   "/x/from-swift", "/x/from-swift.bin"])


@pytest.mark.parametrize("kind", ["s3", "swift"])
def test_copy_bank_reads_every_option_from_its_own_section(swift_server, tmp_path, kind):
    """``Provider.bank_for("copy")`` builds ``cls(config, group="copy_bank")``."""
    name = _unique()
    sections = (s3_sections(swift_server, name, f"{name}-lease") if kind == "s3"
                else swift_sections(swift_server, name, f"{name}-lease"))
    merged = {k: v for section in sections.values() for k, v in section.items()}
    conf = _load_config(tmp_path, {"copy_bank": merged})
    cls = S3BankPlugin if kind == "s3" else SwiftBankPlugin
    copy = cls(conf, group="copy_bank")
    copy.update_object("/copied", {"ok": True})
    primary = BankMaker(kind, tmp_path, swift_server)(name)
    assert primary.get_object("/copied") == {"ok": True}
    assert primary.list_objects("/") == ["/copied"]


def test_object_store_errors_are_bank_errors(swift_server, tmp_path):
    bad_s3 = s3_sections(swift_server, _unique(), _unique())
    bad_s3["s3_client"]["s3_secret_key"] = "wrong"
    with pytest.raises(exception.BankError, match="S3"):
        S3BankPlugin(_load_config(tmp_path, bad_s3))
    bad_swift = swift_sections(swift_server, _unique(), _unique())
    bad_swift["swift_client"]["swift_key"] = "wrong"
    with pytest.raises(exception.BankError, match="Swift"):
        SwiftBankPlugin(_load_config(tmp_path, bad_swift))
    from tests.integration.swift_server import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    unreachable = s3_sections(swift_server, _unique(), _unique())
    unreachable["s3_client"].update(s3_endpoint=closed, s3_retry_attempts=1)
    start = time.monotonic()
    with pytest.raises(exception.BankError, match="S3"):
        S3BankPlugin(_load_config(tmp_path, unreachable))
    unreachable = swift_sections(swift_server, _unique(), _unique())
    unreachable["swift_client"].update(swift_auth_url=closed + "/auth/v1.0",
                                       swift_retry_attempts=0)
    with pytest.raises(exception.BankError, match="Swift"):
        SwiftBankPlugin(_load_config(tmp_path, unreachable))
    assert time.monotonic() - start < 30


# ------------------------------------------------------------------------------ listing


def _listing_keys() -> list[str]:
    keys = [f"/list/ts/{1700000000 + 37 * i}@{i:04x}" for i in range(2300)]
    keys += [f"/list/nested/{i % 10}/{i:04d}" for i in range(200)]
    return keys


LIST_KEYS = _listing_keys()
OUTSIDE_KEYS = ["/lisa/x", "/list-not/y", "/lisz/z", "/other/w"]
ALL_KEYS = sorted(LIST_KEYS + OUTSIDE_KEYS)
assert len(LIST_KEYS) == 2500


def model(prefix, limit=None, marker=None, sort_dir=None) -> list[str]:
    prefix = prefix or "/"
    reverse = sort_dir == "desc"
    keys = sorted((k for k in ALL_KEYS if k.startswith(prefix)), reverse=reverse)
    if marker:
        keys = [k for k in keys if (k < marker if reverse else k > marker)]
    return keys if limit is None else keys[:limit]


_sorted = sorted(LIST_KEYS)
FIRST, MID, LAST = _sorted[0], _sorted[1234], _sorted[-1]
BETWEEN = "/list/ts/1700045000"  # no such key, between two
assert BETWEEN not in LIST_KEYS and FIRST < BETWEEN < _sorted[-201]

LIST_CASES = [
    ("/list/", None, None, None), ("/list/", None, None, "desc"),
    ("/list/ts/", None, None, "asc"), ("/list/ts/", None, None, "desc"),
    ("/list", None, None, "asc"), ("/list", None, None, "desc"),
    ("/list/ts/17000", None, None, "asc"), ("/list/nested/3/", None, None, "desc"),
    ("/nothing/", None, None, "asc"), ("/nothing/", 5, "/a", "desc"),
    ("/", None, None, "asc"), ("/", 7, None, "desc"), (None, 3, None, "asc"),
    *[("/list/", limit, None, d) for limit in (0, 1, 999, 1000, 1001, 2400, 5000)
      for d in ("asc", "desc")],
    *[("/list/", limit, marker, d)
      for marker in (FIRST, MID, BETWEEN, LAST, "/list/", "/list/zzz", "/a")
      for limit in (None, 10) for d in ("asc", "desc")],
    ("/list/ts/", 1500, MID, "desc"), ("/list/ts/", 1500, MID, "asc"),
    ("/list/nested/", 5, "/list/nested/5", "asc"), ("/list/nested/", 5, "/list/nested/5", "desc"),
]


@pytest.fixture(scope="module")
def listing_banks(tmp_path_factory, request) -> dict:
    """Banks holding the listing keys: built once per module, on first use of each kind.

    The S3 bank lists the container the Swift bank filled (the same storage in Swift):
    writing 2,500 objects once instead of twice."""
    directory = tmp_path_factory.mktemp("listing")
    banks: dict = {}

    def get(kind: str):
        if kind in banks:
            return banks[kind]
        if kind == "fs":
            bank = BankMaker("fs", directory)()
            for i, key in enumerate(ALL_KEYS):
                bank.update_object(key, i)
        else:
            server = request.getfixturevalue("swift_server")
            if "container" not in banks:
                banks["container"] = _unique("listing")
                writer = BankMaker("swift", directory, server)(banks["container"])
                with ThreadPoolExecutor(8) as pool:
                    list(pool.map(lambda item: writer.update_object(item[1], item[0]),
                                  enumerate(ALL_KEYS)))
            bank = BankMaker(kind, directory, server)(banks["container"])
        banks[kind] = bank
        return bank

    return get


@pytest.mark.parametrize("kind", KINDS)
def test_listing_matches_model_and_fs_bank(listing_banks, kind):
    bank, fs = listing_banks(kind), listing_banks("fs")
    for prefix, limit, marker, sort_dir in LIST_CASES:
        expected = model(prefix, limit, marker, sort_dir)
        got = bank.list_objects(prefix, limit=limit, marker=marker, sort_dir=sort_dir)
        case = (prefix, limit, marker, sort_dir)
        assert got == expected, case
        assert got == fs.list_objects(prefix, limit=limit, marker=marker,
                                      sort_dir=sort_dir), case


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("sort_dir", ["asc", "desc"])
def test_listing_pages_chain_with_markers(listing_banks, kind, sort_dir):
    """What the API does for newest-first pages: limit + the last key as the next marker."""
    bank = listing_banks(kind)
    seen: list[str] = []
    marker = None
    while True:
        page = bank.list_objects("/list/ts/", limit=700, marker=marker, sort_dir=sort_dir)
        if not page:
            break
        assert len(page) <= 700
        seen += page
        marker = page[-1]
    assert seen == model("/list/ts/", sort_dir=sort_dir)
    assert len(seen) == 2300


def test_section_listing_on_listing_keys(listing_banks):
    for kind in KINDS:
        section = Bank(listing_banks(kind)).get_sub_section("/list/nested", is_writable=False)
        assert section.list_objects("3/", sort_dir="desc", limit=3) == [
            "3/0193", "3/0183", "3/0173"], kind
        assert section.list_objects(marker="9/0189", limit=2) == ["9/0199"], kind


# ------------------------------------------------------------------------------- leases


def test_lease_acquire_renew_expire(make_bank):
    name = _unique()
    # renewal far away: only explicit renewals happen during the test
    windows = {"lease_expire_window": 2, "lease_renew_window": 3600,
               "lease_validity_window": 0}
    holder = make_bank(name, **windows)
    observer = make_bank(name, **windows)
    owner = holder.get_owner_id()
    assert owner != observer.get_owner_id()
    assert holder.check_lease_validity() is False
    assert observer.is_owner_alive(owner) is False

    holder.acquire_lease()
    assert holder.check_lease_validity() is True
    assert observer.is_owner_alive(owner) is True
    assert observer.check_lease_validity() is False  # its own lease was never taken
    assert observer.is_owner_alive(str(uuid.uuid4())) is False

    time.sleep(1.2)
    holder.renew_lease()  # pushes the expiry 2 s on from now
    time.sleep(1.2)
    assert holder.check_lease_validity() is True
    assert observer.is_owner_alive(owner) is True

    time.sleep(1.3)
    assert holder.check_lease_validity() is False
    assert observer.is_owner_alive(owner) is False
    if make_bank.kind == "swift":  # X-Delete-At: Swift itself drops a lapsed lease
        import swiftclient

        conn = swiftclient.Connection(authurl=make_bank.server.auth_url,
                                      user=make_bank.server.user, key=make_bank.server.key)
        deadline = time.monotonic() + 3  # X-Delete-At is the expiry rounded up
        while True:
            try:
                conn.head_object(f"{name}-lease", owner)
            except swiftclient.ClientException as exc:
                assert exc.http_status == 404
                break
            assert time.monotonic() < deadline, "Swift kept the lapsed lease"
            time.sleep(0.1)

    holder.renew_lease()
    assert observer.is_owner_alive(owner) is True


@pytest.mark.parametrize("kind", ["s3", "swift"])
def test_lease_is_renewed_in_the_background_until_close(swift_server, tmp_path, kind):
    maker = BankMaker(kind, tmp_path, swift_server)
    name = _unique()
    holder = maker(name, lease_expire_window=2, lease_renew_window=1, lease_validity_window=1)
    observer = maker(name, lease_expire_window=2)
    try:
        holder.acquire_lease()
        deadline = time.monotonic() + 2.6
        while time.monotonic() < deadline:  # past the first expiry
            assert observer.is_owner_alive(holder.get_owner_id())
            time.sleep(0.25)
        holder.close()
        time.sleep(2.2)
        assert not observer.is_owner_alive(holder.get_owner_id())
        assert not holder.check_lease_validity()
        # the validity window: a lease with less than it left is no longer "valid"
        holder.renew_lease()
        assert holder.check_lease_validity()
        time.sleep(1.1)
        assert not holder.check_lease_validity()
        assert observer.is_owner_alive(holder.get_owner_id())
        holder.close(release_lease=True)
        assert not observer.is_owner_alive(holder.get_owner_id())
    finally:
        maker.close()


# ------------------------------------------------------------------------ Bank sections


def test_bank_section_confinement_and_read_only(plugin):
    bank = Bank(plugin)
    section = bank.get_sub_section("/checkpoints/cp1")
    section.update_object("resource-data/r1/status", "available")
    section.update_object("index.json", {"id": "cp1"})
    bank.update_object("/checkpoints/cp10/index.json", {"id": "cp10"})  # a sibling prefix
    bank.update_object("/checkpoints/cp0", "not under cp1")

    assert bank.get_object("/checkpoints/cp1/resource-data/r1/status") == "available"
    assert section.get_object("/index.json") == {"id": "cp1"}
    assert section.list_objects() == ["index.json", "resource-data/r1/status"]
    assert section.list_objects(sort_dir="desc") == ["resource-data/r1/status", "index.json"]
    assert section.list_objects("resource-data/") == ["resource-data/r1/status"]
    assert section.list_objects(limit=1, marker="index.json") == ["resource-data/r1/status"]
    with pytest.raises(exception.BankObjectNotFound):
        section.get_object("missing")
    for escape in ("../cp10/index.json", "/../cp10/index.json", "a/../../cp10/index.json"):
        with pytest.raises(exception.InvalidBankKey):
            section.get_object(escape)
        with pytest.raises(exception.InvalidBankKey):
            section.update_object(escape, "x")
    assert bank.get_object("/checkpoints/cp10/index.json") == {"id": "cp10"}

    nested = section.get_sub_section("resource-data/r1")
    assert nested.list_objects() == ["status"]
    nested.update_object("metadata", {"k": "v"})
    assert bank.get_object("/checkpoints/cp1/resource-data/r1/metadata") == {"k": "v"}

    read_only = bank.get_sub_section("/checkpoints/cp1", is_writable=False)
    assert read_only.get_object("index.json") == {"id": "cp1"}
    assert not read_only.is_writable
    with pytest.raises(exception.BankError, match="read-only"):
        read_only.update_object("index.json", {})
    with pytest.raises(exception.BankError, match="read-only"):
        read_only.delete_object("index.json")
    child = read_only.get_sub_section("resource-data", is_writable=True)
    assert not child.is_writable  # a read-only section's children stay read-only
    with pytest.raises(exception.BankError, match="read-only"):
        child.update_object("r1/status", "x")
    assert bank.get_object("/checkpoints/cp1/index.json") == {"id": "cp1"}

    section.delete_object("index.json")
    section.delete_object("index.json")
    assert section.list_objects() == ["resource-data/r1/metadata", "resource-data/r1/status"]


# ------------------------------------------------------------- a karbor-server on each bank


PROVIDER_ID = "2f1b0c4e-7d3a-4b5e-9f60-1a2b3c4d5e6f"


class _StoreView:
    """Direct access to what a bank wrote, bypassing Karbor: boto3 or swiftclient."""

    def __init__(self, kind: str, server, name: str, lease_name: str):
        self.kind, self.name, self.lease_name = kind, name, lease_name
        if kind == "s3":
            import boto3
            from botocore.config import Config

            self.client = boto3.session.Session().client(
                "s3", endpoint_url=server.endpoint, aws_access_key_id=server.access_key,
                aws_secret_access_key=server.secret_key, region_name=server.region,
                config=Config(s3={"addressing_style": "path"},
                              request_checksum_calculation="when_required",
                              response_checksum_validation="when_required"))
        else:
            import swiftclient

            self.client = swiftclient.Connection(authurl=server.auth_url, user=server.user,
                                                 key=server.key)

    def keys(self, prefix: str, container: str | None = None) -> list[str]:
        container = container or self.name
        if self.kind == "s3":
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=container,
                                                                          Prefix=prefix)
            return [item["Key"] for page in pages for item in page.get("Contents", [])]
        _, listing = self.client.get_container(container, prefix=prefix, full_listing=True)
        return [item["name"] for item in listing]

    def read(self, key: str, container: str | None = None) -> tuple[dict, bytes]:
        """(metadata, body) of an object."""
        container = container or self.name
        if self.kind == "s3":
            resp = self.client.get_object(Bucket=container, Key=key)
            return resp["Metadata"], resp["Body"].read()
        headers, body = self.client.get_object(container, key)
        return ({k[len("x-object-meta-"):]: v for k, v in headers.items()
                 if k.startswith("x-object-meta-")}, body)


def _wait_status(url: str, headers: dict, want: set[str], timeout: float = 60) -> dict:
    deadline = time.monotonic() + timeout
    record: dict = {}
    while time.monotonic() < deadline:
        resp = requests.get(url, headers=headers, timeout=10)
        if resp.status_code == 404 and "deleted" in want:
            return {"status": "deleted"}
        record = next(iter(resp.json().values()))
        if record.get("status") in want:
            return record
        time.sleep(0.1)
    raise AssertionError(f"status never reached {want}: {record}")


@pytest.mark.parametrize("kind", ["s3", "swift"])
def test_checkpoint_protect_restore_delete_on_object_store_bank(swift_server, tmp_path, kind):
    name, lease_name = _unique(), _unique()
    providers = tmp_path / "providers.d"
    providers.mkdir()
    sections = (s3_sections(swift_server, name, lease_name) if kind == "s3"
                else swift_sections(swift_server, name, lease_name))
    (providers / f"{kind}.conf").write_text(_render({
        "provider": {"name": f"No-Op on {kind}", "id": PROVIDER_ID,
                     "plugin": "karbor-noop-protection-plugin",
                     "bank": f"karbor-{kind}-bank-plugin", "enabled": "True"},
        **sections}))
    store = _StoreView(kind, swift_server, name, lease_name)
    project = uuid.uuid4().hex
    headers = {"X-Auth-Token": f"demo:{project}"}

    with karbor_server({"DEFAULT": {"provider_config_dir": providers}}) as srv:
        base = f"{srv.url}/v1/{project}"
        providers_seen = requests.get(f"{base}/providers", headers=headers, timeout=10).json()
        assert PROVIDER_ID in [p["id"] for p in providers_seen["providers"]], srv.log()
        plan = requests.post(f"{base}/plans", headers=headers, timeout=10, json={"plan": {
            "name": f"{kind} plan", "provider_id": PROVIDER_ID,
            "resources": [{"id": project, "type": "OS::Keystone::Project",
                           "name": "project"}]}}).json()["plan"]
        resp = requests.post(f"{base}/providers/{PROVIDER_ID}/checkpoints", headers=headers,
                             timeout=10, json={"checkpoint": {"plan_id": plan["id"]}})
        assert resp.status_code in (200, 202), resp.text
        cp = resp.json()["checkpoint"]
        cp_url = f"{base}/providers/{PROVIDER_ID}/checkpoints/{cp['id']}"
        record = _wait_status(cp_url, headers, {"available", "error"})
        assert record["status"] == "available", (record, srv.log())

        # The checkpoint is really in the bucket/container, in the original's layout.
        metadata, body = store.read(f"/checkpoints/{cp['id']}/index.json")
        assert metadata.get("serialized") == "True"
        index = json.loads(body)
        assert index["id"] == cp["id"] and index["status"] == "available"
        assert index["provider_id"] == PROVIDER_ID and index["project_id"] == project
        assert index["protection_plan"]["id"] == plan["id"]
        status_key = f"/checkpoints/{cp['id']}/resource-data/{project}/status"
        assert status_key in store.keys(f"/checkpoints/{cp['id']}/")
        day = dt.datetime.fromtimestamp(index["timestamp"], dt.UTC).strftime("%Y-%m-%d")
        stamp = f"{index['timestamp']}@{cp['id']}"
        indices = {f"/indices/by-plan/{plan['id']}/{project}/{day}/{stamp}",
                   f"/indices/by-provider/{PROVIDER_ID}/{project}/{stamp}",
                   f"/indices/by-date/{day}/{project}/{stamp}"}
        assert set(store.keys("/indices/")) == indices
        assert store.keys(f"/indices/by-plan/{plan['id']}/") == [
            f"/indices/by-plan/{plan['id']}/{project}/{day}/{stamp}"]
        # the writer's lease is there, named by the owner id recorded in the checkpoint
        assert index["owner_id"] in store.keys("", container=lease_name)

        listed = requests.get(f"{base}/providers/{PROVIDER_ID}/checkpoints", headers=headers,
                              timeout=10).json()["checkpoints"]
        assert [c["id"] for c in listed] == [cp["id"]]

        restore = requests.post(f"{base}/restores", headers=headers, timeout=10, json={
            "restore": {"provider_id": PROVIDER_ID, "checkpoint_id": cp["id"],
                        "parameters": {}}}).json()["restore"]
        done = _wait_status(f"{base}/restores/{restore['id']}", headers, {"success", "fail"})
        assert done["status"] == "success", (done, srv.log())

        resp = requests.delete(cp_url, headers=headers, timeout=10)
        assert resp.status_code in (200, 202, 204), resp.text
        _wait_status(cp_url, headers, {"deleted", "error-deleting"})
        deadline = time.monotonic() + 30
        while store.keys("/indices/") and time.monotonic() < deadline:
            time.sleep(0.1)
        assert store.keys("/indices/") == []
        # index.json is gone, or (like the original) kept with the status "deleted"
        if f"/checkpoints/{cp['id']}/index.json" in store.keys("/checkpoints/"):
            _, body = store.read(f"/checkpoints/{cp['id']}/index.json")
            assert json.loads(body)["status"] == "deleted"
