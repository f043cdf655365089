"""Protection plugin for Karbor::PostgreSQL::Database, on the bank's chunk store.

Protect runs ``pg_dump --format=custom`` and streams its standard output straight into the
chunk store of the checkpoint's bank (manifest ``pg/<checkpoint>/<resource>/dump``; no temp
file of the dump). The manifest is committed only when pg_dump exited 0: a failed dump fails
the resource with pg_dump's own message and leaves no manifest. The ``dump`` object of the
resource's bank section records the server, database, dump size, pg_dump's and the
server's versions and the database's encoding and locale.

Restore streams the manifest into ``pg_restore`` (standard input), in one transaction
(``--single-transaction``, so it stops at the first error and commits nothing):

* ``restore_name``: a new database on the same server (or ``restore_server``), created
  from template0 with the original encoding and locale; refused when it exists; dropped
  again when the restore fails.
* ``in_place: true``: over the original database with ``pg_restore --clean --if-exists``
  (every object of the dump is dropped and recreated; objects created after the
  checkpoint that the dump does not know stay). A database that no longer exists is
  created first (and dropped again if the restore fails).
"""

from __future__ import annotations

import logging
import os
import subprocess
import tempfile

from psycopg2 import sql
from psycopg2.extensions import make_dsn

from karbor.common import constants, exception
from karbor.services.protection import protection_plugin
from karbor.services.protection.chunkstore.errors import ChunkStoreError
from karbor.services.protection.protectable_plugins import postgresql as protectable
from karbor.services.protection.protection_plugins import _chunks, _params

LOG = logging.getLogger(__name__)

RESOURCE_TYPE = protectable.RESOURCE_TYPE
DUMP_VERSION = 1
STDERR_LIMIT = 4000   # characters of a client program's stderr kept in a reason


class DumpFailed(exception.KarborException):
    message = "pg_dump of %(database)r on %(server)r failed: %(reason)s"


class RestoreError(exception.KarborException):
    message = "Restore of the database failed: %(reason)s"


def stream_name(checkpoint_id: str, resource_id: str) -> str:
    return f"pg/{checkpoint_id}/{resource_id}/dump"


def _source(resource, project_id: str | None = None) -> tuple[str, str]:
    info = resource.extra_info or {}
    server, database = info.get("server"), info.get("database")
    if not (server and database) and "/" in (resource.name or ""):
        server, _, database = resource.name.partition("/")
    if not (server and database):
        raise exception.InvalidInput(reason=f"resource {resource.id} names no server and "
                                            "database")
    protectable.server_url(server, project_id)
    if protectable.database_id(server, database) != resource.id:
        raise exception.InvalidInput(reason=f"resource {resource.id} is not the database "
                                            f"{server}/{database}")
    return server, database


def client_env(params: dict) -> tuple[str, dict]:
    """(conninfo without the password, environment with PGPASSWORD) for a client program,
    so that the password never shows on a command line."""
    params = dict(params)
    password = params.pop("password", None)
    # The rest of the environment stays: PGSSLROOTCERT and the like apply as they do to
    # the service's own connections; whatever the conninfo names wins over PG* variables.
    env = dict(os.environ)
    env["LC_ALL"] = env["LANG"] = "C"   # messages in English, as recorded in reasons
    if password is not None:
        env["PGPASSWORD"] = password
    return make_dsn(**params), env


def _stderr_text(f) -> str:
    f.seek(0)
    text = f.read(STDERR_LIMIT * 4).decode("utf-8", "replace").strip()
    lines = [ln for ln in text.splitlines() if ln.strip()]
    text = " ".join(ln.strip() for ln in lines)
    return text[:STDERR_LIMIT] + ("..." if len(text) > STDERR_LIMIT else "")


def program_version(path: str) -> str:
    proc = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=30)
    return proc.stdout.strip()


# ---------------------------------------------------------------------------------- protect

