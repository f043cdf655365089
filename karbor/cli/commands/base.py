"""What every command module shares: how a command is declared, parsed and answered.

Each command gets an epilog with an example (``--help`` must show one), the global
options (so ``karborctl plan list --url ...`` works as well as ``karborctl --url ...
plan list``) and ``-o``. Commands return their exit status; errors are raised as
:class:`CLIError` and become one line in ``main``.
"""

from __future__ import annotations

import argparse
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from karbor.cli import output, progress, records
from karbor.cli.client import APIError, Client, CLIError

_UUID = re.compile(r"^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?"
                   r"[0-9a-fA-F]{12}$")


@dataclass
class Context:
    args: argparse.Namespace
    client: Client

    @property
    def fmt(self) -> str:
        return getattr(self.args, "output", None) or "table"

    def emit(self, data: Any, columns: Sequence[output.Column] | None = None,
             text: str | None = None) -> None:
        output.emit(data, self.fmt, columns=columns, text=text)


Handler = Callable[[Context], int]


class Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the examples' line breaks."""


def command(subparsers, name: str, handler: Handler, *, help: str, example: str,  # noqa: A002
            parents: Sequence[argparse.ArgumentParser], description: str | None = None,
            aliases: Sequence[str] = ()) -> argparse.ArgumentParser:
    """A leaf command: its parser, with the example as epilog and ``handler`` to run."""
    epilog = "example:\n" + "\n".join(f"  {line}" for line in example.strip().splitlines())
    parser = subparsers.add_parser(name, help=help, description=description or help,
                                   epilog=epilog, parents=list(parents),
                                   formatter_class=Formatter, aliases=list(aliases))
    parser.set_defaults(handler=handler)
    return parser


def group(subparsers, name: str, *, help: str, example: str,  # noqa: A002
          aliases: Sequence[str] = ()) -> Any:
    """A resource (``plan``, ``checkpoint`` ...) whose subcommands are its verbs."""
    epilog = "example:\n" + "\n".join(f"  {line}" for line in example.strip().splitlines())
    parser = subparsers.add_parser(name, help=help, description=help, epilog=epilog,
                                   formatter_class=Formatter, aliases=list(aliases))
    sub = parser.add_subparsers(dest=f"{name}_command", metavar="COMMAND", required=True)
    return sub


def wait_parent() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--wait", action="store_true",
                        help="wait until the operation ends; exit 0 only if it succeeded")
    parser.add_argument("--wait-timeout", type=float, metavar="SECONDS", default=None,
                        help="give up waiting after SECONDS (the operation goes on)")
    parser.add_argument("--poll-interval", type=float, metavar="SECONDS", default=0.5,
                        help=argparse.SUPPRESS)
    return parser


# --------------------------------------------------------------------------- parsing helpers


