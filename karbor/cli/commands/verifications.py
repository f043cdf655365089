"""``verification ...``: check a checkpoint's data without restoring it."""

from __future__ import annotations

from karbor.cli.commands.base import (
    Context,
    command,
    describe_text,
    find_checkpoint,
    finish,
    group,
    parameters,
    record_op,
    wait_parent,
)
from karbor.cli.commands.restores import only_type

COLUMNS = ["id", "checkpoint_id", "provider_id", "status"]
DONE = {"success"}
FAILED = {"fail", "error"}
HEAD = ["id", "status", "provider_id", "checkpoint_id", "parameters"]


def list_(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get("verifications", status=a.status, limit=a.limit,
                            marker=a.marker, sort=a.sort)["verifications"], COLUMNS)
    return 0


def show(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"verifications/{ctx.args.verification}")["verification"])
    return 0


def describe(ctx: Context) -> int:
    record = ctx.client.get(f"verifications/{ctx.args.verification}")["verification"]
    ctx.emit(record, text=describe_text(record, HEAD))
    return 0


def create(ctx: Context) -> int:
    a = ctx.args
    provider, checkpoint = find_checkpoint(ctx.client, a.checkpoint, a.provider)
    body = {"provider_id": provider, "checkpoint_id": checkpoint["id"],
            "parameters": parameters(a.param, a.parameters, only_type(checkpoint))}
    created = ctx.client.post("verifications", {"verification": body})["verification"]
    op = record_op(ctx, "verification", created["id"], f"verifications/{created['id']}",
                   "verification", DONE, FAILED)
    if created.get("status") in FAILED and not a.wait:
        ctx.emit(created)
        return 1
    return finish(ctx, op, created, HEAD)


def register(subparsers, parents) -> None:
    sub = group(subparsers, "verification", help="verifications of checkpoints",
                example="karborctl verification create CHECKPOINT --wait")
    p = command(sub, "list", list_, help="list verifications", parents=parents,
                example="karborctl verification list -o json")
    p.add_argument("--status")
    p.add_argument("--limit", type=int)
    p.add_argument("--marker")
    p.add_argument("--sort", metavar="KEY:DIR")
    p = command(sub, "show", show, help="show a verification", parents=parents,
                example="karborctl verification show VERIFICATION")
    p.add_argument("verification", metavar="VERIFICATION")
    p = command(sub, "describe", describe, parents=parents,
                help="a verification's status and each resource's status and reason",
                example="karborctl verification describe VERIFICATION")
    p.add_argument("verification", metavar="VERIFICATION")
    p = command(sub, "create", create, parents=[*parents, wait_parent()],
                help="verify a checkpoint (the provider is found if not given)",
                example="karborctl verification create CHECKPOINT --wait")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--provider", metavar="PROVIDER")
    p.add_argument("--param", action="append", metavar="TYPE.KEY=VALUE")
    p.add_argument("--parameters", metavar="JSON", help='{"TYPE": {"KEY": VALUE}}')
