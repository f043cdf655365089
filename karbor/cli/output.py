"""Rendering records as a table (people), JSON or YAML (scripts).

JSON and YAML print exactly the API's record(s), unwrapped from their envelope and nothing
added, so ``karborctl ... -o json | jq`` sees what the API said. Tables pick columns and
flatten nested values; they are for reading, not parsing.
"""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Sequence
from typing import IO, Any

FORMATS = ("table", "json", "yaml")


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dict | list):
        return json.dumps(value, sort_keys=True, ensure_ascii=False)
    return str(value)


def _grid(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A plain box table; on a terminal, long cells are wrapped to fit its width."""
    widths = [len(h) for h in header]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], *(len(line) for line in cell.split("\n") or [""]))
    # Cut to the terminal only on a terminal: piped into a file or a pager, whole lines
    # keep ids intact.
    total = shutil.get_terminal_size((160, 24)).columns if sys.stdout.isatty() else 1 << 30
    budget = max(total - 3 * len(widths) - 1, 20 * len(widths))
    while sum(widths) > budget and max(widths) > 20:
        widest = widths.index(max(widths))
        widths[widest] -= 1

    def fit(text: str, width: int) -> list[str]:
        out = []
        for line in text.split("\n") or [""]:
            while len(line) > width:
                out.append(line[:width])
                line = line[width:]
            out.append(line)
        return out

    sep = "+" + "+".join("-" * (w + 2) for w in widths) + "+"
    lines = [sep, "| " + " | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))
             + " |", sep]
    for row in rows:
        cells = [fit(c, w) for c, w in zip(row, widths, strict=True)]
        height = max(len(c) for c in cells)
        for i in range(height):
            lines.append("| " + " | ".join(
                (c[i] if i < len(c) else "").ljust(w)
                for c, w in zip(cells, widths, strict=True)) + " |")
    lines.append(sep)
    return "\n".join(lines)


Column = str | tuple[str, Callable[[dict], Any]]


def table(records: list[dict] | list[Any], columns: Sequence[Column] | None = None) -> str:
    """A list as rows; plain values (e.g. protectable types) as a one-column table.

    A column is a key of the records, or (header, function of the record) for a value
    that has to be dug out (e.g. a checkpoint's plan name).
    """
    if records and not isinstance(records[0], dict):
        return _grid(["Value"], [[_cell(r)] for r in records])
    if columns is None:
        columns = list(records[0]) if records else ["id"]
    header = [c if isinstance(c, str) else c[0] for c in columns]
    getters = [(lambda r, k=c: r.get(k)) if isinstance(c, str) else c[1] for c in columns]
    rows = [[_cell(get(r)) for get in getters] for r in records]
    return _grid(header, rows)


def properties(record: dict) -> str:
    """One record as Property/Value rows, every field shown."""
    rows = [[str(k), _cell(v)] for k, v in record.items()]
    return _grid(["Property", "Value"], rows)


def dump(data: Any, fmt: str) -> str:
    """``data`` as JSON or YAML text (YAML needs PyYAML, a dependency)."""
    if fmt == "json":
        return json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False)
    if fmt == "yaml":
        import yaml

        return yaml.safe_dump(data, sort_keys=False, allow_unicode=True,
                              default_flow_style=False).rstrip("\n")
    raise ValueError(fmt)


def emit(data: Any, fmt: str, *, columns: Sequence[Column] | None = None,
         stream: IO[str] | None = None, text: str | None = None) -> None:
    """Print ``data`` in ``fmt``; ``text`` replaces the default table when given."""
    stream = stream or sys.stdout
    if fmt in ("json", "yaml"):
        out = dump(data, fmt)
    elif text is not None:
        out = text
    elif isinstance(data, list):
        out = table(data, columns)
    elif isinstance(data, dict):
        out = properties(data) if data else ""
    else:
        out = _cell(data)
    if out:
        print(out, file=stream)
    stream.flush()
