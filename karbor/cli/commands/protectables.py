"""``protectable list|show|instances|instance``: what can be put into a plan."""

from __future__ import annotations

from karbor.cli.commands.base import Context, command, group, parse_json

COLUMNS = ["id", "type", "name", "extra_info"]


def _parameters(ctx: Context) -> str | None:
    """The API wants a Python dict literal in the query (as python-karborclient sends)."""
    if not ctx.args.parameters:
        return None
    value = parse_json(ctx.args.parameters, "--parameters")
    return repr(value)


def list_(ctx: Context) -> int:
    ctx.emit(ctx.client.get("protectables")["protectable_type"])
    return 0


def show(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"protectables/{ctx.args.type}")["protectable_type"])
    return 0


def instances(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get(f"protectables/{a.type}/instances", parameters=_parameters(ctx),
                            limit=a.limit, marker=a.marker)["instances"], COLUMNS)
    return 0


def instance(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get(f"protectables/{a.type}/instances/{a.id}",
                            parameters=_parameters(ctx))["instance"])
    return 0


def register(subparsers, parents) -> None:
    sub = group(subparsers, "protectable", help="protectable resource types and instances",
                example="karborctl protectable instances Karbor::Local::Directory")
    command(sub, "list", list_, help="list the protectable resource types", parents=parents,
            example="karborctl protectable list")
    p = command(sub, "show", show, help="show a type and the types that depend on it",
                parents=parents, example="karborctl protectable show OS::Nova::Server")
    p.add_argument("type", metavar="TYPE")
    p = command(sub, "instances", instances, help="list the instances of a type",
                parents=parents,
                example="karborctl protectable instances Karbor::Local::Directory -o json")
    p.add_argument("type", metavar="TYPE")
    p.add_argument("--parameters", metavar="JSON", help="plugin parameters, a JSON object")
    p.add_argument("--limit", type=int)
    p.add_argument("--marker")
    p = command(sub, "instance", instance, help="show one instance and its dependents",
                parents=parents,
                example="karborctl protectable instance Karbor::Local::Directory ID")
    p.add_argument("type", metavar="TYPE")
    p.add_argument("id", metavar="ID")
    p.add_argument("--parameters", metavar="JSON", help="plugin parameters, a JSON object")
