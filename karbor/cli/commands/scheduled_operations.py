"""``scheduled-operation ...``: protect a plan whenever a trigger fires."""

from __future__ import annotations

from karbor.cli.client import CLIError
from karbor.cli.commands.base import Context, command, find_plan, group

COLUMNS = ["id", "name", "operation_type", "trigger_id", "enabled",
           ("plan_id", lambda r: (r.get("operation_definition") or {}).get("plan_id"))]


def list_(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get("scheduled_operations", name=a.name, operation_type=a.type,
                            trigger_id=a.trigger, limit=a.limit, marker=a.marker,
                            sort=a.sort)["operations"], COLUMNS)
    return 0


def show(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"scheduled_operations/{ctx.args.operation}")
             ["scheduled_operation"])
    return 0


def create(ctx: Context) -> int:
    a = ctx.args
    plan = find_plan(ctx.client, a.plan)
    definition: dict = {"plan_id": plan["id"],
                        "provider_id": a.provider or plan["provider_id"]}
    if a.max_backups is not None:
        definition["max_backups"] = a.max_backups
    if a.retention_duration is not None:
        definition["retention_duration"] = a.retention_duration
    body: dict = {"name": a.name, "operation_type": a.type, "trigger_id": a.trigger,
                  "operation_definition": definition}
    if a.description is not None:
        body["description"] = a.description
    ctx.emit(ctx.client.post("scheduled_operations", {"scheduled_operation": body})
             ["scheduled_operation"])
    return 0


def update(ctx: Context) -> int:
    a = ctx.args
    body: dict = {}
    for key in ("name", "description", "enabled"):
        if getattr(a, key) is not None:
            body[key] = getattr(a, key)
    if not body:
        raise CLIError("nothing to update: give --name, --description, --enable or --disable")
    ctx.emit(ctx.client.put(f"scheduled_operations/{a.operation}",
                            {"scheduled_operation": body})["scheduled_operation"])
    return 0


def delete(ctx: Context) -> int:
    for op in ctx.args.operation:
        ctx.client.delete(f"scheduled_operations/{op}")
        if ctx.fmt == "table":
            print(f"scheduled operation {op} deleted")
    if ctx.fmt != "table":
        ctx.emit({})
    return 0


def register(subparsers, parents) -> None:
    sub = group(subparsers, "scheduled-operation", help="scheduled operations",
                aliases=["schedule"],
                example="karborctl scheduled-operation create nightly --trigger TRIGGER "
                        "--plan PLAN")
    p = command(sub, "list", list_, help="list scheduled operations", parents=parents,
                example="karborctl scheduled-operation list --trigger TRIGGER")
    p.add_argument("--name", help="a regular expression")
    p.add_argument("--type", choices=["protect", "retention_protect"])
    p.add_argument("--trigger", metavar="TRIGGER")
    p.add_argument("--limit", type=int)
    p.add_argument("--marker")
    p.add_argument("--sort", metavar="KEY:DIR")
    p = command(sub, "show", show, help="show a scheduled operation", parents=parents,
                example="karborctl scheduled-operation show OPERATION")
    p.add_argument("operation", metavar="OPERATION")
    p = command(sub, "create", create, help="protect a plan on a trigger", parents=parents,
                example="karborctl scheduled-operation create keep7 --type retention_protect"
                        " \\\n    --trigger TRIGGER --plan PLAN --max-backups 7")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--trigger", required=True, metavar="TRIGGER")
    p.add_argument("--plan", required=True, metavar="PLAN")
    p.add_argument("--provider", metavar="PROVIDER",
                   help="the plan's provider (default: read from the plan)")
    p.add_argument("--type", default="protect", choices=["protect", "retention_protect"])
    p.add_argument("--description")
    p.add_argument("--max-backups", type=int, metavar="N")
    p.add_argument("--retention-duration", type=int, metavar="DAYS")
    p = command(sub, "update", update, help="rename, describe, enable or disable",
                parents=parents,
                example="karborctl scheduled-operation update OPERATION --disable")
    p.add_argument("operation", metavar="OPERATION")
    p.add_argument("--name")
    p.add_argument("--description")
    switch = p.add_mutually_exclusive_group()
    switch.add_argument("--enable", dest="enabled", action="store_const", const=True)
    switch.add_argument("--disable", dest="enabled", action="store_const", const=False)
    p = command(sub, "delete", delete, help="delete scheduled operations", parents=parents,
                example="karborctl scheduled-operation delete OPERATION")
    p.add_argument("operation", metavar="OPERATION", nargs="+")
