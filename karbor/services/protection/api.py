"""Recording protection operations: what the API and the operation engine call.

Each function checks the record's state, writes it and submits the durable
operation in the caller's transaction; none of them runs plugin code.
"""

from __future__ import annotations

import datetime as dt
import json
import uuid

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from karbor import quota
from karbor.common import constants, exception
from karbor.common.context import RequestContext
from karbor.db import models
from karbor.db.models import utcnow
from karbor.services.protection import queue


def plan_resources(plan: models.Plan) -> list[dict]:
    """The plan's resources as the API shows them (``extra_info`` only when set)."""
    resources = []
    for r in plan.resources:
        item = {"id": r.resource_id, "type": r.resource_type, "name": r.resource_name}
        if r.resource_extra_info is not None:
            item["extra_info"] = json.loads(r.resource_extra_info)
        resources.append(item)
    return resources


def protection_plan_of(plan: models.Plan) -> dict:
    return {"id": plan.id, "name": plan.name, "provider_id": plan.provider_id,
            "resources": plan_resources(plan),
            "parameters": json.loads(plan.parameters or "{}")}


def protect(session: Session, context: RequestContext, plan: models.Plan,
            extra_info: dict, scheduled_operation_id: str | None = None) -> models.Checkpoint:
    quota.consume(session, plan.project_id, "checkpoints", 1, context.quota_class)
    checkpoint = models.Checkpoint(
        id=str(uuid.uuid4()), project_id=plan.project_id, provider_id=plan.provider_id,
        plan_id=plan.id, status=constants.CHECKPOINT_STATUS_PROTECTING,
        protection_plan=json.dumps(protection_plan_of(plan)),
        extra_info=json.dumps(extra_info), created_at=utcnow())
    session.add(checkpoint)
    queue.submit(session, context, constants.OPERATION_PROTECT, plan.provider_id,
                 project_id=plan.project_id, checkpoint_id=checkpoint.id, plan_id=plan.id,
                 log_status=constants.CHECKPOINT_STATUS_PROTECTING,
                 scheduled_operation_id=scheduled_operation_id)
    return checkpoint


def set_checkpoint_status(session: Session, checkpoint: models.Checkpoint, new_status: str,
                          allowed_from: tuple[str, ...] | None = None,
                          reason: str | None = None) -> None:
    """Compare-and-set a checkpoint's status; a concurrent change makes it fail with 409."""
    old = checkpoint.status
    allowed = allowed_from if allowed_from is not None else tuple(
        s for s, targets in constants.CHECKPOINT_TRANSITIONS.items() if new_status in targets)
    if old not in allowed:
        raise exception.Conflict(
            f"Checkpoint {checkpoint.id} cannot go from {old} to {new_status}.")
    values = {"status": new_status, "updated_at": utcnow()}
    if reason is not None:
        values["status_reason"] = reason
    if new_status == constants.CHECKPOINT_STATUS_DELETED:
        values.update(deleted=True, deleted_at=utcnow())
    result = session.execute(update(models.Checkpoint)
                             .where(models.Checkpoint.id == checkpoint.id,
                                    models.Checkpoint.status == old)
                             .values(**values))
    if result.rowcount != 1:
        raise exception.Conflict(f"Checkpoint {checkpoint.id} changed meanwhile; try again.")
    for key, value in values.items():
        setattr(checkpoint, key, value)


def delete_checkpoint(session: Session, context: RequestContext,
                      checkpoint: models.Checkpoint) -> None:
    if checkpoint.status not in constants.CHECKPOINT_DELETABLE:
        raise exception.CheckpointNotBeDeleted(checkpoint_id=checkpoint.id,
                                               status=checkpoint.status)
    busy = busy_with(session, checkpoint.id)
    if busy:
        raise exception.Conflict(
            f"The checkpoint {checkpoint.id} can not be deleted while {busy} is in progress.")
    set_checkpoint_status(session, checkpoint, constants.CHECKPOINT_STATUS_DELETING,
                          constants.CHECKPOINT_DELETABLE)
    queue.submit(session, context, constants.OPERATION_DELETE, checkpoint.provider_id,
                 project_id=checkpoint.project_id, checkpoint_id=checkpoint.id,
                 plan_id=checkpoint.plan_id, log_status=constants.CHECKPOINT_STATUS_DELETING)
    quota.release(session, checkpoint.project_id, "checkpoints", 1)


def busy_with(session: Session, checkpoint_id: str) -> str | None:
    """A restore, verification or copy still reading this checkpoint, if any."""
    for model, what in ((models.Restore, "restore"), (models.Verification, "verification")):
        found = session.scalar(select(model.id).where(
            model.checkpoint_id == checkpoint_id,
            model.status == constants.RESTORE_STATUS_IN_PROGRESS).limit(1))
        if found:
            return f"{what} {found}"
    found = session.scalar(select(models.Checkpoint.id).where(
        models.Checkpoint.copy_of == checkpoint_id,
        models.Checkpoint.status.in_([constants.CHECKPOINT_STATUS_WAIT_COPYING,
                                      constants.CHECKPOINT_STATUS_COPYING])).limit(1))
    return f"copy {found}" if found else None


def reset_state(session: Session, checkpoint: models.Checkpoint, state: str) -> None:
    if checkpoint.status not in constants.CHECKPOINT_RESETTABLE:
        raise exception.CheckpointNotBeReset(checkpoint_id=checkpoint.id,
                                             status=checkpoint.status)
    set_checkpoint_status(session, checkpoint, state, constants.CHECKPOINT_RESETTABLE)


