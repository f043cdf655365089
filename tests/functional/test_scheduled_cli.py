"""Scheduled operations firing, driven with python-karborclient as in the seed's usage guide.

* The guide's trigger -- ``pattern=BEGIN:VEVENT\\nRRULE:FREQ=MINUTELY;INTERVAL=5;\\nEND:VEVENT``,
  ``format=calendar`` -- and a ``protect`` scheduled operation on it, both created with the
  CLI, produce a checkpoint marked ``created_by: operation-engine`` (a manual one says
  ``manual``).  The trigger's ``start_time`` is set 5 minutes minus a few seconds in the
  past so that its next occurrence comes within the test, not 5 minutes later.
* A ``retention_protect`` operation with ``max_backups=3`` leaves exactly the three newest
  checkpoints available; every older one it made is deleted.  All checkpoints ever made
  are known from the project's operation logs (one ``protect`` log per checkpoint).

The ``server`` fixture (one karbor-server per database backend) sets ``min_interval = 2``
and ``trigger_poll_interval = 0.5``.
"""

from __future__ import annotations

import datetime as dt
import time

from ._cli import as_json, props, rows, wait_for
from .conftest import KarborServer, new_project_id

NOOP = "b766f37c-d011-4026-8228-28730d734a3f"
PROJECT_TYPE = "OS::Keystone::Project"
SEED_PATTERN = r"BEGIN:VEVENT\nRRULE:FREQ=MINUTELY;INTERVAL=5;\nEND:VEVENT"
FMT = "%Y-%m-%d %H:%M:%S"
LEAD = 10  # seconds between creating the seed trigger and its first occurrence


def ok(server: KarborServer, *args: str, **kw) -> str:
    rc, out, err = server.cli(*args, **kw)
    assert rc == 0, f"karbor {' '.join(args)} failed ({rc}):\nstdout:\n{out}\nstderr:\n{err}"
    return out


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC).replace(tzinfo=None, microsecond=0)


def checkpoints(server: KarborServer, project: str) -> dict[str, str]:
    """{id: status} of the project's checkpoints (HTTP: cheaper than a CLI run per poll)."""
    resp = server.http("GET", f"providers/{NOOP}/checkpoints", project=project)
    assert resp.status_code == 200, resp.text
    return {c["id"]: c["status"] for c in resp.json()["checkpoints"]}


def checkpoint_status(server: KarborServer, checkpoint_id: str, project: str) -> str | None:
    resp = server.http("GET", f"providers/{NOOP}/checkpoints/{checkpoint_id}", project=project)
    return resp.json()["checkpoint"]["status"] if resp.status_code == 200 else None


def test_seed_trigger_and_protect_operation_make_engine_checkpoints(server: KarborServer):
    project = new_project_id()
    plan = props(ok(server, "plan-create", "My 3 tier application", NOOP,
                    f"{project}={PROJECT_TYPE}=my-project", project=project))
    manual = props(ok(server, "checkpoint-create", NOOP, plan["id"], project=project))
    wait_for(lambda: checkpoint_status(server, manual["id"], project), {"available"},
             what="the manual checkpoint")

    first = utcnow() + dt.timedelta(seconds=LEAD)
    start = first - dt.timedelta(minutes=5)
    trigger = props(ok(server, "trigger-create", "My Trigger", "time",
                       f"pattern={SEED_PATTERN},format=calendar,start_time={start:{FMT}}",
                       project=project))
    assert as_json(trigger["properties"])["pattern"] == SEED_PATTERN
    operation = props(ok(server, "scheduledoperation-create", "Protect with My Trigger",
                         "protect", trigger["id"], f"plan_id={plan['id']},provider_id={NOOP}",
                         project=project))
    assert utcnow() < first, "the CLI took too long: the first occurrence passed already"
    assert operation["operation_type"] == "protect"

    def made_by_engine() -> str:
        new = set(checkpoints(server, project)) - {manual["id"]}
        return "fired" if new else "waiting"

    wait_for(made_by_engine, {"fired"}, timeout=LEAD + 30, interval=0.3,
             what="the seed trigger's first occurrence")
    fired_at = utcnow()
    assert fired_at >= first
    [engine_id] = set(checkpoints(server, project)) - {manual["id"]}
    assert wait_for(lambda: checkpoint_status(server, engine_id, project),
                    {"available", "error"}, what="the engine's checkpoint") == "available"

    listing = {r["Id"]: r for r in rows(ok(server, "checkpoint-list", NOOP, project=project))}
    assert set(listing) == {manual["id"], engine_id}
    shown = props(ok(server, "checkpoint-show", NOOP, engine_id, project=project))
    extra = as_json(shown["extra_info"])
    assert extra["created_by"] == "operation-engine"
    assert extra["scheduled_operation_id"] == operation["id"]
    assert extra["trigger_id"] == trigger["id"]
    assert extra["occurrence"] == first.strftime(FMT)
    assert shown["status"] == "available"
    assert as_json(props(ok(server, "checkpoint-show", NOOP, manual["id"], project=project))[
        "extra_info"])["created_by"] == "manual"

    # the protect is logged like any other, naming the checkpoint and its plan
    logs = [r for r in rows(ok(server, "operationlog-list", project=project))
            if r["Checkpoint id"] == engine_id]
    assert [(r["Operation Type"], r["Plan Id"]) for r in logs] == [("protect", plan["id"])]

    # exactly once: the next occurrence is 5 minutes away, nothing more appears meanwhile
    time.sleep(2)
    assert set(checkpoints(server, project)) == {manual["id"], engine_id}

    ok(server, "scheduledoperation-delete", operation["id"], project=project)
    ok(server, "trigger-delete", trigger["id"], project=project)