class _ExitChecked:
    """pg_dump's stdout for the chunker: at EOF, raise DumpFailed unless pg_dump exited 0,
    so that the chunk store session aborts before it commits the manifest."""

    def __init__(self, proc, stderr, server, database, progress=None):
        self._proc = proc
        self._stderr = stderr
        self._server = server
        self._database = database
        self._progress = progress
        self.size = 0

    def _check(self) -> None:
        rc = self._proc.wait()
        if rc != 0:
            reason = _stderr_text(self._stderr) or f"exit code {rc}"
            raise DumpFailed(server=self._server, database=self._database, reason=reason)

    def readinto(self, buf) -> int:
        n = self._proc.stdout.readinto(buf)
        if not n:
            self._check()
            return 0
        self.size += n
        if self._progress is not None:
            self._progress.add(bytes=n)
        return n

    def read(self, n: int = -1) -> bytes:
        data = self._proc.stdout.read(n)
        if not data:
            self._check()
        self.size += len(data)
        if self._progress is not None:
            self._progress.add(bytes=len(data))
        return data


def dump_database(store, server: str, database: str, name: str, progress=None) -> dict:
    """Stream ``pg_dump --format=custom`` of the database into manifest ``name``; the
    database's size is the progress estimate (a dump is usually smaller: no indexes)."""
    pg_dump = protectable.find_program("pg_dump")
    params = protectable.conn_params(protectable.server_url(server), database)
    info = _database_info(server, database)
    if progress is not None:
        progress.report(bytes_total=_database_size(server, database))
    dsn, env = client_env(params)
    cmd = [pg_dump, "--format=custom", "--no-password", f"--dbname={dsn}"]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=stderr, env=env)
        reader = _ExitChecked(proc, stderr, server, database, progress)
        try:
            with store.session() as session:
                manifest = session.write_stream(reader, name)
            if progress is not None and manifest.stats is not None:
                progress.report(bytes_total=reader.size, new_bytes=manifest.stats.new_bytes,
                                bytes_added=manifest.stats.stored_bytes)
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.stdout.close()
            proc.wait()
    return {"version": DUMP_VERSION, "server": server, "database": database,
            "format": "custom", "size": manifest.size, "stream": name,
            "pg_dump_version": program_version(pg_dump), **info}


def _database_info(server: str, database: str) -> dict:
    conn = protectable.connect(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_encoding_to_char(encoding), datcollate, datctype, "
                        "current_setting('server_version') FROM pg_database "
                        "WHERE datname = %s", (database,))
            row = cur.fetchone()
    finally:
        conn.close()
    if row is None:
        raise DumpFailed(server=server, database=database,
                         reason=f"database {database!r} does not exist on {server!r}")
    encoding, collate, ctype, version = row
    return {"encoding": encoding, "collate": collate, "ctype": ctype,
            "server_version": version}


def _database_size(server: str, database: str) -> int | None:
    conn = protectable.connect(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT pg_database_size(%s)", (database,))
            return int(cur.fetchone()[0])
    except Exception:  # noqa: BLE001 - only an estimate: progress without a total
        return None
    finally:
        conn.close()


# ---------------------------------------------------------------------------------- restore

def database_exists(server: str, database: str) -> bool:
    conn = protectable.connect(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT 1 FROM pg_database WHERE datname = %s", (database,))
            return cur.fetchone() is not None
    finally:
        conn.close()


def create_database(server: str, database: str, dump: dict) -> None:
    conn = protectable.connect(server)
    try:
        with conn.cursor() as cur:
            query = sql.SQL("CREATE DATABASE {} TEMPLATE template0").format(
                sql.Identifier(database))
            for key, opt in (("encoding", "ENCODING"), ("collate", "LC_COLLATE"),
                             ("ctype", "LC_CTYPE")):
                if dump.get(key):
                    query += sql.SQL(f" {opt} ") + sql.Literal(dump[key])
            try:
                cur.execute(query)
            except Exception as exc:
                raise RestoreError(reason=f"cannot create database {database!r} on "
                                          f"{server!r}: {protectable._pg_message(exc)}"
                                   ) from None
    finally:
        conn.close()


def drop_database(server: str, database: str) -> None:
    conn = protectable.connect(server)
    try:
        with conn.cursor() as cur:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))
    finally:
        conn.close()


