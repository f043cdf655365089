"""``service list|enable|disable``: the Karbor services and their heartbeats (admin)."""

from __future__ import annotations

from karbor.cli.commands.base import Context, command, group

COLUMNS = ["id", "binary", "host", "status", "state", "updated_at", "disabled_reason"]


def list_(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get("os-services", host=a.host, binary=a.binary)["services"],
             COLUMNS)
    return 0


def enable(ctx: Context) -> int:
    ctx.emit(ctx.client.put(f"os-services/{ctx.args.service}",
                            {"status": "enabled"})["service"])
    return 0


def disable(ctx: Context) -> int:
    body = {"status": "disabled"}
    if ctx.args.reason:
        body["disabled_reason"] = ctx.args.reason
    ctx.emit(ctx.client.put(f"os-services/{ctx.args.service}", body)["service"])
    return 0


def register(subparsers, parents) -> None:
    sub = group(subparsers, "service", help="Karbor services",
                example="karborctl service list")
    p = command(sub, "list", list_, help="list services", parents=parents,
                example="karborctl service list --binary karbor-operationengine")
    p.add_argument("--host")
    p.add_argument("--binary")
    p = command(sub, "enable", enable, help="enable an operation engine", parents=parents,
                example="karborctl service enable 3")
    p.add_argument("service", metavar="SERVICE_ID")
    p = command(sub, "disable", disable, help="disable an operation engine", parents=parents,
                example="karborctl service disable 3 --reason maintenance")
    p.add_argument("service", metavar="SERVICE_ID")
    p.add_argument("--reason")