def test_retention_protect_keeps_exactly_the_three_newest(server: KarborServer):
    project = new_project_id()
    plan = props(ok(server, "plan-create", "retained", NOOP,
                    f"{project}={PROJECT_TYPE}=my-project", project=project))
    start = utcnow().strftime(FMT)
    trigger = props(ok(server, "trigger-create", "every two seconds", "time",
                       r"pattern=BEGIN:VEVENT\nRRULE:FREQ=SECONDLY;INTERVAL=2;\nEND:VEVENT,"
                       f"format=calendar,start_time={start},window=60", project=project))
    operation = props(ok(server, "scheduledoperation-create", "keep three",
                         "retention_protect", trigger["id"],
                         f"plan_id={plan['id']},provider_id={NOOP},max_backups=3",
                         project=project))
    assert as_json(operation["operation_definition"])["max_backups"] == "3"

    def protect_logs() -> list[dict]:
        resp = server.http("GET", "operation_logs", project=project)
        assert resp.status_code == 200, resp.text
        return [log for log in resp.json()["operation_logs"]
                if log["operation_type"] == "protect"]

    def enough() -> str:
        return "enough" if len(protect_logs()) >= 7 else "waiting"

    wait_for(enough, {"enough"}, timeout=60, interval=0.5, what="seven scheduled protects")
    ok(server, "scheduledoperation-delete", operation["id"], project=project)

    def settled() -> str:
        # every checkpoint made is final: 3 available, the rest deleted (not listed)
        made = [log["checkpoint_id"] for log in protect_logs()]
        statuses = [checkpoint_status(server, cid, project) for cid in made]
        final = all(s in (None, "available", "deleted") for s in statuses)
        return "settled" if final and statuses.count("available") == 3 else repr(statuses)

    wait_for(settled, {"settled"}, timeout=30, interval=0.5, what="retention of max_backups=3")
    logs = protect_logs()
    assert len(logs) >= 7
    assert {log["scheduled_operation_id"] for log in logs} == {operation["id"]}
    made = sorted(logs, key=lambda log: (log["started_at"], log["checkpoint_id"]))
    started = [log["started_at"] for log in made]
    assert len(set(started)) == len(started), f"ambiguous order: {started}"
    newest = [log["checkpoint_id"] for log in made[-3:]]
    older = [log["checkpoint_id"] for log in made[:-3]]

    remaining = rows(ok(server, "checkpoint-list", NOOP, project=project))
    assert sorted(r["Id"] for r in remaining) == sorted(newest)
    assert {r["Status"] for r in remaining} == {"available"}
    for checkpoint_id in newest:
        shown = props(ok(server, "checkpoint-show", NOOP, checkpoint_id, project=project))
        assert as_json(shown["extra_info"])["created_by"] == "operation-engine"
    for checkpoint_id in older:
        assert checkpoint_status(server, checkpoint_id, project) in (None, "deleted")
    # the deletions were made by the retention (delete operations logged for the older ones)
    resp = server.http("GET", "operation_logs", project=project)
    deleted = {log["checkpoint_id"] for log in resp.json()["operation_logs"]
               if log["operation_type"] == "delete"}
    assert deleted == set(older)
    ok(server, "trigger-delete", trigger["id"], project=project)
