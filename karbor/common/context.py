"""The caller of a request, as the API and the engine see it."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from typing import Any


@dataclass
class RequestContext:
    user_id: str | None = None
    project_id: str | None = None
    roles: list[str] = field(default_factory=list)
    auth_token: str | None = None
    user_name: str | None = None
    project_name: str | None = None
    request_id: str = field(default_factory=lambda: "req-" + str(uuid.uuid4()))
    remote_address: str | None = None
    service_catalog: list[dict[str, Any]] = field(default_factory=list)
    auth_token_info: dict[str, Any] | None = None
    is_admin_project: bool = True
    quota_class: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in [r.lower() for r in self.roles]

    def to_policy_values(self) -> dict[str, Any]:
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "roles": self.roles,
            "is_admin": self.is_admin,
            "is_admin_project": self.is_admin_project,
        }

    def to_dict(self) -> dict[str, Any]:
        """What a durable operation keeps of its caller, to act for it later."""
        return {
            "user_id": self.user_id,
            "project_id": self.project_id,
            "roles": list(self.roles),
            "user_name": self.user_name,
            "project_name": self.project_name,
            "request_id": self.request_id,
            "auth_token": self.auth_token,
            "auth_token_info": self.auth_token_info,
            "service_catalog": self.service_catalog,
        }

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> RequestContext:
        known = {k: v for k, v in values.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def can(self, action: str, target: dict[str, Any] | None = None, *,
            fatal: bool = True) -> bool:
        from karbor import policy

        return policy.authorize(self, action, target, fatal=fatal)


def admin_context() -> RequestContext:
    return RequestContext(user_id="karbor", project_id=None, roles=["admin"])