def restore_database(store, name: str, server: str, database: str, clean: bool) -> None:
    """Stream manifest ``name`` into ``pg_restore`` against an existing database."""
    pg_restore = protectable.find_program("pg_restore")
    params = protectable.conn_params(protectable.server_url(server), database)
    dsn, env = client_env(params)
    cmd = [pg_restore, "--no-password", "--single-transaction", "--exit-on-error",
           f"--dbname={dsn}"]
    if clean:
        cmd += ["--clean", "--if-exists"]
    with tempfile.TemporaryFile() as stderr:
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                stderr=stderr, env=env)
        try:
            try:
                for piece in store.read_stream(name):
                    proc.stdin.write(piece)
            except BrokenPipeError:
                pass  # pg_restore stopped reading: its exit code and stderr say why
            except BaseException:
                # Kill it before it sees the end of its input: nothing is committed.
                proc.kill()
                raise
            try:
                proc.stdin.close()
            except BrokenPipeError:
                pass
            rc = proc.wait()
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
        if rc != 0:
            reason = _stderr_text(stderr) or f"exit code {rc}"
            raise RestoreError(reason=f"pg_restore into {database!r} on {server!r} failed: "
                                      f"{reason}")


# ---------------------------------------------------------------------------------- hooks

def _dump(checkpoint, resource) -> dict:
    try:
        dump = checkpoint.get_resource_bank_section(resource.id).get_object("dump")
    except exception.BankObjectNotFound:
        raise RestoreError(reason=f"no dump of {resource.id} in the bank") from None
    if not isinstance(dump, dict) or dump.get("version") != DUMP_VERSION:
        raise RestoreError(reason=f"the dump record of {resource.id} has an unknown format")
    return dump


class _Protect(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        section = checkpoint.get_resource_bank_section(resource.id)
        section.update_object("status", "protecting")
        server, database = _source(resource, protectable.project_of(context))
        store = _chunks.store_for(self._config, checkpoint.bank)
        dump = dump_database(store, server, database, stream_name(checkpoint.id, resource.id),
                             kwargs.get("progress"))
        section.update_object("dump", dump)
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)


def restore_target(dump: dict, parameters: dict,
                   project_id: str | None = None) -> tuple[str, str, bool]:
    """(server, database, in_place) of a restore, from its parameters; the server must be
    one ``project_id`` may use (in place too: the dumped server may have changed hands)."""
    in_place = _params.flag(parameters, "in_place")
    name = parameters.get("restore_name")
    if in_place == bool(name):
        raise exception.InvalidInput(reason="give either restore_name or in_place: true")
    server = parameters.get("restore_server") or dump["server"]
    if in_place:
        if server != dump["server"]:
            raise exception.InvalidInput(reason="restore_server cannot be combined with "
                                                "in_place")
        protectable.server_url(server, project_id)
        return server, dump["database"], True
    if not isinstance(name, str) or len(name.encode()) > 63 or "\x00" in name:
        raise exception.InvalidInput(reason="restore_name must be a database name of at "
                                            "most 63 bytes")
    protectable.server_url(server, project_id)
    return server, name, False


