"""``checkpoint ...`` and ``protect``: protect a plan, watch it, delete it, copy it.

The checkpoint commands take ``[PROVIDER] CHECKPOINT``: without the provider, every
provider is asked for the checkpoint (one GET each), which is what a user with only the id
from a log line wants.
"""

from __future__ import annotations

from karbor.cli import progress
from karbor.cli.client import CLIError
from karbor.cli.commands.base import (
    Context,
    command,
    describe_text,
    find_checkpoint,
    find_plan,
    finish,
    group,
    key_values,
    parameters,
    record_op,
    wait_parent,
)

COLUMNS = ["id", "status", ("plan", lambda r: (r.get("protection_plan") or {}).get("name")),
           ("plan_id", lambda r: (r.get("protection_plan") or {}).get("id")), "created_at"]
DONE = {"available"}
FAILED = {"error", "deleted", "error-deleting"}
COPIED = {"finished", "available"}
HEAD = ["id", "status", "project_id", "created_at", "extra_info"]


def _path(provider: str, checkpoint: str) -> str:
    return f"providers/{provider}/checkpoints/{checkpoint}"


def _target(ctx: Context) -> tuple[str, dict]:
    ids = ctx.args.ids
    if len(ids) > 2:
        raise CLIError("give [PROVIDER] CHECKPOINT")
    if len(ids) == 2:
        return find_checkpoint(ctx.client, ids[1], ids[0])
    return find_checkpoint(ctx.client, ids[0], getattr(ctx.args, "provider", None))


def list_(ctx: Context) -> int:
    a = ctx.args
    items = ctx.client.get(f"providers/{a.provider}/checkpoints", plan_id=a.plan,
                           status=a.status, start_date=a.start_date, end_date=a.end_date,
                           limit=a.limit, marker=a.marker, sort=a.sort)["checkpoints"]
    ctx.emit(items, COLUMNS)
    return 0


def show(ctx: Context) -> int:
    ctx.emit(_target(ctx)[1])
    return 0


def describe(ctx: Context) -> int:
    _provider, record = _target(ctx)
    ctx.emit(record, text=describe_text(record, HEAD))
    return 0


def create(ctx: Context) -> int:
    """Also ``karborctl protect PLAN``: the plan names its provider, so none is needed."""
    a = ctx.args
    plan = find_plan(ctx.client, a.plan)
    provider = a.provider or plan["provider_id"]
    body: dict = {"plan_id": plan["id"]}
    if a.extra_info:
        body["extra-info"] = key_values(a.extra_info, "--extra-info")
    created = ctx.client.post(f"providers/{provider}/checkpoints",
                              {"checkpoint": body})["checkpoint"]
    op = record_op(ctx, "checkpoint", created["id"], _path(provider, created["id"]),
                   "checkpoint", DONE, FAILED)
    return finish(ctx, op, created, HEAD)


def delete(ctx: Context) -> int:
    provider, record = _target(ctx)
    ctx.client.delete(_path(provider, record["id"]))
    op = record_op(ctx, "checkpoint", record["id"], _path(provider, record["id"]),
                   "checkpoint", {"deleted"}, {"error-deleting", "error", "available"},
                   gone_ok=True)
    if not ctx.args.wait and ctx.fmt == "table":
        print(f"checkpoint {record['id']}: deleting")
        return 0
    return finish(ctx, op, {})


def reset_state(ctx: Context) -> int:
    provider, record = _target(ctx)
    ctx.client.put(_path(provider, record["id"]), {"os-resetState": {"state": ctx.args.state}})
    ctx.emit(ctx.client.get(_path(provider, record["id"]))["checkpoint"])
    return 0


def copy(ctx: Context) -> int:
    a = ctx.args
    plan = find_plan(ctx.client, a.plan)
    provider = a.provider or plan["provider_id"]
    body = {"plan_id": plan["id"], "parameters": parameters(a.param, a.parameters)}
    result = ctx.client.post(f"providers/{provider}/checkpoints/action",
                             {"copy": body})["copy"]
    if not a.wait:
        ctx.emit(result)
        return 0
    finals, ok_all = [], True
    for pair in result.get("checkpoint_id") or []:
        copy_id = pair["checkpoint_copy_id"]
        op = record_op(ctx, "copy", copy_id, _path(provider, copy_id), "checkpoint",
                       COPIED, FAILED)
        ok, record = progress.wait(op, timeout=a.wait_timeout, interval=a.poll_interval)
        ok_all = ok_all and ok
        if record is not None:
            finals.append(record)
    ctx.emit(finals, COLUMNS)
    return 0 if ok_all else 1


def _create_options(p) -> None:
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--provider", metavar="PROVIDER",
                   help="the plan's provider (default: read from the plan)")
    p.add_argument("--extra-info", action="append", metavar="KEY=VALUE",
                   help="extra info for the checkpoint (repeatable)")


def _ids(p) -> None:
    p.add_argument("ids", metavar="[PROVIDER] CHECKPOINT", nargs="+",
                   help="the provider may be left out: then every provider is searched")


def register(subparsers, parents) -> None:
    waiting = [*parents, wait_parent()]
    sub = group(subparsers, "checkpoint", help="checkpoints: protect, watch, delete, copy",
                example="karborctl checkpoint create PLAN --wait")
    p = command(sub, "list", list_, help="list a provider's checkpoints", parents=parents,
                example="karborctl checkpoint list PROVIDER --plan PLAN -o json")
    p.add_argument("provider", metavar="PROVIDER")
    p.add_argument("--plan", metavar="PLAN")
    p.add_argument("--status")
    p.add_argument("--start-date", metavar="YYYY-MM-DD")
    p.add_argument("--end-date", metavar="YYYY-MM-DD")
    p.add_argument("--limit", type=int)
    p.add_argument("--marker")
    p.add_argument("--sort", metavar="KEY:DIR")
    p = command(sub, "show", show, help="show a checkpoint", parents=parents,
                example="karborctl checkpoint show PROVIDER CHECKPOINT")
    _ids(p)
    p = command(sub, "describe", describe, parents=parents,
                help="a checkpoint's status, progress or summary, and each resource's "
                     "status and reason",
                example="karborctl checkpoint describe PROVIDER CHECKPOINT")
    _ids(p)
    p = command(sub, "create", create, help="protect a plan now (start a checkpoint)",
                parents=waiting, example="karborctl checkpoint create PLAN --wait")
    _create_options(p)
    p = command(sub, "delete", delete, help="delete a checkpoint (asynchronous)",
                parents=waiting,
                example="karborctl checkpoint delete PROVIDER CHECKPOINT --wait")
    _ids(p)
    p = command(sub, "reset-state", reset_state, parents=parents,
                help="set a stuck or failed checkpoint to available or error",
                example="karborctl checkpoint reset-state PROVIDER CHECKPOINT --state error")
    _ids(p)
    p.add_argument("--state", choices=["available", "error"], required=True)
    p = command(sub, "copy", copy, parents=waiting,
                help="copy the plan's available checkpoints (to the provider's copy bank)",
                example="karborctl checkpoint copy PLAN --wait")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--provider", metavar="PROVIDER",
                   help="the plan's provider (default: read from the plan)")
    p.add_argument("--param", action="append", metavar="TYPE.KEY=VALUE")
    p.add_argument("--parameters", metavar="JSON", help='{"TYPE": {"KEY": VALUE}}')

    p = command(subparsers, "protect", create, parents=waiting,
                help="protect a plan now: checkpoint create, its provider found from the plan",
                example="karborctl protect PLAN --wait")
    _create_options(p)
