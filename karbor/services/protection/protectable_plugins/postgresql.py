"""Karbor::PostgreSQL::Database: the databases of the PostgreSQL servers named in karbor.conf.

The servers are the ``[postgresql] servers`` option of the main ``karbor.conf``
(``name:postgresql://user:password@host:port[/maintenance_db][?options]``, comma separated;
the protectable registry builds its plugins without a provider, so the provider file cannot
name them). Instances are listed live: every call connects and reads ``pg_database``
(templates excluded). A database's id is ``uuid5(NAMESPACE, "<server>/<database>")`` and its
name ``<server>/<database>``, so it stays the same while the database exists.
"""

from __future__ import annotations

import glob
import os
import shutil
import uuid

from oslo_config import cfg

from karbor.common import exception
from karbor.common.config import CONF
from karbor.resource import Resource
from karbor.services.protection.protectable_plugin import ProtectablePlugin

RESOURCE_TYPE = "Karbor::PostgreSQL::Database"
# Fixed namespace of the databases' ids: uuid5(NAMESPACE, "<server>/<database>").
NAMESPACE = uuid.UUID("0c5b6f1e-8d2a-5e47-b3c9-71a4e2d8f6a0")
DEFAULT_MAINTENANCE_DB = "postgres"

postgresql_opts = [
    cfg.DictOpt("servers", default={},
                help="PostgreSQL servers whose databases can be protected as "
                     "Karbor::PostgreSQL::Database resources: comma separated "
                     "name:URL pairs, e.g. 'main:postgresql://karbor:secret@db1:5432'. The "
                     "URL's path names the database to connect to for listing (default "
                     "'postgres'); its query may carry libpq options (sslmode=...). "
                     "Percent-encode a ',' in a password. The user needs CONNECT and "
                     "SELECT on what is dumped, and CREATEDB to restore into a new "
                     "database."),
    cfg.DictOpt("owners", default={},
                help="Servers that belong to one project: comma separated "
                     "server:project_id pairs. An owned server's databases are listed "
                     "to, dumped for and restored into by that project only; a server "
                     "not named here is shared by every project."),
    cfg.StrOpt("bin_dir",
               help="Directory of pg_dump and pg_restore. Default: the newest "
                    "/usr/lib/postgresql/<version>/bin that has them, else the PATH."),
    cfg.IntOpt("connect_timeout", default=10, min=1,
               help="Seconds to wait for a PostgreSQL server to accept a connection."),
]
CONF.register_opts(postgresql_opts, group="postgresql")


class ServerUnreachable(exception.ServiceUnavailable):
    message = "PostgreSQL server %(server)r is unreachable: %(reason)s"


class UnknownServer(exception.InvalidInput):
    message = ("Invalid input received: %(server)r is not a server of the "
               "[postgresql] servers option")


class ProgramNotFound(exception.KarborException):
    code = 503
    message = "%(program)s not found (%(where)s); install PostgreSQL's client programs " \
              "or set [postgresql] bin_dir"


# ---------------------------------------------------------------------------- helpers


