"""Runs one claimed operation: builds the resource graph and the hook DAG, records the outcome.

This is the seam the full engine (parallel TaskFlow graphs, resumable
progress) plugs into; the record keeping here (statuses, operation logs,
bank index) is the contract it keeps.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

from sqlalchemy import select, update

from karbor.common import constants, exception
from karbor.common.config import CONF
from karbor.common.context import RequestContext
from karbor.db import models
from karbor.db.models import utcnow
from karbor.db.session import session_scope
from karbor.resource import Resource
from karbor.services.protection import graph as graph_mod
from karbor.services.protection import hooks, protectable_registry
from karbor.services.protection import progress as progress_mod
from karbor.services.protection import provider as provider_mod
from karbor.services.protection.checkpoint import BankCheckpoint
from karbor.services.protection.protection_plugin import implemented_hooks, parameters_for

LOG = logging.getLogger(__name__)


class OperationFailed(Exception):
    pass


class _ResultRecorder:
    """Given to restore/verify hooks as ``restore``/``verify``: per-resource outcome."""

    def __init__(self, model, record_id: str):
        self._model = model
        self._id = record_id
        self._lock = threading.Lock()
        self.status: dict[str, str] = {}
        self.reason: dict[str, str] = {}
        self._placeholders: set[str] = set()

    def update_resource_status(self, resource_type, resource_id, status, reason=None):
        key = f"{resource_type}#{resource_id}"
        with self._lock:
            self.status[key] = status
            self._placeholders.discard(key)
            if reason:
                self.reason[key] = str(reason)
            self.save()

    def placeholder(self, resource_type, resource_id, status):
        """Show the resource as running under its own key until its plugin reports."""
        key = f"{resource_type}#{resource_id}"
        with self._lock:
            if key not in self.status:
                self.status[key] = status
                self._placeholders.add(key)
                self.save()

    def settle(self, resource_type, resource_id, reported: set[str], status, reason=None):
        """The resource's hooks are over: its placeholder gives way to what the plugin
        reported, or becomes the outcome when the plugin reported nothing."""
        key = f"{resource_type}#{resource_id}"
        with self._lock:
            if key in self._placeholders:
                self._placeholders.discard(key)
                if reported - {key}:
                    self.status.pop(key, None)
                elif key not in reported:
                    self.status[key] = status
            if reason and not any(k in self.reason for k in reported):
                # It failed and its plugin said nothing of why: the engine's reason.
                if key not in reported:
                    self.status[key] = "error"
                self.reason[key] = str(reason)
            self.save()

    def save(self):
        with session_scope(write=True) as session:
            session.execute(update(self._model).where(self._model.id == self._id).values(
                resources_status=json.dumps(self.status),
                resources_reason=json.dumps(self.reason), updated_at=utcnow()))


class _ResourceRecorder:
    """The recorder one resource's hooks see: notes whether its plugin said anything, so
    the engine's placeholder (``restoring`` under the resource's own key) is replaced by
    what the plugin reported, or by the outcome when it reported nothing."""

    def __init__(self, recorder: _ResultRecorder):
        self._recorder = recorder
        self.keys: set[str] = set()

    def update_resource_status(self, resource_type, resource_id, status, reason=None):
        self.keys.add(f"{resource_type}#{resource_id}")
        self._recorder.update_resource_status(resource_type, resource_id, status, reason)


_RUNNING_STATUS = {"protect": "protecting", "restore": "restoring", "verify": "verifying",
                   "copy": "copying", "delete": "deleting"}
_DONE_STATUS = {"protect": "available", "restore": "available", "verify": "available",
                "copy": "available", "delete": "deleted"}


_parameters_for = parameters_for


class Progress:
    """Which hooks of an operation have finished, saved so a resumed attempt skips them.

    Saved at most once a second; the banks are flushed first, so a hook recorded
    as done has its data durably in the bank.
    """

    def __init__(self, op: models.Operation | None):
        self._op_id = op.id if op is not None else None
        stored = json.loads(op.progress) if op is not None and op.progress else {}
        self.done: set[str] = set(stored.get("done", []))
        self._lock = threading.Lock()
        self._saved_at = time.monotonic()
        self._timer: threading.Timer | None = None
        self.banks: list = []

    def mark(self, name: str) -> None:
        with self._lock:
            self.done.add(name)
            wait = 1.0 - (time.monotonic() - self._saved_at)
            if wait > 0:
                if self._timer is None:
                    self._timer = threading.Timer(wait, self._save_quietly)
                    self._timer.daemon = True
                    self._timer.start()
                return
        self.save()

    def close(self) -> None:
        """The operation is over: no late save may follow."""
        with self._lock:
            timer, self._timer, self._op_id = self._timer, None, None
        if timer is not None:
            timer.cancel()

    def _save_quietly(self) -> None:
        with self._lock:
            self._timer = None
        try:
            self.save()
        except Exception:
            LOG.exception("could not save the progress of operation %s", self._op_id)

    def save(self) -> None:
        if self._op_id is None:
            return
        op_id = self._op_id
        for bank in self.banks:
            bank.flush()
        with self._lock:
            snapshot = sorted(self.done)
            self._saved_at = time.monotonic()
        with session_scope(write=True) as session:
            session.execute(update(models.Operation).where(models.Operation.id == op_id)
                            .values(progress=json.dumps({"done": snapshot})))


def run_hooks(provider, roots, operation_name: str, checkpoint, context, parameters: dict,
              extra: dict[str, Any], progress: Progress | None = None,
              tracker: progress_mod.OperationProgress | None = None) -> None:
    tasks = hooks.build_tasks(roots)
    operations: dict[Resource, Any] = {}
    for node in graph_mod.walk(roots):
        plugin = provider.plugin_for(node.value.type)
        getter = getattr(plugin, f"get_{operation_name}_operation")
        try:
            operations[node.value] = getter(node.value)
        except NotImplementedError:
            raise OperationFailed(
                f"The plugin for {node.value.type} does not support {operation_name}.") from None

    recorder_name = operation_name if operation_name in ("restore", "verify") else None
    recorders: dict[Resource, _ResourceRecorder] = {}
    remaining: dict[Resource, set[str]] = {}
    remaining_lock = threading.Lock()

    def started(resource: Resource) -> None:
        try:
            _started(resource)
        except Exception:
            LOG.warning("could not record that %s %s started", resource.type, resource.id,
                        exc_info=True)

    ended: set[Resource] = set()

    def finished(resource: Resource, reason: str | None = None) -> None:
        with remaining_lock:
            if resource in ended:
                return
            ended.add(resource)
        try:
            _finished(resource, reason)
        except Exception:
            LOG.warning("could not record how %s %s ended", resource.type, resource.id,
                        exc_info=True)

    def _started(resource: Resource) -> None:
        if tracker is not None:
            tracker.resource_started(resource, _RUNNING_STATUS[operation_name])
        own = recorders.get(resource)
        if own is not None:
            own._recorder.placeholder(resource.type, resource.id,
                                      _RUNNING_STATUS[operation_name])

    def _finished(resource: Resource, reason: str | None = None) -> None:
        status = "error" if reason else _DONE_STATUS[operation_name]
        if tracker is not None:
            tracker.resource_finished(resource, status, reason)
        own = recorders.get(resource)
        if own is not None:
            own._recorder.settle(resource.type, resource.id, own.keys, status, reason)

    def run(task: hooks.HookTask) -> None:
        op = operations[task.resource]
        hook = getattr(op, task.hook, None)
        if hook is None:
            return
        kwargs = dict(extra)
        with remaining_lock:
            first = task.resource not in remaining
            todo = remaining.setdefault(task.resource, set(per_resource[task.resource]))
            if recorder_name and recorder_name in extra:
                kwargs[recorder_name] = recorders.setdefault(
                    task.resource, _ResourceRecorder(extra[recorder_name]))
        if first:
            started(task.resource)
        if tracker is not None:
            kwargs["progress"] = tracker.for_resource(task.resource)
        try:
            hook(checkpoint, task.resource, context, _parameters_for(parameters, task.resource),
                 **kwargs)
        except Exception as exc:
            if isinstance(exc, exception.KarborException):
                # A user-facing failure (bad input, a plugin's clear refusal): the message
                # is the whole story, and a traceback would read as a bug in Karbor.
                LOG.error("%s failed for %s %s: %s", task.hook, task.resource.type,
                          task.resource.id, exc.msg)
            else:
                LOG.exception("%s failed for %s %s", task.hook, task.resource.type,
                              task.resource.id)
            reason = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, exception.KarborException):
                reason = exc.msg
            finished(task.resource, reason)
            raise OperationFailed(f"{task.resource.type} {task.resource.id}: "
                                  f"{reason}") from exc
        if progress is not None:
            progress.mark(task.name)
        with remaining_lock:
            todo.discard(task.name)
            last = not todo
        if last:
            finished(task.resource)

    def revert(task: hooks.HookTask) -> None:
        # Optional cleanup: an Operation may define revert(..., hook=<name>) to undo
        # what that hook created when the operation as a whole fails.
        cleanup = getattr(operations[task.resource], "revert", None)
        if not callable(cleanup):
            return
        try:
            cleanup(checkpoint, task.resource, context,
                    _parameters_for(parameters, task.resource), hook=task.hook, **extra)
        except Exception:
            LOG.exception("cleanup of %s for %s %s failed", task.hook, task.resource.type,
                          task.resource.id)

    implemented = {res: implemented_hooks(op) for res, op in operations.items()}
    tasks = hooks.without_noops(tasks, lambda t: t.hook in implemented[t.resource])
    done = frozenset()
    if progress is not None:
        progress.banks = [checkpoint.bank] + (
            [extra["checkpoint_copy"].bank] if "checkpoint_copy" in extra else [])
        done = frozenset(progress.done & set(tasks))
        if done:
            LOG.info("resuming %s: %d of %d hooks were done before", operation_name,
                     len(done), len(tasks))
    per_resource: dict[Resource, set[str]] = {res: set() for res in operations}
    for name, task in tasks.items():
        if name not in done:
            per_resource[task.resource].add(name)
    if tracker is not None:
        for res, todo in per_resource.items():
            if not todo:  # nothing to do (no hook, or all done by an earlier attempt)
                tracker.resource_finished(res, _DONE_STATUS[operation_name])
    try:
        hooks.run_parallel(tasks, run, revert, max_workers=CONF.max_parallel_hooks,
                           already_done=done)
    except BaseException:
        # Resources whose hooks had begun but will not go on: not left "running".
        with remaining_lock:
            cut = [res for res, todo in remaining.items() if todo and res not in ended]
        for res in cut:
            finished(res, "not finished: another resource's failure stopped the operation")
        raise
    finally:
        if progress is not None:
            progress.close()


def _set_log(session, log_id: str | None, status: str, error: str | None = None,
             end: bool = True) -> None:
    if not log_id:
        return
    values: dict[str, Any] = {"status": status}
    if end:
        values["ended_at"] = utcnow()
    if error:
        values["error_info"] = error
    session.execute(update(models.OperationLog).where(models.OperationLog.id == log_id)
                    .values(**values))


def _set_checkpoint(session, checkpoint_id: str, status: str, reason: str | None = None,
                    **extra) -> None:
    values = {"status": status, "updated_at": utcnow(), **extra}
    if reason is not None:
        values["status_reason"] = reason
    if status == constants.CHECKPOINT_STATUS_DELETED:
        values.update(deleted=True, deleted_at=utcnow())
    session.execute(update(models.Checkpoint).where(models.Checkpoint.id == checkpoint_id)
                    .values(**values))


def _tracker(model, record_id: str, roots,
             record_resources: bool = False) -> progress_mod.OperationProgress:
    resources = [node.value for node in graph_mod.walk(roots)]
    return progress_mod.OperationProgress(model, record_id, resources,
                                          interval=CONF.progress_interval,
                                          record_resources=record_resources).start()


def _final(tracker: progress_mod.OperationProgress | None, succeeded: bool,
           with_resources: bool = False) -> dict[str, Any]:
    """Column values that record how the operation ended (written with its status)."""
    if tracker is None:
        return {}
    doc = tracker.finish(succeeded)
    values: dict[str, Any] = {"progress": json.dumps(doc)}
    if with_resources:
        values["resources_status"] = json.dumps(tracker.status)
        values["resources_reason"] = json.dumps(tracker.reason)
    return values


def _build_graph(context, resources: list[dict]):
    registry = protectable_registry.registry()
    start = [Resource(type=r["type"], id=r["id"], name=r["name"],
                      extra_info=r.get("extra_info")) for r in resources]
    return graph_mod.build_graph(
        start, lambda res: registry.fetch_dependent_resources(context, res))


class Engine:
    def __init__(self, worker_id: str):
        self.worker_id = worker_id

    def run(self, op: models.Operation) -> None:
        context = RequestContext.from_dict(json.loads(op.context or "{}"))
        provider = provider_mod.registry().show(op.provider_id)
        parameters = json.loads(op.parameters or "{}")
        handler = getattr(self, f"_{op.operation_type}")
        handler(op, context, provider, parameters)

    def fail(self, op: models.Operation, reason: str) -> None:
        """Mark the operation's record failed when the operation could not even run."""
        with session_scope(write=True) as session:
            if op.operation_type in (constants.OPERATION_PROTECT, constants.OPERATION_COPY):
                session.execute(update(models.Checkpoint).where(
                    models.Checkpoint.id == op.checkpoint_id,
                    models.Checkpoint.status.in_([constants.CHECKPOINT_STATUS_PROTECTING,
                                                  constants.CHECKPOINT_STATUS_WAIT_COPYING,
                                                  constants.CHECKPOINT_STATUS_COPYING]))
                    .values(status=constants.CHECKPOINT_STATUS_ERROR, status_reason=reason,
                            updated_at=utcnow()))
            elif op.operation_type == constants.OPERATION_DELETE:
                session.execute(update(models.Checkpoint).where(
                    models.Checkpoint.id == op.checkpoint_id,
                    models.Checkpoint.status == constants.CHECKPOINT_STATUS_DELETING)
                    .values(status=constants.CHECKPOINT_STATUS_ERROR_DELETING,
                            status_reason=reason, updated_at=utcnow()))
            else:
                model, record_id = ((models.Restore, op.restore_id)
                                    if op.operation_type == constants.OPERATION_RESTORE
                                    else (models.Verification, op.verification_id))
                session.execute(update(model).where(
                    model.id == record_id,
                    model.status == constants.RESTORE_STATUS_IN_PROGRESS)
                    .values(status=constants.RESTORE_STATUS_FAILURE, updated_at=utcnow(),
                            resources_reason=json.dumps({"error": reason})))
            _set_log(session, op.operation_log_id, "error", reason)

    # -- protect ---------------------------------------------------------------------------
    def _protect(self, op, context, provider, parameters):
        with session_scope() as session:
            record = session.get(models.Checkpoint, op.checkpoint_id)
        if record is None or record.status != constants.CHECKPOINT_STATUS_PROTECTING:
            return  # already finished by an earlier attempt
        plan = json.loads(record.protection_plan)
        tracker = None
        try:
            roots = _build_graph(context, plan["resources"])
            record.resource_graph = graph_mod.serialize(roots)
            with session_scope(write=True) as session:
                _set_checkpoint(session, record.id, record.status,
                                resource_graph=record.resource_graph)
            tracker = _tracker(models.Checkpoint, record.id, roots, record_resources=True)
            bank = provider.bank_for(record.bank)
            checkpoint = BankCheckpoint.create(bank, record, bank.get_owner_id())
            run_hooks(provider, roots, "protect", checkpoint, context,
                      plan.get("parameters") or {}, {}, Progress(op), tracker)
            checkpoint.complete(constants.CHECKPOINT_STATUS_AVAILABLE)
        except Exception as exc:
            reason = _reason(exc)
            with session_scope(write=True) as session:
                _set_checkpoint(session, record.id, constants.CHECKPOINT_STATUS_ERROR, reason,
                                **_final(tracker, False, with_resources=True))
                _set_log(session, op.operation_log_id, constants.CHECKPOINT_STATUS_ERROR, reason)
            _try_bank_status(provider.bank_for(record.bank), record.id,
                             constants.CHECKPOINT_STATUS_ERROR)
            raise OperationFailed(reason) from exc
        with session_scope(write=True) as session:
            _set_checkpoint(session, record.id, constants.CHECKPOINT_STATUS_AVAILABLE,
                            **_final(tracker, True, with_resources=True))
            _set_log(session, op.operation_log_id, constants.CHECKPOINT_STATUS_AVAILABLE)

    # -- delete ----------------------------------------------------------------------------
    def _delete(self, op, context, provider, parameters):
        with session_scope() as session:
            record = session.get(models.Checkpoint, op.checkpoint_id)
        if record is None or record.status != constants.CHECKPOINT_STATUS_DELETING:
            return
        tracker = None
        try:
            bank = provider.bank_for(record.bank)
            try:
                checkpoint = BankCheckpoint.load(bank, record.id)
            except exception.BankObjectNotFound:
                checkpoint = None  # protect never reached the bank; nothing to remove
            if checkpoint is not None:
                if record.resource_graph:
                    roots = graph_mod.deserialize(record.resource_graph)
                    tracker = _tracker(models.Checkpoint, record.id, roots)
                    run_hooks(provider, roots, "delete", checkpoint, context, {}, {},
                              Progress(op), tracker)
                checkpoint.delete()
        except Exception as exc:
            reason = _reason(exc)
            with session_scope(write=True) as session:
                _set_checkpoint(session, record.id, constants.CHECKPOINT_STATUS_ERROR_DELETING,
                                reason, **_final(tracker, False))
                _set_log(session, op.operation_log_id,
                         constants.CHECKPOINT_STATUS_ERROR_DELETING, reason)
            raise OperationFailed(reason) from exc
        with session_scope(write=True) as session:
            _set_checkpoint(session, record.id, constants.CHECKPOINT_STATUS_DELETED,
                            **_final(tracker, True))
            _set_log(session, op.operation_log_id, constants.CHECKPOINT_STATUS_DELETED)

    # -- restore / verify ------------------------------------------------------------------
    def _restore(self, op, context, provider, parameters):
        self._restore_like(op, context, provider, parameters, models.Restore, op.restore_id,
                           "restore")

    def _verify(self, op, context, provider, parameters):
        self._restore_like(op, context, provider, parameters, models.Verification,
                           op.verification_id, "verify")

    def _restore_like(self, op, context, provider, parameters, model, record_id, name):
        with session_scope() as session:
            record = session.get(model, record_id)
            cp_record = session.get(models.Checkpoint, op.checkpoint_id)
        if record is None or record.status != constants.RESTORE_STATUS_IN_PROGRESS:
            return
        recorder = _ResultRecorder(model, record_id)
        tracker = None
        try:
            if cp_record is None or cp_record.status not in constants.CHECKPOINT_USABLE:
                raise OperationFailed(f"checkpoint {op.checkpoint_id} is not available")
            checkpoint = BankCheckpoint.load(provider.bank_for(cp_record.bank), cp_record.id)
            roots = graph_mod.deserialize(cp_record.resource_graph or "[{}, []]")
            tracker = _tracker(model, record_id, roots)
            extra: dict[str, Any] = {"new_resources": {}}
            extra[name] = recorder
            if name == "restore":
                extra["restore_target"] = record.restore_target
                extra["restore_auth"] = json.loads(record.restore_auth or "null")
            if name == "verify":
                _verify_bank_data(checkpoint, roots, recorder)
            run_hooks(provider, roots, name, checkpoint, context, parameters, extra,
                      Progress(op), tracker)
        except Exception as exc:
            reason = _reason(exc)
            with recorder._lock:
                status = dict(recorder.status)
                reasons = dict(recorder.reason) or {"error": reason}
            with session_scope(write=True) as session:
                session.execute(update(model).where(model.id == record_id).values(
                    status=constants.RESTORE_STATUS_FAILURE, updated_at=utcnow(),
                    resources_status=json.dumps(status),
                    resources_reason=json.dumps(reasons), **_final(tracker, False)))
                _set_log(session, op.operation_log_id, constants.RESTORE_STATUS_FAILURE, reason)
            raise OperationFailed(reason) from exc
        with session_scope(write=True) as session:
            session.execute(update(model).where(model.id == record_id).values(
                status=constants.RESTORE_STATUS_SUCCESS, updated_at=utcnow(),
                **_final(tracker, True)))
            _set_log(session, op.operation_log_id, constants.RESTORE_STATUS_SUCCESS)

    # -- copy ------------------------------------------------------------------------------
    def _copy(self, op, context, provider, parameters):
        with session_scope() as session:
            record = session.get(models.Checkpoint, op.checkpoint_id)
            source = session.get(models.Checkpoint, op.source_checkpoint_id)
        if record is None or record.status not in (constants.CHECKPOINT_STATUS_WAIT_COPYING,
                                                   constants.CHECKPOINT_STATUS_COPYING):
            return
        with session_scope(write=True) as session:
            _set_checkpoint(session, record.id, constants.CHECKPOINT_STATUS_COPYING)
            _set_log(session, op.operation_log_id, constants.CHECKPOINT_STATUS_COPYING,
                     end=False)
        tracker = None
        try:
            if source is None or source.status not in constants.CHECKPOINT_USABLE:
                raise OperationFailed(f"source checkpoint {op.source_checkpoint_id} is not "
                                      "available")
            roots = graph_mod.deserialize(source.resource_graph or "[{}, []]")
            tracker = _tracker(models.Checkpoint, record.id, roots, record_resources=True)
            source_bank = provider.bank_for(source.bank)
            target_bank = provider.bank_for(record.bank)
            src = BankCheckpoint.load(source_bank, source.id)
            prefix = f"/checkpoints/{source.id}/resource-data/"
            for key in source_bank.list_objects(prefix):
                rest = key[len(prefix):]
                target_bank.update_object(f"/checkpoints/{record.id}/resource-data/{rest}",
                                          source_bank.get_object(key))
            record.status = constants.CHECKPOINT_STATUS_COPYING
            copy_cp = BankCheckpoint.create(target_bank, record, target_bank.get_owner_id())
            run_hooks(provider, roots, "copy", src, context, parameters,
                      {"checkpoint_copy": copy_cp}, Progress(op), tracker)
            extra_info = {"copy_status": constants.CHECKPOINT_STATUS_COPY_FINISHED,
                          "copy_from": source.id}
            # Every object is written before the status says so.
            copy_cp.metadata["extra_info"] = json.dumps(extra_info)
            copy_cp.complete(constants.CHECKPOINT_STATUS_COPY_FINISHED)
        except Exception as exc:
            reason = _reason(exc)
            with session_scope(write=True) as session:
                _set_checkpoint(session, record.id, constants.CHECKPOINT_STATUS_ERROR, reason,
                                **_final(tracker, False, with_resources=True))
                _set_log(session, op.operation_log_id, "error", reason)
            raise OperationFailed(reason) from exc
        with session_scope(write=True) as session:
            _set_checkpoint(session, record.id, constants.CHECKPOINT_STATUS_COPY_FINISHED,
                            extra_info=json.dumps(extra_info),
                            **_final(tracker, True, with_resources=True))
            _set_log(session, op.operation_log_id, "success")


