"""``trigger ...``: the schedules scheduled operations fire on."""

from __future__ import annotations

from karbor.cli.client import CLIError
from karbor.cli.commands.base import Context, command, group

COLUMNS = ["id", "name", "type", ("pattern", lambda r: (r.get("properties") or {})
                                  .get("pattern")),
           ("start_time", lambda r: (r.get("properties") or {}).get("start_time"))]


def _properties(a, *, create: bool) -> dict:
    props: dict = {}
    if a.pattern is not None:
        props["pattern"] = a.pattern.replace("\\n", "\n")
    if a.format is not None or create:
        props["format"] = a.format or "calendar"
    for key in ("start_time", "end_time"):
        if getattr(a, key) is not None:
            props[key] = getattr(a, key)
    if a.window is not None:
        props["window"] = a.window
    return props


def list_(ctx: Context) -> int:
    a = ctx.args
    ctx.emit(ctx.client.get("triggers", name=a.name, type=a.type, limit=a.limit,
                            marker=a.marker, sort=a.sort)["triggers"], COLUMNS)
    return 0


def show(ctx: Context) -> int:
    ctx.emit(ctx.client.get(f"triggers/{ctx.args.trigger}")["trigger_info"])
    return 0


def create(ctx: Context) -> int:
    a = ctx.args
    if a.pattern is None:
        raise CLIError("a trigger needs --pattern")
    body = {"name": a.name, "type": a.type, "properties": _properties(a, create=True)}
    ctx.emit(ctx.client.post("triggers", {"trigger_info": body})["trigger_info"])
    return 0


def update(ctx: Context) -> int:
    a = ctx.args
    body: dict = {}
    if a.name is not None:
        body["name"] = a.name
    props = _properties(a, create=False)
    if props:
        body["properties"] = props
    if not body:
        raise CLIError("nothing to update: give --name or properties")
    ctx.emit(ctx.client.put(f"triggers/{a.trigger}", {"trigger_info": body})["trigger_info"])
    return 0


def delete(ctx: Context) -> int:
    for trigger in ctx.args.trigger:
        ctx.client.delete(f"triggers/{trigger}")
        if ctx.fmt == "table":
            print(f"trigger {trigger} deleted")
    if ctx.fmt != "table":
        ctx.emit({})
    return 0


def _props(p) -> None:
    p.add_argument("--pattern", help="iCalendar VEVENT with an RRULE, or a crontab line "
                   "(as the server's time_format says); a literal \\n is a newline")
    p.add_argument("--format", choices=["calendar", "crontab"])
    p.add_argument("--start-time", dest="start_time", metavar="'YYYY-MM-DD HH:MM:SS'")
    p.add_argument("--end-time", dest="end_time", metavar="'YYYY-MM-DD HH:MM:SS'")
    p.add_argument("--window", type=int, metavar="SECONDS")


def register(subparsers, parents) -> None:
    sub = group(subparsers, "trigger", help="time triggers",
                example="karborctl trigger create hourly --format crontab "
                        "--pattern '0 * * * *'")
    p = command(sub, "list", list_, help="list triggers", parents=parents,
                example="karborctl trigger list")
    p.add_argument("--name", help="a regular expression")
    p.add_argument("--type")
    p.add_argument("--limit", type=int)
    p.add_argument("--marker")
    p.add_argument("--sort", metavar="KEY:DIR")
    p = command(sub, "show", show, help="show a trigger", parents=parents,
                example="karborctl trigger show TRIGGER")
    p.add_argument("trigger", metavar="TRIGGER")
    p = command(sub, "create", create, help="create a trigger", parents=parents,
                example="karborctl trigger create weekly --pattern "
                        "'BEGIN:VEVENT\\nRRULE:FREQ=WEEKLY;INTERVAL=1;\\nEND:VEVENT'")
    p.add_argument("name", metavar="NAME")
    p.add_argument("--type", default="time")
    _props(p)
    p = command(sub, "update", update, help="rename a trigger or replace its schedule",
                parents=parents,
                example="karborctl trigger update TRIGGER --pattern '0 */2 * * *' "
                        "--start-time '2030-01-01 00:00:00'")
    p.add_argument("trigger", metavar="TRIGGER")
    p.add_argument("--name")
    _props(p)
    p = command(sub, "delete", delete, help="delete triggers", parents=parents,
                example="karborctl trigger delete TRIGGER")
    p.add_argument("trigger", metavar="TRIGGER", nargs="+")