class _Restore(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        recorder = kwargs.get("restore")
        try:
            dump = _dump(checkpoint, resource)
            server, database, in_place = restore_target(dump, parameters,
                                                        protectable.project_of(context))
            exists = database_exists(server, database)
            if exists and not in_place:
                raise exception.InvalidInput(
                    reason=f"restore_name {database!r}: a database of that name already "
                           f"exists on {server!r}")
            store = _chunks.store_for(self._config, checkpoint.bank)
            name = stream_name(checkpoint.id, resource.id)
            store.get_manifest(name)  # fail before creating anything when it is gone
            if not exists:
                create_database(server, database, dump)
            try:
                restore_database(store, name, server, database, clean=exists)
            except BaseException:
                if not exists:  # a failed restore into a new database leaves nothing
                    try:
                        drop_database(server, database)
                    except Exception:
                        LOG.warning("could not drop %s on %s after the failed restore",
                                    database, server, exc_info=True)
                raise
        except Exception as exc:
            if isinstance(exc, ChunkStoreError):
                exc = RestoreError(reason=_chunks.message(exc))
            if recorder is not None:
                recorder.update_resource_status(resource.type, resource.id, "error",
                                                _chunks.message(exc))
            raise exc from None
        new_id = protectable.database_id(server, database)
        kwargs.get("new_resources", {})[resource.id] = new_id
        if recorder is not None:
            recorder.update_resource_status(resource.type, new_id, "available")


class _Verify(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        recorder = kwargs.get("verify")
        reason = None
        try:
            dump = _dump(checkpoint, resource)
            store = _chunks.store_for(self._config, checkpoint.bank)
            report = store.verify(stream_name(checkpoint.id, resource.id))
            if not report.ok:
                reason = (f"corrupt data in the dump of {dump['database']!r} "
                          f"({len(report.bad)} bad chunk(s)): {report.bad[0]['reason']}")
            elif report.bytes != dump.get("size"):
                reason = f"the dump has {report.bytes} bytes, {dump.get('size')} were stored"
        except (ChunkStoreError, RestoreError) as exc:
            reason = _chunks.message(exc)
        if reason:
            if recorder is not None:
                recorder.update_resource_status(resource.type, resource.id, "error", reason)
            raise RestoreError(reason=f"verification failed: {reason}")
        if recorder is not None:
            recorder.update_resource_status(resource.type, resource.id, "available")


class _Delete(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        store = _chunks.store_for(self._config, checkpoint.bank)
        for name in store.list_manifests(f"pg/{checkpoint.id}/{resource.id}/"):
            store.delete_manifest(name)
        section = checkpoint.get_resource_bank_section(resource.id)
        section.delete_object("dump")
        section.update_object("status", constants.CHECKPOINT_STATUS_DELETED)
        _chunks.collect(store, LOG)


class _Copy(protection_plugin.Operation):
    def __init__(self, config):
        self._config = config

    def on_main(self, checkpoint, resource, context, parameters, **kwargs):
        copy_cp = kwargs["checkpoint_copy"]
        source = _chunks.store_for(self._config, checkpoint.bank)
        target = _chunks.store_for(self._config, copy_cp.bank, like=source)
        dump = _dump(checkpoint, resource)
        source.copy_to(target, stream_name(checkpoint.id, resource.id),
                       stream_name(copy_cp.id, resource.id))
        section = copy_cp.get_resource_bank_section(resource.id)
        section.update_object("dump", {**dump, "stream": stream_name(copy_cp.id, resource.id)})
        section.update_object("status", constants.CHECKPOINT_STATUS_AVAILABLE)


class PostgreSQLProtectionPlugin(protection_plugin.ProtectionPlugin):
    def __init__(self, config=None):
        super().__init__(config)
        _chunks.register_opts(config)

    def get_protect_operation(self, resource):
        return _Protect(self._config)

    def get_restore_operation(self, resource):
        return _Restore(self._config)

    def get_verify_operation(self, resource):
        return _Verify(self._config)

    def get_copy_operation(self, resource):
        return _Copy(self._config)

    def get_delete_operation(self, resource):
        return _Delete(self._config)

    @classmethod
    def check_restore_parameters(cls, resource, parameters, context):
        server, database = _source(resource, protectable.project_of(context))
        restore_target({"server": server, "database": database}, parameters,
                       protectable.project_of(context))

    @classmethod
    def get_supported_resources_types(cls):
        return [RESOURCE_TYPE]

    @classmethod
    def get_options_schema(cls, resource_type):
        return {"type": "object", "title": "PostgreSQL database protection options",
                "properties": {}}

    @classmethod
    def get_restore_schema(cls, resource_type):
        return {"type": "object", "title": "PostgreSQL database restore options",
                "properties": {
                    "restore_name": {
                        "type": "string", "title": "Restore name",
                        "description": "A new database to create and restore into (refused "
                                       "when it exists; dropped again if the restore "
                                       "fails)."},
                    "restore_server": {
                        "type": "string", "title": "Restore server",
                        "description": "With restore_name: the [postgresql] servers entry "
                                       "to restore on (default: the original server)."},
                    "in_place": {
                        "type": "boolean", "default": False, "title": "In place",
                        "description": "Restore over the original database with pg_restore "
                                       "--clean --if-exists in one transaction (created "
                                       "if it no longer exists)."}}}

    @classmethod
    def get_verify_schema(cls, resource_type):
        return {"type": "object", "properties": {}}
