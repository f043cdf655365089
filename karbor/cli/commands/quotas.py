"""``quota ...`` and ``quota-class ...``: limits on plans and checkpoints."""

from __future__ import annotations

from karbor.cli.client import CLIError
from karbor.cli.commands.base import Context, command, group


def _project(ctx: Context) -> str:
    """Default: the caller's own project (from the no-auth base, else Keystone's)."""
    if ctx.args.project_id:
        return ctx.args.project_id
    project = ctx.client.project_id()
    if not project:
        raise CLIError("give the PROJECT")
    return project


def _limits(a) -> dict:
    body = {k: getattr(a, k) for k in ("plans", "checkpoints") if getattr(a, k) is not None}
    if not body:
        raise CLIError("nothing to update: give --plans and/or --checkpoints")
    return body


def show(ctx: Context) -> int:
    suffix = "/detail" if ctx.args.detail else ""
    ctx.emit(ctx.client.get(f"quotas/{_project(ctx)}{suffix}")["quota"])
    return 0


def defaults(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"quotas/{_project(ctx)}/defaults")["quota"])
    return 0


def update(ctx: Context) -> int:
    ctx.emit(ctx.client.put(f"quotas/{_project(ctx)}",
                            {"quota": _limits(ctx.args)})["quota"])
    return 0


def delete(ctx: Context) -> int:
    project = _project(ctx)
    ctx.client.delete(f"quotas/{project}")
    if ctx.fmt == "table":
        print(f"quotas of {project} reset to the defaults")
    else:
        ctx.emit({})
    return 0


def class_show(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"quota_classes/{ctx.args.name}")["quota_class"])
    return 0


def class_update(ctx: Context) -> int:
    ctx.emit(ctx.client.put(f"quota_classes/{ctx.args.name}",
                            {"quota_class": _limits(ctx.args)})["quota_class"])
    return 0


def _limit_options(p) -> None:
    p.add_argument("--plans", type=int, metavar="N", help="-1: unlimited")
    p.add_argument("--checkpoints", type=int, metavar="N", help="-1: unlimited")


def register(subparsers, parents) -> None:
    sub = group(subparsers, "quota", help="project quotas",
                example="karborctl quota show --detail")
    for name, handler, text in (("show", show, "a project's quotas"),
                                ("defaults", defaults, "the default quotas"),
                                ("update", update, "set a project's quotas (admin)"),
                                ("delete", delete, "reset a project's quotas to the defaults "
                                                   "(admin)")):
        example = {"show": "karborctl quota show PROJECT --detail",
                   "defaults": "karborctl quota defaults",
                   "update": "karborctl quota update PROJECT --plans 100",
                   "delete": "karborctl quota delete PROJECT"}[name]
        p = command(sub, name, handler, help=text, parents=parents, example=example)
        p.add_argument("project_id", metavar="PROJECT", nargs="?",
                       help="default: your own project")
        if name == "show":
            p.add_argument("--detail", action="store_true", help="limits, usage, reserved")
        if name == "update":
            _limit_options(p)
    sub = group(subparsers, "quota-class", help="quota classes",
                example="karborctl quota-class show default")
    p = command(sub, "show", class_show, help="show a quota class", parents=parents,
                example="karborctl quota-class show default")
    p.add_argument("name", metavar="CLASS")
    p = command(sub, "update", class_update, help="set a quota class's limits (admin)",
                parents=parents, example="karborctl quota-class update default --plans 20")
    p.add_argument("name", metavar="CLASS")
    _limit_options(p)
