"""Acting for the owner of a scheduled operation through a Keystone trust.

With ``auth_strategy = keystone`` every scheduled operation's state row holds a trust:
trustor = the user who created the operation, trustee = the Karbor service user, the
operation's project, the creator's roles, impersonation.  Operations of one user in one
project share a trust; the trust goes when its last operation goes.

Sharing without races: creating an operation that reuses a trust locks a live state row
holding it (``FOR UPDATE``); deleting an operation updates its own state row and then
counts the live rows still holding the trust, in the same transaction.  Whichever comes
second sees the other (on SQLite write transactions are serialised anyway), so a trust
is never deleted while a committed operation holds it.

When an operation fires, the engine authenticates as the trustee scoped to the trust;
the token it gets back carries the owner's user id, project, roles and catalog.  The
keystoneauth plugin of each trust is kept, so its token is reused until it nears expiry.
"""

from __future__ import annotations

import logging
import threading

from keystoneauth1 import exceptions as ks_exc
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from karbor.common import exception, keystone
from karbor.common.context import RequestContext
from karbor.db import models

LOG = logging.getLogger(__name__)

_MAX_CACHED = 10000
_lock = threading.Lock()
_plugins: dict[str, object] = {}

State = models.ScheduledOperationState
Operation = models.ScheduledOperation


# --------------------------------------------------------------------------- bookkeeping


def reusable_trust(session: Session, user_id: str, project_id: str) -> str | None:
    """The trust a live operation of this user in this project already holds, if any."""
    stmt = (select(State.trust_id)
            .join(Operation, Operation.id == State.operation_id)
            .where(Operation.user_id == user_id, Operation.project_id == project_id,
                   Operation.deleted == False,  # noqa: E712
                   State.deleted == False,  # noqa: E712
                   State.trust_id.is_not(None))
            .order_by(State.id).limit(1))
    return session.scalar(stmt)


def holds_trust(session: Session, trust_id: str, *, lock: bool = False) -> bool:
    """Whether a live operation's state row still holds ``trust_id`` (locking one if asked)."""
    stmt = (select(State.id).where(State.trust_id == trust_id,
                                   State.deleted == False)  # noqa: E712
            .order_by(State.id).limit(1))
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt) is not None


def trust_in_use(session: Session, trust_id: str) -> bool:
    """Whether any live state row holds ``trust_id`` (call after marking yours deleted)."""
    session.flush()
    count = session.scalar(select(func.count()).select_from(State).where(
        State.trust_id == trust_id, State.deleted == False))  # noqa: E712
    return bool(count)


def trust_of(session: Session, operation_id: str) -> str | None:
    return session.scalar(select(State.trust_id).where(
        State.operation_id == operation_id,
        State.deleted == False).order_by(State.id).limit(1))  # noqa: E712


# --------------------------------------------------------------------------- acting


def _plugin(trust_id: str):
    with _lock:
        plugin = _plugins.get(trust_id)
    if plugin is None:
        plugin = keystone.trust_auth(trust_id)
        with _lock:
            if len(_plugins) >= _MAX_CACHED:
                _plugins.clear()
            plugin = _plugins.setdefault(trust_id, plugin)
    return plugin


def forget(trust_id: str) -> None:
    with _lock:
        _plugins.pop(trust_id, None)


def trust_context(trust_id: str, *, project_id: str | None = None) -> RequestContext:
    """The context of a trust-scoped token: the trustor's user, project, roles, catalog."""
    plugin = _plugin(trust_id)
    try:
        auth_ref = plugin.get_access(keystone.trust_session(trust_id, plugin))
    except ks_exc.ClientException as exc:
        forget(trust_id)
        raise keystone.identity_error(exc, f"issue a token for trust {trust_id}") from exc
    context = keystone.context_from_access(auth_ref)
    if project_id is not None and context.project_id != project_id:
        raise exception.NotAuthorized(
            f"Trust {trust_id} is scoped to project {context.project_id}, not to the "
            f"operation's project {project_id}.")
    return context


def owner_context(session: Session, op: models.ScheduledOperation) -> RequestContext:
    """As whom the engine acts for ``op`` in Keystone mode: its trust's token."""
    trust_id = trust_of(session, op.id)
    if not trust_id:
        raise exception.NotAuthorized(
            f"Scheduled operation {op.id} has no Keystone trust (it was created without "
            "Keystone); delete and re-create it to let Karbor act for its owner.")
    return trust_context(trust_id, project_id=op.project_id)


def _reset_for_tests() -> None:
    with _lock:
        _plugins.clear()