def database_id(server: str, database: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{server}/{database}"))


def servers(project_id: str | None = None) -> dict[str, str]:
    """The servers ``project_id`` may use (all of them for None: the service's own
    calls); another project's server is as unknown as one never configured."""
    owners = CONF.postgresql.owners or {}
    return {name: url for name, url in (CONF.postgresql.servers or {}).items()
            if project_id is None or owners.get(name) in (None, project_id)}


def project_of(context) -> str | None:
    return getattr(context, "project_id", None) if context is not None else None


def server_url(server: str, project_id: str | None = None) -> str:
    url = servers(project_id).get(server)
    if not url:
        raise UnknownServer(server=server)
    return url


def conn_params(url: str, database: str | None = None) -> dict[str, str]:
    """libpq keywords of a server URL, the database replaced by ``database`` if given."""
    from psycopg2.extensions import parse_dsn

    try:
        params = parse_dsn(url)
    except Exception as exc:  # psycopg2.ProgrammingError: invalid dsn
        raise exception.InvalidInput(reason=f"invalid PostgreSQL URL: {exc}") from None
    params.setdefault("dbname", DEFAULT_MAINTENANCE_DB)
    if database is not None:
        params["dbname"] = database
    params.setdefault("connect_timeout", str(CONF.postgresql.connect_timeout))
    return params


def connect(server: str, database: str | None = None):
    """A psycopg2 connection (autocommit) to ``database`` (default: the maintenance db)."""
    import psycopg2

    params = conn_params(server_url(server), database)
    try:
        conn = psycopg2.connect(**params)
    except psycopg2.OperationalError as exc:
        raise ServerUnreachable(server=server, reason=_pg_message(exc)) from None
    conn.autocommit = True
    return conn


def _pg_message(exc: Exception) -> str:
    text = str(exc).strip()
    return " ".join(text.split()) or type(exc).__name__


def find_program(name: str) -> str:
    """Absolute path of ``pg_dump``/``pg_restore``: [postgresql] bin_dir, else the newest
    /usr/lib/postgresql/*/bin, else the PATH. ProgramNotFound names what was missing."""
    bin_dir = CONF.postgresql.bin_dir
    if bin_dir:
        path = os.path.join(bin_dir, name)
        if os.path.isfile(path) and os.access(path, os.X_OK):
            return path
        raise ProgramNotFound(program=name, where=f"not in [postgresql] bin_dir {bin_dir}")

    def version(p: str) -> tuple[int, ...]:
        v = os.path.basename(os.path.dirname(os.path.dirname(p)))
        return tuple(int(x) for x in v.split(".") if x.isdigit()) or (0,)

    found = [p for p in glob.glob(f"/usr/lib/postgresql/*/bin/{name}")
             if os.access(p, os.X_OK)]
    if found:
        return max(found, key=version)
    path = shutil.which(name)
    if path:
        return path
    raise ProgramNotFound(program=name,
                          where="not in /usr/lib/postgresql/*/bin nor on the PATH")


def list_databases(server: str) -> list[dict]:
    """The server's databases (not templates), live."""
    conn = connect(server)
    try:
        with conn.cursor() as cur:
            cur.execute("SELECT datname, datallowconn, pg_encoding_to_char(encoding), "
                        "datcollate, datctype FROM pg_database WHERE NOT datistemplate "
                        "ORDER BY datname")
            rows = cur.fetchall()
    finally:
        conn.close()
    return [{"database": name, "allow_connections": allow, "encoding": enc,
             "collate": collate, "ctype": ctype}
            for name, allow, enc, collate, ctype in rows]


def resource(server: str, database: str, **extra) -> Resource:
    return Resource(type=RESOURCE_TYPE, id=database_id(server, database),
                    name=f"{server}/{database}",
                    extra_info={"server": server, "database": database, **extra})


class PostgreSQLProtectablePlugin(ProtectablePlugin):
    _SUPPORT_RESOURCE_TYPE = RESOURCE_TYPE

    def get_parent_resource_types(self):
        return ()

    def list_resources(self, context, parameters=None):
        found = []
        for server in sorted(servers(project_of(context))):
            for db in list_databases(server):
                found.append(resource(server, db["database"]))
        return found

    def show_resource(self, context, resource_id, parameters=None):
        unreachable = []
        for server in sorted(servers(project_of(context))):
            try:
                dbs = list_databases(server)
            except ServerUnreachable as exc:
                unreachable.append(exc)
                continue
            for db in dbs:
                if database_id(server, db["database"]) != resource_id:
                    continue
                conn = connect(server)
                try:
                    with conn.cursor() as cur:
                        cur.execute("SELECT pg_database_size(%s), "
                                    "(SELECT count(*) FROM pg_stat_activity "
                                    "WHERE datname = %s), current_setting('server_version')",
                                    (db["database"], db["database"]))
                        size, sessions, version = cur.fetchone()
                finally:
                    conn.close()
                status = "available" if db["allow_connections"] else "not accepting connections"
                return resource(server, db["database"], status=status, size=int(size),
                                sessions=int(sessions), encoding=db["encoding"],
                                server_version=version)
        if unreachable:
            # It may be a database of a server that cannot be asked right now.
            raise unreachable[0]
        raise exception.ProtectableResourceNotFound(
            resource_id=resource_id, resource_type=RESOURCE_TYPE,
            reason="no database with that id on the configured PostgreSQL servers")

    def get_dependent_resources(self, context, parent_resource):
        return []