def parse_json(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise CLIError(f"{what} is not valid JSON: {exc}") from None


def scalar(text: str) -> Any:
    """``true``/``false`` become booleans (restore's ``in_place``); the rest stays text."""
    if text.lower() in ("true", "false"):
        return text.lower() == "true"
    return text


def key_values(items: Sequence[str] | None, what: str) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise CLIError(f"{what} {item!r} is not KEY=VALUE")
        out[key] = scalar(value)
    return out


def parameters(params: Sequence[str] | None, parameters_json: str | None,
               default_type: Callable[[], str | None] | None = None) -> dict[str, dict]:
    """``--parameters JSON`` merged with ``--param TYPE.KEY=VALUE`` (TYPE may be
    ``Type#resource-id``); without ``TYPE.`` the only resource type of the checkpoint."""
    result: dict[str, dict] = {}
    if parameters_json:
        value = parse_json(parameters_json, "--parameters")
        if not isinstance(value, dict) or not all(isinstance(v, dict) for v in value.values()):
            raise CLIError('--parameters must be a JSON object {"TYPE": {"KEY": VALUE}}')
        result.update(value)
    for item in params or ():
        left, sep, value = item.partition("=")
        if not sep:
            raise CLIError(f"--param {item!r} is not TYPE.KEY=VALUE")
        rtype, dot, key = left.rpartition(".")
        if not dot:
            rtype = default_type() if default_type else None
            if not rtype:
                raise CLIError(f"--param {item!r}: say which resource type, as TYPE.KEY=VALUE")
        if not key:
            raise CLIError(f"--param {item!r} has no KEY")
        result.setdefault(rtype, {})[key] = scalar(value)
    return result


# --------------------------------------------------------------------------- API helpers


def get_or_none(client: Client, path: str, key: str) -> dict | None:
    """The record, or None when the API says 404 (a delete finished)."""
    try:
        return client.get(path)[key]
    except APIError as exc:
        if exc.code == 404:
            return None
        raise


def find_plan(client: Client, plan: str) -> dict:
    """A plan by id, or by its name when that names exactly one plan of the project."""
    if _UUID.match(plan):
        return client.get(f"plans/{plan}")["plan"]
    named = [p for p in client.get("plans", name=f"^{re.escape(plan)}$")["plans"]
             if p["name"] == plan]
    if len(named) != 1:
        raise CLIError(f"no plan is named {plan!r}" if not named
                       else f"{len(named)} plans are named {plan!r}: give its id")
    return named[0]


def find_checkpoint(client: Client, checkpoint_id: str,
                    provider_id: str | None = None) -> tuple[str, dict]:
    """(provider id, checkpoint): given the provider, or by asking every provider."""
    if provider_id:
        return provider_id, client.get(
            f"providers/{provider_id}/checkpoints/{checkpoint_id}")["checkpoint"]
    for provider in client.get("providers")["providers"]:
        found = get_or_none(client, f"providers/{provider['id']}/checkpoints/{checkpoint_id}",
                            "checkpoint")
        if found is not None:
            return provider["id"], found
    raise CLIError(f"checkpoint {checkpoint_id} not found with any provider "
                   "(give --provider)")


def finish(ctx: Context, op: progress.Operation, first: dict | None,
           head: Sequence[str] | None = None) -> int:
    """After a create/delete: wait if asked to, print the (final) record, exit status.

    A table after waiting is the ``describe`` view: what a person wants to know then is
    how it went, resource by resource, not every field.
    """
    args = ctx.args
    if not getattr(args, "wait", False):
        ctx.emit(first if first is not None else {})
        return 0
    ok, record = progress.wait(op, timeout=args.wait_timeout, interval=args.poll_interval)
    if record is None:
        ctx.emit({}, text="")
    else:
        ctx.emit(record, text=describe_text(record, head) if head else None)
    return 0 if ok else 1


def record_op(ctx: Context, kind: str, record_id: str, path: str, key: str, ok: set[str],
              failed: set[str], gone_ok: bool = False) -> progress.Operation:
    return progress.Operation(kind=kind, id=record_id,
                              fetch=lambda: get_or_none(ctx.client, path, key),
                              ok=ok, failed=failed, gone_ok=gone_ok)


def describe_text(record: dict, head: Sequence[str]) -> str:
    """The record's main fields, its progress or summary, then one row per resource."""
    fields = {k: record.get(k) for k in head if k in record}
    plan = record.get("protection_plan")
    if isinstance(plan, dict):
        fields["plan"] = f"{plan.get('name')} ({plan.get('id')})"
    lines = [output.properties(fields)]
    if record.get("reason"):
        lines.append(f"reason: {' '.join(str(record['reason']).split())}")
    if record.get("progress") and record.get("status") not in (None,) and not \
            record.get("summary"):
        prog = record["progress"]
        percent = prog.get("percent")
        text = records.progress_text(prog)
        lines.append("progress: " + (f"{percent:.1f}%" if percent is not None else "?")
                     + (f" ({text})" if text else ""))
    if record.get("summary"):
        lines.append(f"summary: {records.summary_text(record['summary'])}")
    rows = records.resources(record)
    if rows:
        lines.append(output.table(rows, ["resource", "status", "reason"]))
    else:
        lines.append("resources: none reported")
    return "\n".join(lines)
