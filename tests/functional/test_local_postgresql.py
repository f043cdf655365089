"""The Local Provider protects PostgreSQL databases through the chunk store: pg_dump streams
into the bank, pg_restore streams out of it. A real PostgreSQL server (the ``postgresql``
fixture), a real karbor-server over HTTP and the unmodified python-karborclient CLI.

Protect, drop the database, restore it into a new name and in place and compare every row;
the protectable lists the live databases; a restore into an existing name is refused and
drops nothing; a failing pg_dump fails the checkpoint with pg_dump's reason and stores no
manifest; an unreachable server is a clear 503; a flipped byte in a pack fails verify.
"""

from __future__ import annotations

import decimal
import json
import os
import random
import subprocess
import time
import uuid
from pathlib import Path

import psycopg2
import pytest
import requests

from tests.functional._cli import as_python, error, props, rows
from tests.functional._server import (
    free_port,
    karbor_server,
    local_providers,
)

LOCAL_PROVIDER = "7f3c2a1e-5b4d-4c6e-9a8f-0d1e2f3a4b5c"
TYPE = "Karbor::PostgreSQL::Database"
NAMESPACE = uuid.UUID("0c5b6f1e-8d2a-5e47-b3c9-71a4e2d8f6a0")
ROWS = 3000


def db_id(server: str, database: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{server}/{database}"))


# --------------------------------------------------------------------------- PostgreSQL


def pg(server, database: str = "postgres", user: str = "postgres"):
    conn = psycopg2.connect(host="127.0.0.1", port=server.port, user=user, dbname=database)
    conn.autocommit = True
    return conn


def sql(server, statement: str, args=None, database: str = "postgres"):
    conn = pg(server, database)
    try:
        with conn.cursor() as cur:
            cur.execute(statement, args)
            return cur.fetchall() if cur.description else None
    finally:
        conn.close()


def databases(server) -> set[str]:
    return {r[0] for r in sql(server, "SELECT datname FROM pg_database "
                                      "WHERE NOT datistemplate")}


def make_database(server, name: str) -> None:
    sql(server, f'CREATE DATABASE "{name}"')
    rnd = random.Random(7)
    conn = pg(server, name)
    try:
        with conn.cursor() as cur:
            cur.execute("""
                CREATE SEQUENCE order_no START 1000 INCREMENT 7;
                CREATE TABLE items (
                    id serial PRIMARY KEY,
                    name text NOT NULL,
                    price numeric(14, 4),
                    ratio double precision,
                    payload bytea,
                    created timestamptz,
                    tags text[],
                    doc jsonb,
                    flag boolean);
                CREATE INDEX items_name ON items (name);
                CREATE UNIQUE INDEX items_doc_key ON items ((doc->>'key'));
                CREATE TABLE orders (
                    no integer PRIMARY KEY DEFAULT nextval('order_no'),
                    item integer REFERENCES items (id),
                    note text);
                CREATE VIEW expensive AS SELECT id, name FROM items WHERE price > 500;
                COMMENT ON TABLE items IS 'ünïcødé comment ☃';
            """)
            words = ["Grüße", "naïve café", "日本語テキスト", "emoji 🐘✓", "plain", "Ωμέγα",
                     "tab\tand\nnewline", "quote ' \" \\ backslash"]
            for i in range(ROWS):
                cur.execute(
                    "INSERT INTO items (name, price, ratio, payload, created, tags, doc, flag)"
                    " VALUES (%s, %s, %s, %s, now() - %s * interval '1 minute', %s, %s, %s)",
                    (f"{rnd.choice(words)} #{i}",
                     decimal.Decimal(rnd.randrange(0, 10**8)) / 10000,
                     rnd.random() * 1e6 if i % 11 else None,
                     bytes(rnd.randrange(256) for _ in range(rnd.randrange(0, 300)))
                     + bytes([0, 255, 0]),
                     i, [rnd.choice(words), str(i)],
                     json.dumps({"key": f"k{i}", "n": i, "s": rnd.choice(words)}),
                     i % 3 == 0))
            for _ in range(500):
                cur.execute("INSERT INTO orders (item, note) VALUES (%s, %s)",
                            (rnd.randrange(1, ROWS + 1), rnd.choice(words)))
    finally:
        conn.close()


def snapshot(server, database: str) -> dict:
    """Everything a restore must reproduce: rows, sequences, indexes, views, comments."""
    conn = pg(server, database)
    out = {}
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT * FROM items ORDER BY id")
            out["items"] = [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row)
                            for row in cur.fetchall()]
            cur.execute("SELECT * FROM orders ORDER BY no")
            out["orders"] = cur.fetchall()
            cur.execute("SELECT last_value, is_called FROM order_no")
            out["order_no"] = cur.fetchone()
            cur.execute("SELECT last_value FROM items_id_seq")
            out["items_id_seq"] = cur.fetchone()
            cur.execute("SELECT indexname, indexdef FROM pg_indexes "
                        "WHERE schemaname = 'public' ORDER BY indexname")
            out["indexes"] = cur.fetchall()
            cur.execute("SELECT pg_get_viewdef('expensive'::regclass)")
            out["view"] = cur.fetchone()
            cur.execute("SELECT obj_description('items'::regclass)")
            out["comment"] = cur.fetchone()
    finally:
        conn.close()
    assert len(out["items"]) == ROWS
    return out


