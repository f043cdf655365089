"""karborctl's waiting display and argument helpers, on records made up here: the progress
fields may be missing (older servers), partial, or complete; the display never fails."""

from __future__ import annotations

import io

import pytest

from karbor.cli import progress, records
from karbor.cli.client import CLIError, noauth_base
from karbor.cli.commands.base import parameters
from karbor.cli.main import expand_shortcuts

KEY = "Karbor::Local::Directory#1"


def _run(states: list[dict | None], *, tty: bool, ok=("available",), failed=("error",),
         gone_ok: bool = False) -> tuple[bool, dict | None, str]:
    feed = iter(states)
    op = progress.Operation(kind="checkpoint", id="cp1", fetch=lambda: next(feed),
                            ok=set(ok), failed=set(failed), gone_ok=gone_ok)
    out = io.StringIO()
    ok_, record = progress.wait(op, interval=0, stream=out, tty=tty)
    return ok_, record, out.getvalue()


FULL = {"status": "protecting", "progress": {
    "resources": {"total": 3, "done": 1, "failed": 0},
    "bytes": {"total": 2 * 1024 ** 3, "done": 1024 ** 3}, "files": {"total": 10, "done": 4},
    "percent": 50.0, "rate_bytes_per_second": 1.2e8, "eta_seconds": 12.0,
    "updated_at": "2026-01-01T00:00:00Z"}}
DONE = {"status": "available", "summary": {"duration_seconds": 1.5, "logical_bytes": 1024,
                                           "bytes_added": 512, "dedup_ratio": 2.0,
                                           "resources": {KEY: {"status": "available",
                                                               "reason": None}}}}


def test_bar_on_a_terminal_with_every_field():
    ok, record, out = _run([FULL, DONE], tty=True)
    assert ok and record is DONE
    bar = out.split("\r")[1]
    assert bar.startswith("protecting [")
    assert " 50.0%" in bar
    assert "1/3 resources" in bar and "1.0 GiB/2.0 GiB" in bar and "4/10 files" in bar
    assert "114.4 MiB/s" in bar and "ETA 12s" in bar
    assert out.endswith("checkpoint cp1: available (1.5s, 1.0 KiB read, 512 B added, "
                        "dedup 2.00x)\n")


def test_without_progress_fields_a_spinner_and_the_elapsed_time():
    ok, _record, out = _run([{"status": "protecting"}, {"status": "protecting"},
                             {"status": "available"}], tty=True)
    assert ok
    frames = [f for f in out.split("\r") if f.startswith("protecting")]
    assert len(frames) == 2 and all("0s" in f for f in frames)
    assert frames[0][11] in progress.SPINNER and frames[0][11] != frames[1][11]
    assert "checkpoint cp1: available (0s)" in out


def test_plain_lines_only_on_change_and_every_tenth():
    states = [{"status": "protecting"}, {"status": "protecting"},
              *({"status": "protecting", "progress": {"percent": p}} for p in (1, 5, 12, 15, 35)),
              DONE]
    ok, _r, out = _run(states, tty=False)
    lines = out.splitlines()
    assert lines == ["checkpoint cp1: protecting", "checkpoint cp1: protecting 1%",
                     "checkpoint cp1: protecting 12%", "checkpoint cp1: protecting 35%",
                     "checkpoint cp1: available (1.5s, 1.0 KiB read, 512 B added, "
                     "dedup 2.00x)"]
    assert "\r" not in out


def test_failure_prints_every_reason():
    failed = {"status": "error", "reason": "1 of 2 resources failed",
              "resources_status": {KEY: "error", "B#2": "available"},
              "resources_reason": {KEY: "disk\n full", "B#2": None}}
    ok, record, out = _run([failed], tty=False)
    assert not ok and record is failed
    assert out.splitlines() == ["error: checkpoint cp1 ended error",
                                "  1 of 2 resources failed", f"  {KEY}: error: disk full"]


def test_a_delete_succeeds_when_the_record_is_gone():
    ok, record, out = _run([{"status": "deleting"}, None], tty=False, ok=("deleted",),
                           failed=("error-deleting",), gone_ok=True)
    assert ok and record is None
    assert out.splitlines()[-1] == "checkpoint cp1: deleted"


def test_resources_merge_status_reason_and_summary():
    record = {"resources_status": {KEY: "error"}, "resources_reason": {KEY: "boom"},
              "summary": {"resources": {"X#9": {"status": "available", "reason": None}}}}
    assert records.resources(record) == [
        {"resource": KEY, "status": "error", "reason": "boom"},
        {"resource": "X#9", "status": "available", "reason": None}]


def test_noauth_base_and_shortcuts():
    assert noauth_base("http://h:8799", "p", None) == ("http://h:8799/v1/p", "admin:p")
    assert noauth_base("http://h:8799/v1", None, "u:p") == ("http://h:8799/v1/p", "u:p")
    assert noauth_base("http://h:8799/v1/p/", None, None) == ("http://h:8799/v1/p", "admin:p")
    with pytest.raises(CLIError):
        noauth_base("http://h:8799", None, None)
    assert expand_shortcuts(["--url", "u", "restore", "CP", "--wait"]) == \
        ["--url", "u", "restore", "create", "CP", "--wait"]
    assert expand_shortcuts(["restore", "describe", "R"]) == ["restore", "describe", "R"]
    assert expand_shortcuts(["-o", "restore", "restore", "list"]) == \
        ["-o", "restore", "restore", "list"]


def test_parameters_from_json_and_dotted_keys():
    assert parameters(["T::A.path=/x", "T::A#id.in_place=true"], '{"T::B": {"k": 1}}') == \
        {"T::B": {"k": 1}, "T::A": {"path": "/x"}, "T::A#id": {"in_place": True}}
    assert parameters(["path=/x"], None, lambda: "T::A") == {"T::A": {"path": "/x"}}
    with pytest.raises(CLIError):
        parameters(["path=/x"], None, lambda: None)
    with pytest.raises(CLIError):
        parameters(None, "[1]")
