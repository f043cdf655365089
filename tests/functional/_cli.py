"""Helpers to drive the karborclient CLI and read its prettytable output."""

from __future__ import annotations

import ast
import json
import re
import time
from collections.abc import Callable, Iterable

ERROR_RE = re.compile(r"""^b(['"])(?P<message>.*?) \(HTTP (?P<code>\d{3})\)""", re.S | re.M)


def parse_table(output: str) -> list[list[str]]:
    """Rows of the first prettytable in ``output`` (header included) as lists of cells.

    Multi-line cells are joined with newlines: a text line whose first cell is empty
    continues the row above it (both list tables and Property/Value tables put a
    non-empty value in the first column of every new row).
    """
    rows: list[list[str]] = []
    started = False
    for line in output.splitlines():
        if line.startswith("+"):
            started = True
            continue
        if not (started and line.startswith("|")):
            if started and rows:
                break
            continue
        cells = [c.strip() for c in line.split("|")[1:-1]]
        if rows and len(rows) > 1 and cells and cells[0] == "" and len(cells) == len(rows[-1]):
            rows[-1] = [f"{old}\n{new}" if new else old for old, new in zip(rows[-1], cells,
                                                                            strict=True)]
        else:
            rows.append(cells)
    return rows


def rows(output: str) -> list[dict[str, str]]:
    """A list table as dicts keyed by the header cells."""
    table = parse_table(output)
    assert table, f"no table in output:\n{output}"
    header, *body = table
    return [dict(zip(header, row, strict=True)) for row in body]


def props(output: str) -> dict[str, str]:
    """A Property/Value table as a dict."""
    table = parse_table(output)
    assert table and table[0] == ["Property", "Value"], f"no property table in:\n{output}"
    return {row[0]: row[1] for row in table[1:]}


def column(output: str, name: str) -> list[str]:
    return [r[name] for r in rows(output)]


def as_json(value: str):
    return json.loads(value)


def as_python(value: str):
    """A value the client printed with ``str()`` (a Python repr)."""
    return ast.literal_eval(value)


def error(stderr: str) -> tuple[str, int]:
    """(message, HTTP code) of an API error as the client prints it: ``b'<msg> (HTTP <code>)'``."""
    match = ERROR_RE.search(stderr)
    assert match, f"no API error (b'... (HTTP nnn)') in client output:\n{stderr}"
    return match.group("message"), int(match.group("code"))


def wait_for(fetch: Callable[[], str | None], targets: Iterable[str], *, timeout: float = 30,
             interval: float = 0.2, what: str = "status") -> str:
    """Poll ``fetch()`` (returns a status) until it is one of ``targets``; return it."""
    targets = set(targets)
    deadline = time.monotonic() + timeout
    last = None
    while True:
        last = fetch()
        if last in targets:
            return last
        if time.monotonic() > deadline:
            raise AssertionError(f"{what} is {last!r}, not one of {sorted(targets)} "
                                 f"after {timeout}s")
        time.sleep(interval)
