"""Every v1 route, in one place: each controller module registers its own URLs."""

from __future__ import annotations

from flask import Flask

from karbor.api.v1 import (
    checkpoints,
    operation_logs,
    plans,
    protectables,
    providers,
    quota_classes,
    quotas,
    restores,
    scheduled_operations,
    services,
    triggers,
    verifications,
)

MODULES = (plans, protectables, providers, checkpoints, restores, verifications,
           operation_logs, triggers, scheduled_operations, services, quotas, quota_classes)


def register(app: Flask) -> None:
    for module in MODULES:
        module.register(app)
