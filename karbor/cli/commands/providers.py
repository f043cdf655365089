"""``provider list|show``: the providers are read-only (they come from providers.d)."""

from __future__ import annotations

from karbor.cli.commands.base import Context, command, group

COLUMNS = ["id", "name", "description"]


def list_(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get("providers", name=a.name, limit=a.limit,
                            marker=a.marker)["providers"], COLUMNS)
    return 0


def show(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"providers/{ctx.args.provider}")["provider"])
    return 0


def register(subparsers, parents) -> None:
    sub = group(subparsers, "provider", help="protection providers (read-only)",
                example="karborctl provider list")
    p = command(sub, "list", list_, help="list the providers", parents=parents,
                example="karborctl provider list -o json")
    p.add_argument("--name")
    p.add_argument("--limit", type=int)
    p.add_argument("--marker")
    p = command(sub, "show", show, help="show a provider and its parameter schemas",
                parents=parents,
                example="karborctl provider show 7f3c2a1e-5b4d-4c6e-9a8f-0d1e2f3a4b5c")
    p.add_argument("provider", metavar="PROVIDER")