# --------------------------------------------------------------------------- Karbor


class Client:
    def __init__(self, url: str, project: str, karborclient: str):
        self.url = url
        self.project = project
        self.base = f"{url}/v1/{project}"
        self.headers = {"X-Auth-Token": f"demo:{project}"}
        self.client = karborclient

    def call(self, method: str, path: str, body=None, status: int = 200) -> dict:
        resp = requests.request(method, f"{self.base}/{path}", json=body,
                                headers=self.headers, timeout=60)
        assert resp.status_code == status, resp.text
        return resp.json() if resp.content else {}

    def cli(self, *args: str) -> tuple[int, str, str]:
        cmd = [self.client, "--os-no-client-auth", "--karbor-url", self.base,
               "--os-auth-token", f"demo:{self.project}", *args]
        env = {k: v for k, v in os.environ.items() if not k.startswith(("OS_", "KARBOR_"))}
        env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, env=env)
        return proc.returncode, proc.stdout, proc.stderr

    def ok(self, *args: str) -> str:
        rc, out, err = self.cli(*args)
        assert rc == 0, f"karbor {' '.join(args)} failed ({rc}):\n{out}\n{err}"
        return out

    def wait(self, path: str, done: set[str], timeout: float = 180) -> dict:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            record = next(iter(self.call("GET", path).values()))
            if record["status"] in done:
                return record
            time.sleep(0.2)
        raise AssertionError(f"{path} never reached {done}")

    def plan(self, server: str, database: str) -> str:
        return self.call("POST", "plans", {"plan": {
            "name": f"pg {database}", "provider_id": LOCAL_PROVIDER,
            "resources": [{"id": db_id(server, database), "type": TYPE,
                           "name": f"{server}/{database}",
                           "extra_info": {"server": server, "database": database}}]}}
        )["plan"]["id"]

    def protect(self, plan_id: str) -> dict:
        cp_id = self.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints",
                          {"checkpoint": {"plan_id": plan_id}})["checkpoint"]["id"]
        return self.wait(f"providers/{LOCAL_PROVIDER}/checkpoints/{cp_id}",
                         {"available", "error"})

    def error_info(self, cp_id: str) -> str:
        logs = self.call("GET", f"operation_logs?checkpoint_id={cp_id}")["operation_logs"]
        return " ".join(str(log.get("error_info")) for log in logs)

    def restore(self, cp_id: str, params: dict) -> dict:
        """restore-create through the CLI; wait for its end over HTTP."""
        out = self.ok("restore-create", LOCAL_PROVIDER, cp_id, "--parameters-json",
                      json.dumps({TYPE: params}))
        restore_id = props(out)["id"]
        return self.wait(f"restores/{restore_id}", {"success", "fail"})

    def verify(self, cp_id: str) -> dict:
        out = self.ok("verification-create", LOCAL_PROVIDER, cp_id)
        return self.wait(f"verifications/{props(out)['id']}", {"success", "fail"})


