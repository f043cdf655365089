"""karbor-manage: database schema, services and maintenance."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from karbor.cmd import common

DESCRIPTION = ("Karbor's administration commands: create or upgrade the database schema, "
               "purge deleted rows, list the registered services, rebuild checkpoint "
               "records from a bank. They act on the database of the configuration given "
               "(by default the SQLite database in state_path).")


def default_state_path() -> str | None:
    """Where ``run-server.sh`` keeps the state, so that ``karbor-manage`` run from the same
    checkout looks at the server's database rather than an empty ``~/.karbor``:
    ``$KARBOR_STATE_PATH``, else the checkout's ``.state`` if it exists. ``None``: the
    option's own default. A config file's ``state_path`` still wins over either."""
    env = os.environ.get("KARBOR_STATE_PATH")
    if env:
        return env
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "run-server.sh").is_file() and (checkout / ".state").is_dir():
        return str(checkout / ".state")
    return None


def _one_line(exc: BaseException) -> str:
    """The user-facing part of an error: a driver's first line, without SQLAlchemy's
    statement and background link."""
    orig = getattr(exc, "orig", None)
    text = str(orig if orig is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    """Exit status 1 and one line on stderr for what the user can fix (unknown provider,
    missing bank, unreachable or malformed database); a bug keeps its traceback."""
    import sqlalchemy.exc
    from oslo_config import cfg

    from karbor.common import exception

    try:
        return _main(argv)
    except (exception.KarborException, RuntimeError, OSError, cfg.Error,
            sqlalchemy.exc.ArgumentError, sqlalchemy.exc.DBAPIError,
            sqlalchemy.exc.NoSuchModuleError, ModuleNotFoundError) as exc:
        print(f"karbor-manage: error: {_one_line(exc)}", file=sys.stderr)
        return 1


def _main(argv: list[str] | None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(
        prog="karbor-manage", description=DESCRIPTION,
        epilog="state_path: --state_path, else the config file's, else $KARBOR_STATE_PATH, "
               "else the .state of the checkout karbor-manage runs from (where run-server.sh "
               "keeps it) if it exists, else ~/.karbor.")
    parser.add_argument("--config-file", action="append", default=[])
    parser.add_argument("--config-dir", action="append", default=[])
    parser.add_argument("--state_path", "--state-path", dest="state_path",
                        help="directory of the SQLite database and the file-system bank "
                             "(as karbor-server's --state_path)")
    parser.add_argument("--debug", "-d", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="category", required=True)
    db = sub.add_parser("db", help="database schema")
    db_sub = db.add_subparsers(dest="action", required=True)
    sync = db_sub.add_parser("sync", help="create or upgrade the schema")
    sync.add_argument("version", nargs="?", default="head")
    db_sub.add_parser("version", help="print the schema revision")
    purge = db_sub.add_parser("purge", help="hard-delete rows soft-deleted more than N days ago")
    purge.add_argument("age_in_days", type=int)
    bank = sub.add_parser("bank", help="banks")
    bank_sub = bank.add_subparsers(dest="action", required=True)
    imp = bank_sub.add_parser("import", help="rebuild checkpoint records from a provider's bank")
    imp.add_argument("provider_id")
    imp.add_argument("--copy-bank", action="store_true",
                     help="read the provider's copy bank instead of its primary bank")
    svc = sub.add_parser("service", help="Karbor services")
    svc_sub = svc.add_subparsers(dest="action", required=True)
    svc_sub.add_parser("list", help="list registered services")
    args = parser.parse_args(argv)
    oslo_args = []
    for f in args.config_file:
        oslo_args += ["--config-file", f]
    for d in args.config_dir:
        oslo_args += ["--config-dir", d]
    if args.state_path:
        oslo_args += ["--state_path", args.state_path]
    if args.debug:
        oslo_args.append("--debug")
    default = default_state_path()
    if default:
        common.CONF.set_default("state_path", default)
    common.setup(oslo_args, "karbor-manage", migrate=args.category == "bank")
    if not args.debug:  # a command's output, not the providers' loading chatter
        logging.getLogger().setLevel(logging.WARNING)
    from karbor.db import migration

    if args.category == "db" and args.action == "sync":
        migration.db_sync(args.version)
        print(f"database at revision {migration.db_version()}")
    elif args.category == "db" and args.action == "version":
        print(migration.db_version() or "none")
    elif args.category == "db" and args.action == "purge":
        if args.age_in_days < 0:
            print("karbor-manage: error: age_in_days must be >= 0", file=sys.stderr)
            return 2
        print(f"purged {purge_deleted(args.age_in_days)} row(s)")
    elif args.category == "bank" and args.action == "import":
        from karbor.services.protection import bank_import
        from karbor.services.protection import provider as provider_mod

        provider = provider_mod.registry().show(args.provider_id)
        report = bank_import.import_bank(provider, "copy" if args.copy_bank else "primary")
        print(f"imported {len(report.imported)} checkpoint(s), "
              f"{len(report.orphaned)} unfinished one(s) as error, "
              f"skipped {len(report.skipped)}")
        for cid in report.orphaned:
            print(f"  unfinished: {cid}")
    elif args.category == "service" and args.action == "list":
        from karbor.api.v1.services import is_up
        from karbor.db import models
        from karbor.db.session import session_scope

        if migration.db_version() is None:
            raise RuntimeError(f"no Karbor schema in {_database()}: run 'karbor-manage db "
                               "sync' or start a Karbor service first")
        with session_scope() as session:
            print(f"{'id':>4}  {'binary':<24} {'host':<24} {'status':<9} state")
            for s in session.query(models.Service).order_by(models.Service.id):
                status = "disabled" if s.disabled else "enabled"
                print(f"{s.id:>4}  {s.binary:<24} {s.host:<24} {status:<9} "
                      f"{'up' if is_up(s) else 'down'}")
    return 0


def _database() -> str:
    from sqlalchemy.engine import make_url

    from karbor.common import config

    return make_url(config.database_url()).render_as_string(hide_password=True)


def purge_deleted(age_in_days: int) -> int:
    import datetime as dt

    from sqlalchemy import delete

    from karbor.db import models
    from karbor.db.models import utcnow
    from karbor.db.session import session_scope

    cutoff = utcnow() - dt.timedelta(days=age_in_days)
    total = 0
    with session_scope(write=True) as session:
        # Children before parents because of foreign keys.
        for model in (models.Resource, models.ScheduledOperationLog,
                      models.ScheduledOperationState, models.ScheduledOperation,
                      models.Plan, models.Restore, models.Verification, models.OperationLog,
                      models.Trigger, models.Quota, models.QuotaClass):
            result = session.execute(delete(model).where(model.deleted == True,  # noqa: E712
                                                         model.deleted_at < cutoff))
            total += result.rowcount or 0
    return total


if __name__ == "__main__":
    sys.exit(main())
