"""karbor-manage: database schema, services and maintenance."""

from __future__ import annotations

import argparse
import sys

from karbor.cmd import common


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="karbor-manage")
    parser.add_argument("--config-file", action="append", default=[])
    parser.add_argument("--config-dir", action="append", default=[])
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
    common.setup(oslo_args, "karbor-manage", migrate=args.category == "bank")
    from karbor.db import migration

    if args.category == "db" and args.action == "sync":
        migration.db_sync(args.version)
        print(f"database at revision {migration.db_version()}")
    elif args.category == "db" and args.action == "version":
        print(migration.db_version() or "none")
    elif args.category == "db" and args.action == "purge":
        if args.age_in_days < 0:
            print("age_in_days must be >= 0", file=sys.stderr)
            return 2
        print(f"purged {purge_deleted(args.age_in_days)} row(s)")
    elif args.category == "bank" and args.action == "import":
        from karbor.common import exception
        from karbor.services.protection import bank_import
        from karbor.services.protection import provider as provider_mod

        try:
            provider = provider_mod.registry().show(args.provider_id)
        except exception.ProviderNotFound as exc:
            print(exc.msg, file=sys.stderr)
            return 1
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

        with session_scope() as session:
            print(f"{'id':>4}  {'binary':<24} {'host':<24} {'status':<9} state")
            for s in session.query(models.Service).order_by(models.Service.id):
                status = "disabled" if s.disabled else "enabled"
                print(f"{s.id:>4}  {s.binary:<24} {s.host:<24} {status:<9} "
                      f"{'up' if is_up(s) else 'down'}")
    return 0


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