def check_parameters(provider, checkpoint: models.Checkpoint, parameters: dict,
                     context: RequestContext, operation: str) -> None:
    """Each plugin's own checks of a restore, verify or copy, for every resource of the
    checkpoint, before anything is recorded (400 naming the parameter and the resource)."""
    from karbor.services.protection import graph as graph_mod
    from karbor.services.protection.protection_plugin import parameters_for

    if not checkpoint.resource_graph:
        return
    for node in graph_mod.walk(graph_mod.deserialize(checkpoint.resource_graph)):
        resource = node.value
        plugin = provider.plugin_classes.get(resource.type)
        check = getattr(plugin, f"check_{operation}_parameters", None)
        if check is None:
            continue
        try:
            check(resource, parameters_for(parameters, resource), context)
        except exception.InvalidInput as exc:
            raise exception.InvalidInput(
                reason=f"parameters of {resource.type} {resource.id} ({resource.name}): "
                       f"{exc.msg.removeprefix('Invalid input received: ')}") from None


def _require_available(checkpoint: models.Checkpoint, action: str) -> None:
    if checkpoint.status not in constants.CHECKPOINT_USABLE:
        raise exception.CheckpointNotAvailable(checkpoint_id=checkpoint.id,
                                               status=checkpoint.status, action=action)


def restore(session: Session, context: RequestContext, checkpoint: models.Checkpoint,
            parameters: dict, restore_target: str | None,
            restore_auth: dict | None) -> models.Restore:
    _require_available(checkpoint, "restored")
    record = models.Restore(
        id=str(uuid.uuid4()), project_id=context.project_id,
        provider_id=checkpoint.provider_id, checkpoint_id=checkpoint.id,
        restore_target=restore_target,
        restore_auth=json.dumps(restore_auth) if restore_auth else None,
        parameters=json.dumps(parameters), status=constants.RESTORE_STATUS_IN_PROGRESS,
        resources_status="{}", resources_reason="{}", created_at=utcnow())
    session.add(record)
    queue.submit(session, context, constants.OPERATION_RESTORE, checkpoint.provider_id,
                 project_id=context.project_id, checkpoint_id=checkpoint.id,
                 restore_id=record.id, plan_id=checkpoint.plan_id, parameters=parameters,
                 log_status=constants.RESTORE_STATUS_IN_PROGRESS)
    return record


def verify(session: Session, context: RequestContext, checkpoint: models.Checkpoint,
           parameters: dict) -> models.Verification:
    _require_available(checkpoint, "verified")
    record = models.Verification(
        id=str(uuid.uuid4()), project_id=context.project_id,
        provider_id=checkpoint.provider_id, checkpoint_id=checkpoint.id,
        parameters=json.dumps(parameters), status=constants.VERIFICATION_STATUS_IN_PROGRESS,
        resources_status="{}", resources_reason="{}", created_at=utcnow())
    session.add(record)
    queue.submit(session, context, constants.OPERATION_VERIFY, checkpoint.provider_id,
                 project_id=context.project_id, checkpoint_id=checkpoint.id,
                 verification_id=record.id, plan_id=checkpoint.plan_id,
                 parameters=parameters,
                 log_status=constants.VERIFICATION_STATUS_IN_PROGRESS)
    return record


def copy(session: Session, context: RequestContext, plan: models.Plan,
         parameters: dict, target_bank: str = "primary") -> list[dict]:
    """Queue a copy of every available checkpoint of the plan not copied yet.

    ``target_bank`` is where the copies go: the provider's copy bank when it has
    one, so that the copies survive the loss of the primary bank.
    """
    sources = session.scalars(
        select(models.Checkpoint).where(
            models.Checkpoint.plan_id == plan.id,
            models.Checkpoint.project_id == plan.project_id,
            models.Checkpoint.deleted == False,  # noqa: E712
        ).order_by(models.Checkpoint.created_at)).all()
    if not sources:
        raise exception.InvalidInput(reason=f"The plan {plan.id} has not been protected.")
    copied = {c.copy_of for c in sources if c.copy_of and
              c.status != constants.CHECKPOINT_STATUS_ERROR}
    from karbor.services.protection import provider as provider_mod

    provider = provider_mod.registry().show(plan.provider_id)
    for source in sources:  # every check first: one refused copy records none
        if (not source.copy_of and source.status == constants.CHECKPOINT_STATUS_AVAILABLE
                and source.id not in copied):
            check_parameters(provider, source, parameters, context, "copy")
    pairs = []
    now = utcnow()
    for index, source in enumerate(sources):
        if (source.copy_of or source.status != constants.CHECKPOINT_STATUS_AVAILABLE
                or source.id in copied):
            continue
        copy_record = models.Checkpoint(
            id=str(uuid.uuid4()), project_id=source.project_id,
            provider_id=source.provider_id, plan_id=plan.id,
            status=constants.CHECKPOINT_STATUS_WAIT_COPYING,
            protection_plan=source.protection_plan, resource_graph=source.resource_graph,
            extra_info=json.dumps({}), copy_of=source.id, bank=target_bank,
            created_at=now + dt.timedelta(microseconds=index))
        session.add(copy_record)
        queue.submit(session, context, constants.OPERATION_COPY, source.provider_id,
                     project_id=source.project_id, checkpoint_id=copy_record.id,
                     source_checkpoint_id=source.id, plan_id=plan.id, parameters=parameters,
                     log_status=constants.CHECKPOINT_STATUS_WAIT_COPYING)
        pairs.append({"checkpoint_protect_id": source.id,
                      "checkpoint_copy_id": copy_record.id})
    return pairs
