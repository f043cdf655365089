# PYTHON_ARGCOMPLETE_OK
"""``karborctl``: the parser, the shortcuts and the one place errors become exit statuses.

Exit status: 0 success, 1 an API error, a failed or timed-out operation or a local
error (always one ``error: ...`` line on stderr, never a traceback), 2 a usage error,
130 interrupted.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from collections.abc import Sequence

from karbor.cli import completion
from karbor.cli.client import Client, CLIError, Settings
from karbor.cli.commands import MODULES
from karbor.cli.commands.base import Context, Formatter, command
from karbor.cli.output import FORMATS

PROG = "karborctl"
EXAMPLES = """\
examples:
  export KARBOR_URL=http://127.0.0.1:8799 KARBOR_TOKEN=demo:$PROJECT   # no-auth server
  karborctl provider list
  karborctl plan create docs --provider PROVIDER --resource Karbor::Local::Directory=ID
  karborctl protect PLAN --wait
  karborctl restore CHECKPOINT --param restore_path=/srv/restored --wait
  karborctl checkpoint describe PROVIDER CHECKPOINT -o yaml
  source <(karborctl completion bash)

Keystone: OS_* variables or --os-cloud NAME (clouds.yaml); the endpoint is the catalog's
data-protect service (--url overrides it)."""
VALUE_OPTIONS = {"--url", "--token", "--project", "--user", "--os-cloud", "--os-region-name",
                 "--os-interface", "-o", "--output", "--http-timeout"}


def global_parent() -> argparse.ArgumentParser:
    """Options valid before and after the command; SUPPRESS keeps a subcommand's parser
    from resetting what was given before the command."""
    parser = argparse.ArgumentParser(add_help=False)
    s = argparse.SUPPRESS
    g = parser.add_argument_group("connection and output")
    g.add_argument("-o", "--output", choices=FORMATS, default=s,
                   help="table (default), json or yaml; json/yaml print the API record(s)")
    g.add_argument("--url", default=s, metavar="URL",
                   help="Karbor URL: http://HOST:8799 (with --project or a token) or "
                        ".../v1/PROJECT (env KARBOR_URL); with Keystone it overrides the "
                        "catalog")
    g.add_argument("--token", default=s, metavar="TOKEN",
                   help="no-auth token 'user:project' (env KARBOR_TOKEN)")
    g.add_argument("--project", default=s, metavar="PROJECT",
                   help="project id for the no-auth URL (env KARBOR_PROJECT)")
    g.add_argument("--user", default=s, metavar="USER", help=argparse.SUPPRESS)
    g.add_argument("--os-cloud", default=s, metavar="CLOUD",
                   help="a cloud of clouds.yaml (env OS_CLOUD)")
    g.add_argument("--os-region-name", default=s, metavar="REGION")
    g.add_argument("--os-interface", default=s, metavar="INTERFACE",
                   help="public, internal or admin endpoint")
    g.add_argument("--insecure", action="store_true", default=s,
                   help="do not verify TLS certificates")
    g.add_argument("--http-timeout", type=float, default=s, metavar="SECONDS",
                   help="timeout of one HTTP request (default 60)")
    return parser


def completion_command(ctx: Context) -> int:
    print(completion.bash(ctx.args.parser, PROG), end="")
    return 0


def build_parser() -> argparse.ArgumentParser:
    common = global_parent()
    parser = argparse.ArgumentParser(
        prog=PROG, parents=[common], formatter_class=Formatter, epilog=EXAMPLES,
        description="Karbor's command-line client: every v1 resource, --wait with progress.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in MODULES:
        module.register(sub, [common])
    p = command(sub, "completion", completion_command, parents=[],
                help="print a shell completion script",
                example="karborctl completion bash > ~/.local/share/bash-completion/completions/"
                        "karborctl\nsource <(karborctl completion bash)")
    p.add_argument("shell", choices=["bash"])
    p.set_defaults(parser=parser)
    return parser


def expand_shortcuts(argv: list[str]) -> list[str]:
    """``restore CHECKPOINT ...`` is ``restore create CHECKPOINT ...``."""
    from karbor.cli.commands.restores import SUBCOMMANDS

    i = 0
    while i < len(argv):
        word = argv[i]
        if word in VALUE_OPTIONS:
            i += 2
            continue
        if word.startswith("-"):
            i += 1
            continue
        if word == "restore" and i + 1 < len(argv):
            nxt = argv[i + 1]
            if nxt not in SUBCOMMANDS and not nxt.startswith("-"):
                return [*argv[: i + 1], "create", *argv[i + 1:]]
        return argv
    return argv


def settings(args: argparse.Namespace) -> Settings:
    env = os.environ
    return Settings(
        url=getattr(args, "url", None) or env.get("KARBOR_URL") or None,
        token=getattr(args, "token", None) or env.get("KARBOR_TOKEN") or None,
        project=getattr(args, "project", None) or env.get("KARBOR_PROJECT") or None,
        user=getattr(args, "user", None),
        os_cloud=getattr(args, "os_cloud", None),
        region=getattr(args, "os_region_name", None),
        interface=getattr(args, "os_interface", None),
        insecure=bool(getattr(args, "insecure", False)),
        timeout=getattr(args, "http_timeout", None) or 60.0)


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    try:
        import argcomplete

        argcomplete.autocomplete(parser)
    except ImportError:  # optional: `completion bash` works without it
        pass
    args = parser.parse_args(expand_shortcuts(list(sys.argv[1:] if argv is None else argv)))
    ctx = Context(args=args, client=Client(settings(args)))
    try:
        return args.handler(ctx)
    except CLIError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\ninterrupted (an operation already started goes on on the server)",
              file=sys.stderr)
        return 130
    except BrokenPipeError:
        try:
            sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - silence the exit flush
        except OSError:
            pass
        return 1
    except Exception as exc:  # noqa: BLE001 - one line, never a traceback
        if os.environ.get("KARBORCTL_DEBUG"):
            traceback.print_exc()
        print(f"error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