@pytest.fixture
def pg_env(tmp_path, postgresql_server, karborclient):
    providers = local_providers(tmp_path)
    return tmp_path, providers


def _manifests(bank: Path) -> list[Path]:
    root = bank / "karbor" / "chunks" / "manifests"
    return [f for f in root.rglob("*") if f.is_file()] if root.exists() else []


def _config(providers: Path, servers: dict[str, str]) -> dict:
    return {"DEFAULT": {"provider_config_dir": providers},
            "postgresql": {"servers": ",".join(f"{k}:{v}" for k, v in servers.items())}}


def test_protect_drop_restore_new_name_and_in_place(pg_env, postgresql_server, karborclient):
    tmp, providers = pg_env
    server = postgresql_server
    suffix = uuid.uuid4().hex[:8]
    shop = f"shop_{suffix}"
    make_database(server, shop)
    expected = snapshot(server, shop)
    url = f"postgresql://postgres@127.0.0.1:{server.port}"
    with karbor_server(_config(providers, {"main": url})) as srv:
        api = Client(srv.url, uuid.uuid4().hex, karborclient)
        provider = api.call("GET", f"providers/{LOCAL_PROVIDER}")["provider"]
        schema = provider["extended_info_schema"]["restore_schema"][TYPE]
        assert set(schema["properties"]) == {"restore_name", "restore_server", "in_place"}

        # The protectable lists the server's databases live (templates excluded) ...
        listed = api.call("GET", f"protectables/{TYPE}/instances")["instances"]
        names = {r["name"] for r in listed}
        assert {f"main/{shop}", "main/postgres"} <= names
        assert names == {f"main/{d}" for d in databases(server)}
        assert not any("template" in n for n in names)
        by_name = {r["name"]: r for r in listed}
        assert by_name[f"main/{shop}"]["id"] == db_id("main", shop)
        assert by_name[f"main/{shop}"]["extra_info"] == {"server": "main", "database": shop}
        ids = {r["Id"] for r in rows(api.ok("protectable-list-instances", TYPE))}
        assert ids == {r["id"] for r in listed}
        # ... so a database created after the start shows up.
        late = f"late_{suffix}"
        sql(server, f'CREATE DATABASE "{late}"')
        ids = {r["Id"] for r in rows(api.ok("protectable-list-instances", TYPE))}
        assert db_id("main", late) in ids
        shown = props(api.ok("protectable-show-instance", TYPE, db_id("main", shop)))
        assert shown["name"] == f"main/{shop}"
        extra = as_python(shown["extra_info"])
        assert extra["server"] == "main" and extra["database"] == shop
        assert extra["status"] == "available" and extra["size"] > 100_000
        rc, out, err = api.cli("protectable-show-instance", TYPE, str(uuid.uuid4()))
        assert rc != 0 and error(out + err)[1] == 404

        plan_id = api.plan("main", shop)
        cp = api.protect(plan_id)
        assert cp["status"] == "available", (cp, srv.log()[-3000:])
        cp_id = cp["id"]
        assert _manifests(tmp / "bank")
        dump = json.loads(next((tmp / "bank").rglob(f"{db_id('main', shop)}/dump"))
                          .read_text())
        assert dump["server"] == "main" and dump["database"] == shop
        assert dump["size"] > 100_000 and "pg_dump (PostgreSQL)" in dump["pg_dump_version"]

        sql(server, f'DROP DATABASE "{shop}"')

        # Into a new name.
        copy = f"copy_{suffix}"
        done = api.restore(cp_id, {"restore_name": copy})
        assert done["status"] == "success", (done, srv.log()[-3000:])
        assert snapshot(server, copy) == expected

        # In place: the dropped database comes back under its own name.
        done = api.restore(cp_id, {"in_place": True})
        assert done["status"] == "success", (done, srv.log()[-3000:])
        assert snapshot(server, shop) == expected

        # In place over a changed database: pg_restore --clean puts the data back.
        sql(server, "DELETE FROM orders; DELETE FROM items WHERE id % 2 = 0; "
                    "UPDATE items SET name = 'changed'; SELECT setval('order_no', 5)",
            database=shop)
        assert sql(server, "SELECT count(*) FROM items", database=shop)[0][0] == ROWS // 2
        done = api.restore(cp_id, {"in_place": True})
        assert done["status"] == "success", (done, srv.log()[-3000:])
        assert snapshot(server, shop) == expected

        # Into a name that exists: refused, with the reason; nothing is dropped.
        sql(server, "INSERT INTO items (name) VALUES ('only in the copy')", database=copy)
        copy_rows = sql(server, "SELECT count(*) FROM items", database=copy)[0][0]
        failed = api.restore(cp_id, {"restore_name": copy})
        assert failed["status"] == "fail"
        reason = " ".join(str(v) for v in failed["resources_reason"].values())
        assert f"restore_name '{copy}': a database of that name already exists" in reason
        assert copy in databases(server)
        assert sql(server, "SELECT count(*) FROM items", database=copy)[0][0] == copy_rows

        # Neither or both parameters: refused at once, nothing recorded.
        restores = len(api.call("GET", "restores")["restores"])
        for params in ({}, {"restore_name": "x", "in_place": True}):
            rc, out, err = api.cli("restore-create", LOCAL_PROVIDER, cp_id,
                                   "--parameters-json", json.dumps({TYPE: params}))
            assert rc != 0 and "give either restore_name or in_place" in err, (out, err)
            assert "(HTTP 400)" in err
        assert len(api.call("GET", "restores")["restores"]) == restores

        assert api.verify(cp_id)["status"] == "success"

        # One flipped byte in the biggest pack: verify fails for the database ...
        packs = sorted((f for f in (tmp / "bank" / "karbor" / "chunks" / "packs").rglob("*")
                        if f.is_file()), key=lambda f: f.stat().st_size)
        victim = packs[-1]
        data = bytearray(victim.read_bytes())
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))
        result = api.verify(cp_id)
        assert result["status"] == "fail"
        key = f"{TYPE}#{db_id('main', shop)}"
        assert result["resources_status"][key] == "error"
        assert "corrupt data in the dump of" in result["resources_reason"][key]
        # ... and a restore into a new name fails and leaves no database behind.
        bad = f"bad_{suffix}"
        failed = api.restore(cp_id, {"restore_name": bad})
        assert failed["status"] == "fail"
        assert "orrupt" in json.dumps(failed["resources_reason"])
        assert bad not in databases(server)
        # In place, the corrupt dump changes nothing: pg_restore is killed before it sees
        # the end of its input, so its single transaction never commits.
        sql(server, "UPDATE items SET name = 'after the checkpoint' WHERE id = 1",
            database=shop)
        changed = snapshot(server, shop)
        failed = api.restore(cp_id, {"in_place": True})
        assert failed["status"] == "fail"
        assert "orrupt" in json.dumps(failed["resources_reason"])
        assert snapshot(server, shop) == changed

        # Deleting the checkpoint deletes its manifest.
        api.call("DELETE", f"providers/{LOCAL_PROVIDER}/checkpoints/{cp_id}")
        assert api.wait(f"providers/{LOCAL_PROVIDER}/checkpoints/{cp_id}",
                        {"deleted", "error-deleting"})["status"] == "deleted"
        assert not _manifests(tmp / "bank")
    for name in (shop, copy, late):
        sql(server, f'DROP DATABASE IF EXISTS "{name}"')


