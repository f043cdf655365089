"""Disaster recovery: rebuild checkpoint records of a fresh database from a bank.

Everything needed is in the bank (``index.json`` per checkpoint).  A checkpoint
whose index still says it was being written (``protecting``, ``copying`` …) lost
its writer: it is imported as ``error`` with that reason, and the bank is told
too, so it is never mistaken for a complete checkpoint.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass, field

from sqlalchemy import select

from karbor import quota
from karbor.common import constants, exception
from karbor.db import models
from karbor.db.session import session_scope
from karbor.services.protection.checkpoint import BankCheckpoint
from karbor.services.protection.provider import Provider

LOG = logging.getLogger(__name__)

UNFINISHED = {
    constants.CHECKPOINT_STATUS_PROTECTING: constants.CHECKPOINT_STATUS_ERROR,
    constants.CHECKPOINT_STATUS_WAIT_COPYING: constants.CHECKPOINT_STATUS_ERROR,
    constants.CHECKPOINT_STATUS_COPYING: constants.CHECKPOINT_STATUS_ERROR,
    constants.CHECKPOINT_STATUS_DELETING: constants.CHECKPOINT_STATUS_ERROR_DELETING,
}


@dataclass
class ImportReport:
    imported: list[str] = field(default_factory=list)
    orphaned: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)


def _checkpoint_ids(bank) -> list[str]:
    ids = []
    for key in bank.list_objects("/checkpoints/"):
        parts = key.strip("/").split("/")
        if len(parts) == 3 and parts[2] == "index.json":
            ids.append(parts[1])
    return ids


def import_bank(provider: Provider, which: str = "primary") -> ImportReport:
    bank = provider.bank_for(which)
    report = ImportReport()
    for checkpoint_id in _checkpoint_ids(bank):
        try:
            cp = BankCheckpoint.load(bank, checkpoint_id)
        except exception.KarborException as exc:
            LOG.warning("checkpoint %s in the bank is unreadable: %s", checkpoint_id, exc)
            report.skipped.append(checkpoint_id)
            continue
        md = cp.metadata
        if md.get("provider_id") != provider.id or cp.status == \
                constants.CHECKPOINT_STATUS_DELETED:
            report.skipped.append(checkpoint_id)
            continue
        status, reason = cp.status, None
        if status in UNFINISHED:
            status = UNFINISHED[status]
            reason = (f"imported from the bank while {cp.status}: the process writing it "
                      f"(owner {md.get('owner_id')}) is gone")
        with session_scope(write=True) as session:
            if session.scalar(select(models.Checkpoint.id).where(
                    models.Checkpoint.id == checkpoint_id)):
                report.skipped.append(checkpoint_id)
                continue
            created = dt.datetime.fromtimestamp(int(md.get("timestamp", 0)),
                                                dt.UTC).replace(tzinfo=None)
            session.add(models.Checkpoint(
                id=checkpoint_id, project_id=md["project_id"], provider_id=provider.id,
                plan_id=md["protection_plan"]["id"], status=status, status_reason=reason,
                protection_plan=json.dumps(md["protection_plan"]),
                resource_graph=md.get("resource_graph"), extra_info=md.get("extra_info"),
                bank=which, created_at=created))
            quota.consume(session, md["project_id"], "checkpoints", 1)
        if reason:
            cp.status = status
            cp.commit()
            report.orphaned.append(checkpoint_id)
        else:
            report.imported.append(checkpoint_id)
    return report
