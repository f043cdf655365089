"""``plan list|show|create|update|delete``: what to protect, with which provider."""

from __future__ import annotations

from karbor.cli.client import CLIError
from karbor.cli.commands.base import (
    Context,
    command,
    group,
    parameters,
    parse_json,
)

COLUMNS = ["id", "name", "description", "provider_id", "status"]


def _resources(ctx: Context) -> list[dict] | None:
    """``--resource TYPE=ID`` looks the instance up (its name and extra_info go into the
    plan, which is what protection plugins read); ``--resources JSON`` is taken as is."""
    a = ctx.args
    out: list[dict] = []
    if a.resources:
        value = parse_json(a.resources, "--resources")
        if not isinstance(value, list):
            raise CLIError("--resources must be a JSON list of {id, type, name[, extra_info]}")
        out.extend(value)
    for item in a.resource or ():
        rtype, sep, rid = item.partition("=")
        if not sep or not rtype or not rid:
            raise CLIError(f"--resource {item!r} is not TYPE=ID")
        inst = ctx.client.get(f"protectables/{rtype}/instances/{rid}")["instance"]
        entry = {"id": inst["id"], "type": inst["type"], "name": inst["name"] or inst["id"]}
        if inst.get("extra_info"):
            entry["extra_info"] = inst["extra_info"]
        out.append(entry)
    if not out and (a.resources is None and not a.resource):
        return None
    return out


def list_(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get("plans", name=a.name, status=a.status, limit=a.limit,
                            marker=a.marker, sort=a.sort)["plans"], COLUMNS)
    return 0


def show(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"plans/{ctx.args.plan}")["plan"])
    return 0


def create(ctx: Context) -> int:
    a = ctx.args
    resources = _resources(ctx)
    if not resources:
        raise CLIError("a plan needs resources: give --resource TYPE=ID or --resources JSON")
    body = {"name": a.name, "provider_id": a.provider, "resources": resources,
            "parameters": parameters(a.param, a.parameters)}
    if a.description is not None:
        body["description"] = a.description
    ctx.emit(ctx.client.post("plans", {"plan": body})["plan"])
    return 0


def update(ctx: Context) -> int:
    a = ctx.args
    body: dict = {}
    for key in ("name", "description", "status"):
        if getattr(a, key) is not None:
            body[key] = getattr(a, key)
    resources = _resources(ctx)
    if resources is not None:
        body["resources"] = resources
    if not body:
        raise CLIError("nothing to update: give --name, --description, --status or resources")
    ctx.emit(ctx.client.put(f"plans/{a.plan}", {"plan": body})["plan"])
    return 0


def delete(ctx: Context) -> int:
    for plan in ctx.args.plan:
        ctx.client.delete(f"plans/{plan}")
    if ctx.fmt == "table":
        for plan in ctx.args.plan:
            print(f"plan {plan} deleted")
    else:
        ctx.emit({})
    return 0


def _resource_options(p) -> None:
    p.add_argument("--resource", action="append", metavar="TYPE=ID",
                   help="a protectable instance (repeatable), looked up for its name")
    p.add_argument("--resources", metavar="JSON",
                   help='the resources as JSON: [{"id", "type", "name", "extra_info"}]')


def register(subparsers, parents) -> None:
    sub = group(subparsers, "plan", help="protection plans",
                example="karborctl plan create docs --provider PROVIDER "
                        "--resource Karbor::Local::Directory=ID")
    p = command(sub, "list", list_, help="list plans", parents=parents,
                example="karborctl plan list --status suspended")
    p.add_argument("--name", help="a regular expression")
    p.add_argument("--status")
    p.add_argument("--limit", type=int)
    p.add_argument("--marker")
    p.add_argument("--sort", metavar="KEY:DIR")
    p = command(sub, "show", show, help="show a plan", parents=parents,
                example="karborctl plan show PLAN -o yaml")
    p.add_argument("plan", metavar="PLAN")
    p = command(sub, "create", create, help="create a plan", parents=parents,
                example="karborctl plan create docs --provider 7f3c2a1e-5b4d-4c6e-9a8f-"
                        "0d1e2f3a4b5c \\\n"
                        "    --resource Karbor::Local::Directory=0b6c...e2")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--provider", required=True, metavar="PROVIDER")
    p.add_argument("--description")
    _resource_options(p)
    p.add_argument("--param", action="append", metavar="TYPE.KEY=VALUE",
                   help="a protect parameter (repeatable)")
    p.add_argument("--parameters", metavar="JSON", help='{"TYPE": {"KEY": VALUE}}')
    p = command(sub, "update", update, help="rename, re-describe, start/suspend a plan or "
                "replace its resources", parents=parents,
                example="karborctl plan update PLAN --name nightly --status started")
    p.add_argument("plan", metavar="PLAN")
    p.add_argument("--name")
    p.add_argument("--description")
    p.add_argument("--status", choices=["suspended", "started"])
    _resource_options(p)
    p = command(sub, "delete", delete, help="delete plans", parents=parents,
                example="karborctl plan delete PLAN")
    p.add_argument("plan", metavar="PLAN", nargs="+")