def test_failures_are_clear_and_leave_no_manifest(pg_env, postgresql_server, karborclient):
    tmp, providers = pg_env
    server = postgresql_server
    suffix = uuid.uuid4().hex[:8]
    secret, gone = f"secret_{suffix}", f"gone_{suffix}"
    make_database(server, secret)
    sql(server, f'CREATE DATABASE "{gone}"')
    role = f"limited_{suffix}"
    sql(server, f'CREATE ROLE "{role}" LOGIN')
    # The role may read items but not orders: pg_dump fails half way.
    sql(server, f'GRANT SELECT ON items, items_id_seq, order_no, expensive TO "{role}"',
        database=secret)
    base = f"127.0.0.1:{server.port}"
    down = free_port()
    servers = {"main": f"postgresql://postgres@{base}",
               "limited": f"postgresql://{role}@{base}",
               "down": f"postgresql://postgres@127.0.0.1:{down}"}
    with karbor_server(_config(providers, servers)) as srv:
        api = Client(srv.url, uuid.uuid4().hex, karborclient)

        # An unreachable server: listing is a clear 503 naming it.
        rc, out, err = api.cli("protectable-list-instances", TYPE)
        assert rc != 0
        message, code = error(out + err)
        message = message.replace("\\'", "'")  # the client prints a bytes repr
        assert code == 503
        assert "PostgreSQL server 'down' is unreachable" in message
        assert "Connection refused" in message or "connection" in message.lower()

        # Protecting a database of it fails the checkpoint with the reason.
        cp = api.protect(api.plan("down", "anything"))
        assert cp["status"] == "error"
        assert "PostgreSQL server 'down' is unreachable" in api.error_info(cp["id"])

        # A database dropped between plan and protect.
        plan_id = api.plan("main", gone)
        sql(server, f'DROP DATABASE "{gone}"')
        cp = api.protect(plan_id)
        assert cp["status"] == "error"
        assert f"database '{gone}' does not exist on 'main'" in api.error_info(cp["id"])

        # pg_dump itself fails (no right to read a table): its message is the reason.
        cp = api.protect(api.plan("limited", secret))
        assert cp["status"] == "error", cp
        info = api.error_info(cp["id"])
        assert "pg_dump of" in info and "permission denied for table orders" in info, info
        assert not _manifests(tmp / "bank")

        # The same database as a superuser protects fine.
        cp = api.protect(api.plan("main", secret))
        assert cp["status"] == "available", (cp, srv.log()[-3000:])
        assert len(_manifests(tmp / "bank")) == 1
    sql(server, f'DROP DATABASE IF EXISTS "{secret}"')
    sql(server, f'DROP ROLE IF EXISTS "{role}"')


