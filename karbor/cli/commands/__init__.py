"""One module per resource; each has ``register(subparsers, parents)``."""

from karbor.cli.commands import (
    checkpoints,
    operation_logs,
    plans,
    protectables,
    providers,
    quotas,
    restores,
    scheduled_operations,
    services,
    triggers,
    verifications,
)

MODULES = (providers, protectables, plans, checkpoints, restores, verifications,
           operation_logs, triggers, scheduled_operations, services, quotas)