def _verify_bank_data(checkpoint: BankCheckpoint, roots, recorder: _ResultRecorder) -> None:
    """The default verification: every resource's section says it was protected."""
    failures = []
    for node in graph_mod.walk(roots):
        r = node.value
        try:
            status = checkpoint.get_resource_bank_section(r.id).get_object("status")
        except exception.BankObjectNotFound:
            status = None
        if status == constants.CHECKPOINT_STATUS_AVAILABLE:
            recorder.update_resource_status(r.type, r.id, "available")
        else:
            recorder.update_resource_status(r.type, r.id, "error",
                                            f"bank data missing (status {status})")
            failures.append(r.id)
    if failures:
        raise OperationFailed(f"bank data of {len(failures)} resource(s) is missing")


def _try_bank_status(bank, checkpoint_id: str, status: str) -> None:
    try:
        cp = BankCheckpoint.load(bank, checkpoint_id)
        cp.status = status
        cp.commit()
    except Exception:
        LOG.warning("could not record status %s of checkpoint %s in the bank", status,
                    checkpoint_id)


def _reason(exc: BaseException) -> str:
    if isinstance(exc, exception.KarborException):
        return exc.msg
    return str(exc) or type(exc).__name__


def pending_count() -> int:
    with session_scope() as session:
        return len(session.scalars(select(models.Operation.id).where(
            models.Operation.status == constants.JOB_PENDING)).all())
