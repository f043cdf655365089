"""``operation-log list|show`` and ``logs``: the history of protects, restores, deletes.

``logs ID`` takes any id (checkpoint, restore, plan, verification) and asks for each kind;
the API silently drops filters a non-admin may not use, so the answers are filtered here
again rather than trusted.
"""

from __future__ import annotations

from karbor.cli.client import CLIError
from karbor.cli.commands.base import Context, command, group

COLUMNS = ["id", "operation_type", "status", "checkpoint_id", "restore_id", "plan_id",
           "started_at", "ended_at"]
FIELDS = {"checkpoint": "checkpoint_id", "restore": "restore_id", "plan": "plan_id",
          "verification": "verification_id"}


def list_(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get("operation_logs", checkpoint_id=a.checkpoint, plan_id=a.plan,
                            restore_id=a.restore, status=a.status, limit=a.limit,
                            marker=a.marker, sort=a.sort)["operation_logs"], COLUMNS)
    return 0


def show(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"operation_logs/{ctx.args.log}")["operation_log"])
    return 0


def logs(ctx: Context) -> int:
    a = ctx.args
    wanted = {field: getattr(a, kind) for kind, field in FIELDS.items() if getattr(a, kind)}
    if a.id:
        searches = [{field: a.id} for field in FIELDS.values()]
    elif wanted:
        searches = [wanted]
    else:
        raise CLIError("give an ID, or --checkpoint/--restore/--plan/--verification")
    found: dict[str, dict] = {}
    for search in searches:
        for log in ctx.client.get("operation_logs", **search)["operation_logs"]:
            if all(log.get(k) == v for k, v in search.items()):
                found[log["id"]] = log
    items = sorted(found.values(), key=lambda r: (r.get("started_at") or "", r["id"]))
    ctx.emit(items, COLUMNS)
    return 0


def register(subparsers, parents) -> None:
    sub = group(subparsers, "operation-log", help="operation logs",
                example="karborctl operation-log list --checkpoint CHECKPOINT")
    p = command(sub, "list", list_, help="list operation logs", parents=parents,
                example="karborctl operation-log list --status error -o json")
    p.add_argument("--checkpoint", metavar="CHECKPOINT")
    p.add_argument("--plan", metavar="PLAN")
    p.add_argument("--restore", metavar="RESTORE")
    p.add_argument("--status")
    p.add_argument("--limit", type=int)
    p.add_argument("--marker")
    p.add_argument("--sort", metavar="KEY:DIR")
    p = command(sub, "show", show, help="show an operation log", parents=parents,
                example="karborctl operation-log show LOG")
    p.add_argument("log", metavar="LOG")
    p = command(subparsers, "logs", logs, parents=parents,
                help="the operation logs of a checkpoint, restore, plan or verification",
                example="karborctl logs CHECKPOINT\nkarborctl logs --plan PLAN -o json")
    p.add_argument("id", metavar="ID", nargs="?",
                   help="any checkpoint, restore, plan or verification id")
    for kind in FIELDS:
        p.add_argument(f"--{kind}", metavar=kind.upper())