def test_copy_to_second_bank_restores_alone(pg_env, postgresql_server, karborclient):
    tmp, providers = pg_env
    conf = providers / "local.conf"
    conf.write_text(conf.read_text().replace(
        "bank = karbor-fs-bank-plugin\n",
        "bank = karbor-fs-bank-plugin\ncopy_bank = karbor-fs-bank-plugin\n", 1)
        + f"\n[copy_bank]\nfile_system_bank_path = {tmp / 'second'}\n")
    server = postgresql_server
    suffix = uuid.uuid4().hex[:8]
    shop, copy = f"cshop_{suffix}", f"ccopy_{suffix}"
    make_database(server, shop)
    expected = snapshot(server, shop)
    url = f"postgresql://postgres@127.0.0.1:{server.port}"
    with karbor_server(_config(providers, {"main": url})) as srv:
        api = Client(srv.url, uuid.uuid4().hex, karborclient)
        plan_id = api.plan("main", shop)
        cp = api.protect(plan_id)
        assert cp["status"] == "available", (cp, srv.log()[-3000:])
        pairs = api.call("POST", f"providers/{LOCAL_PROVIDER}/checkpoints/action", {
            "copy": {"plan_id": plan_id, "parameters": {}}})["copy"]["checkpoint_id"]
        copies = [p["checkpoint_copy_id"] for p in pairs]
        assert len(copies) == 1
        copied = api.wait(f"providers/{LOCAL_PROVIDER}/checkpoints/{copies[0]}",
                          {"finished", "error"})
        assert copied["status"] == "finished", (copied, srv.log()[-3000:])
        assert _manifests(tmp / "second")

        # The original goes (with its chunks); the copy alone restores the database.
        api.call("DELETE", f"providers/{LOCAL_PROVIDER}/checkpoints/{cp['id']}")
        assert api.wait(f"providers/{LOCAL_PROVIDER}/checkpoints/{cp['id']}",
                        {"deleted", "error-deleting"})["status"] == "deleted"
        assert not _manifests(tmp / "bank")
        sql(server, f'DROP DATABASE "{shop}"')
        assert api.verify(copies[0])["status"] == "success"
        done = api.restore(copies[0], {"restore_name": copy})
        assert done["status"] == "success", (done, srv.log()[-3000:])
        assert snapshot(server, copy) == expected
    sql(server, f'DROP DATABASE IF EXISTS "{copy}"')
