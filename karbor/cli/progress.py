"""``--wait``: poll an asynchronous operation until it ends, showing how it goes.

On a terminal one line is redrawn in place (status, bar, percent, resources, bytes, rate,
ETA; a spinner and the elapsed time when the server reports no progress). Anywhere else
(CI logs, pipes) a plain line is printed when the status changes or the percent passes
another tenth, so logs stay short. All of it goes to stderr: stdout keeps the record, so
``-o json --wait`` still prints parseable JSON.
"""

from __future__ import annotations

import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO

from karbor.cli import records
from karbor.cli.client import CLIError

SPINNER = "|/-\\"


@dataclass
class Operation:
    """What to poll and which statuses end it."""

    kind: str
    id: str
    fetch: Callable[[], dict | None]  # None: the record is gone (HTTP 404)
    ok: set[str]
    failed: set[str]
    gone_ok: bool = False  # a delete: 404 means it succeeded


class Display:
    """The bar on a terminal, the plain lines elsewhere."""

    def __init__(self, op: Operation, stream: IO[str], tty: bool):
        self.op = op
        self.stream = stream
        self.tty = tty
        self.started = time.monotonic()
        self.frame = 0
        self.last_status: str | None = None
        self.last_tenth = -1
        self.drawn = False

    def _label(self) -> str:
        return f"{self.op.kind} {self.op.id}"

    def _bar_line(self, record: dict) -> str:
        status = record.get("status") or "?"
        progress = record.get("progress") or {}
        percent = progress.get("percent")
        details = records.progress_text(progress)
        columns = shutil.get_terminal_size((100, 24)).columns
        if percent is None:
            self.frame += 1
            spin = SPINNER[self.frame % len(SPINNER)]
            elapsed = records.human_duration(time.monotonic() - self.started)
            line = f"{status} {spin} {elapsed}" + (f"  {details}" if details else "")
        else:
            tail = f" {percent:5.1f}%" + (f"  {details}" if details else "")
            width = max(10, min(40, columns - len(status) - len(tail) - 4))
            filled = int(round(width * min(max(percent, 0.0), 100.0) / 100.0))
            line = f"{status} [{'#' * filled}{'-' * (width - filled)}]{tail}"
        return line[: max(columns - 1, 20)]

    def update(self, record: dict) -> None:
        if self.tty:
            self.stream.write("\r" + self._bar_line(record) + "\x1b[K")
            self.drawn = True
            self.stream.flush()
            return
        status = record.get("status")
        progress = record.get("progress") or {}
        percent = progress.get("percent")
        tenth = int(percent // 10) if percent is not None else -1
        if status != self.last_status or tenth > self.last_tenth:
            self.last_status = status
            self.last_tenth = tenth
            text = f"{self._label()}: {status}"
            if percent is not None:
                text += f" {percent:.0f}%"
            details = records.progress_text(progress)
            if details:
                text += f" ({details})"
            print(text, file=self.stream, flush=True)

    def clear(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self.drawn = False

    def final(self, record: dict | None, succeeded: bool) -> None:
        self.clear()
        if record is None:
            print(f"{self._label()}: deleted", file=self.stream, flush=True)
            return
        status = record.get("status")
        elapsed = time.monotonic() - self.started
        if succeeded:
            detail = records.summary_text(record.get("summary")) or \
                f"{records.human_duration(elapsed)}"
            print(f"{self._label()}: {status} ({detail})", file=self.stream, flush=True)
            return
        print(f"error: {self._label()} ended {status}", file=self.stream, flush=True)
        for line in records.reasons(record):
            print(f"  {line}", file=self.stream, flush=True)


def wait(op: Operation, *, timeout: float | None = None, interval: float = 0.5,
         stream: IO[str] | None = None, tty: bool | None = None) -> tuple[bool, dict | None]:
    """Poll until ``op`` ends; (succeeded, last record or None when gone)."""
    stream = stream or sys.stderr
    if tty is None:
        tty = stream.isatty()
    display = Display(op, stream, tty)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            record = op.fetch()
            if record is None:
                display.final(None, op.gone_ok)
                if not op.gone_ok:
                    print(f"error: {op.kind} {op.id} disappeared", file=stream, flush=True)
                return op.gone_ok, None
            status = record.get("status")
            if status in op.ok or status in op.failed:
                succeeded = status in op.ok
                display.final(record, succeeded)
                return succeeded, record
            display.update(record)
            if deadline is not None and time.monotonic() > deadline:
                display.clear()
                raise CLIError(f"gave up waiting after {timeout:g} s: {op.kind} {op.id} "
                               f"is still {status} (the operation goes on)")
            time.sleep(interval)
    except BaseException:
        display.clear()
        raise
