"""``restore ...``: bring a checkpoint back; ``karborctl restore CHECKPOINT`` is
``restore create`` (main rewrites it), the provider found by asking each provider."""

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

COLUMNS = ["id", "checkpoint_id", "provider_id", "status"]
DONE = {"success"}
FAILED = {"fail", "error"}
HEAD = ["id", "status", "provider_id", "checkpoint_id", "restore_target", "parameters"]
SUBCOMMANDS = ("list", "show", "describe", "create")


def only_type(checkpoint: dict):
    """``--param KEY=VALUE`` is for the checkpoint's type when it protected only one."""
    def pick() -> str | None:
        types = {r.get("type") for r in (checkpoint.get("protection_plan") or {})
                 .get("resources") or []}
        return types.pop() if len(types) == 1 else None
    return pick


def list_(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get("restores", status=a.status, limit=a.limit,
                            marker=a.marker, sort=a.sort)["restores"], COLUMNS)
    return 0


def show(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"restores/{ctx.args.restore}")["restore"])
    return 0


def describe(ctx: Context) -> int:
    record = ctx.client.get(f"restores/{ctx.args.restore}")["restore"]
    ctx.emit(record, text=describe_text(record, HEAD))
    return 0


def create(ctx: Context) -> int:
    a = ctx.args
    provider, checkpoint = find_checkpoint(ctx.client, a.checkpoint, a.provider)
    body: dict = {"provider_id": provider, "checkpoint_id": checkpoint["id"],
                  "parameters": parameters(a.param, a.parameters, only_type(checkpoint))}
    if a.target:
        body["restore_target"] = a.target
    if a.target_username or a.target_password:
        body["restore_auth"] = {"type": "password", "username": a.target_username or "",
                                "password": a.target_password or ""}
    created = ctx.client.post("restores", {"restore": body})["restore"]
    op = record_op(ctx, "restore", created["id"], f"restores/{created['id']}", "restore",
                   DONE, FAILED)
    if created.get("status") in FAILED and not a.wait:
        ctx.emit(created)
        return 1
    return finish(ctx, op, created, HEAD)


def register(subparsers, parents) -> None:
    sub = group(subparsers, "restore", help="restores (also: karborctl restore CHECKPOINT)",
                example="karborctl restore CHECKPOINT --param "
                        "Karbor::Local::Directory.restore_path=/srv/back --wait")
    p = command(sub, "list", list_, help="list restores", parents=parents,
                example="karborctl restore list --status fail")
    p.add_argument("--status")
    p.add_argument("--limit", type=int)
    p.add_argument("--marker")
    p.add_argument("--sort", metavar="KEY:DIR")
    p = command(sub, "show", show, help="show a restore", parents=parents,
                example="karborctl restore show RESTORE -o json")
    p.add_argument("restore", metavar="RESTORE")
    p = command(sub, "describe", describe, parents=parents,
                help="a restore's status, progress or summary, and each resource's status "
                     "and reason", example="karborctl restore describe RESTORE")
    p.add_argument("restore", metavar="RESTORE")
    p = command(sub, "create", create, parents=[*parents, wait_parent()],
                help="restore a checkpoint (the provider is found if not given)",
                example="karborctl restore create CHECKPOINT --param "
                        "restore_path=/srv/restored --wait\n"
                        "karborctl restore CHECKPOINT --parameters "
                        "'{\"Karbor::Local::Directory\": {\"in_place\": true}}' --wait")
    p.add_argument("checkpoint", metavar="CHECKPOINT")
    p.add_argument("--provider", metavar="PROVIDER")
    p.add_argument("--param", action="append", metavar="TYPE.KEY=VALUE",
                   help="a restore parameter (repeatable); TYPE may be left out when the "
                        "checkpoint holds one resource type")
    p.add_argument("--parameters", metavar="JSON", help='{"TYPE": {"KEY": VALUE}}')
    p.add_argument("--target", metavar="URL", help="restore_target")
    p.add_argument("--target-username", metavar="USER")
    p.add_argument("--target-password", metavar="PASSWORD")
