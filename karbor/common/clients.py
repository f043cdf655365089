"""OpenStack clients: the one place that builds openstacksdk connections.

A connection acts either as the caller of a request (the Keystone token keystonemiddleware
validated, through :func:`karbor.common.keystone.user_session`) or through a trust
(:func:`karbor.common.keystone.trust_session`, for scheduled operations).  Endpoints come
from the token's catalog, with the ``[clients]`` ``region_name`` and ``interface``.

Without Keystone (``auth_strategy = noauth`` and no trust) there is no OpenStack cloud:
:class:`NoCloudConfigured` (503) says so instead of failing somewhere deeper.
OpenStack errors are turned into Karbor exceptions by :func:`translate`.
"""

from __future__ import annotations

import logging
from typing import Any

import openstack.connection
from keystoneauth1 import exceptions as ks_exc
from openstack import exceptions as sdk_exc

from karbor.common import exception, keystone
from karbor.common.config import CONF
from karbor.common.context import RequestContext

LOG = logging.getLogger(__name__)


class NoCloudConfigured(exception.ServiceUnavailable):
    message = ("no OpenStack cloud configured: %(reason)s")


def cloud_configured(context: RequestContext | None = None) -> bool:
    """True when a connection can be built for ``context`` (Keystone mode with a token)."""
    if not keystone.enabled():
        return False
    return context is None or bool(context.auth_token and context.auth_token_info)


def user_or_trust_session(context: RequestContext | None = None, *,
                          trust_id: str | None = None):
    """The keystoneauth session :func:`connection` uses: the caller of ``context``, or
    ``trust_id``.  For services openstacksdk has no proxy for (see :func:`service_adapter`)."""
    if trust_id:
        return keystone.trust_session(trust_id)
    if not keystone.enabled():
        raise NoCloudConfigured(
            reason="Karbor runs with auth_strategy = noauth, so it has no Keystone "
                   "and no OpenStack services to talk to")
    if context is None or not context.auth_token or not context.auth_token_info:
        raise NoCloudConfigured(
            reason="the request carries no validated Keystone token")
    return keystone.user_session(context)


def service_adapter(context: RequestContext | None, service_type: str, *,
                    trust_id: str | None = None, **kwargs: Any):
    """A keystoneauth Adapter for ``service_type`` (e.g. ``database`` for Trove, which
    openstacksdk has no proxy for): the endpoint comes from the catalog (``[clients]``
    region and interface unless given), no version discovery, HTTP errors raise
    keystoneauth's exceptions."""
    return keystone.client_adapter(user_or_trust_session(context, trust_id=trust_id),
                                   service_type, **kwargs)


def connection(context: RequestContext | None = None, *,
               trust_id: str | None = None, **kwargs: Any) -> openstack.connection.Connection:
    """An openstacksdk Connection acting as the caller of ``context`` or through ``trust_id``.

    ``kwargs`` override the ``[clients]`` region/interface or pass further cloud options.
    """
    session = user_or_trust_session(context, trust_id=trust_id)
    kwargs.setdefault("region_name", CONF[keystone.CLIENTS_GROUP].region_name)
    kwargs.setdefault("interface", CONF[keystone.CLIENTS_GROUP].interface)
    return openstack.connection.Connection(
        session=session, app_name="karbor",
        **{k: v for k, v in kwargs.items() if v is not None})


def translate(exc: Exception, doing: str) -> exception.KarborException:
    """A Karbor exception (status + readable message) for an OpenStack/keystoneauth error.

    Not-found errors are left to the caller (it knows which resource was missing).
    """
    if isinstance(exc, exception.KarborException):
        return exc
    if isinstance(exc, (ks_exc.EndpointNotFound, sdk_exc.ServiceDisabledException)):
        return exception.ServiceUnavailable(
            reason=f"Karbor cannot {doing}: the service is not in the caller's catalog "
                   f"(region {CONF[keystone.CLIENTS_GROUP].region_name or 'any'}, interface "
                   f"{CONF[keystone.CLIENTS_GROUP].interface}): {exc}")
    if isinstance(exc, sdk_exc.HttpException):
        status = exc.status_code or 500
        return keystone.http_error(
            status, f"Karbor cannot {doing}: {exc.details or exc.message} (HTTP {status})")
    if isinstance(exc, ks_exc.HttpError):
        return keystone.identity_error(exc, doing)
    if isinstance(exc, (ks_exc.ClientException, sdk_exc.SDKException)):
        return exception.ServiceUnavailable(
            reason=f"Karbor cannot {doing}: {type(exc).__name__}: {exc}")
    return exception.KarborException(f"Karbor cannot {doing}: {type(exc).__name__}: {exc}")


def is_not_found(exc: Exception) -> bool:
    return isinstance(exc, (sdk_exc.NotFoundException, sdk_exc.ResourceNotFound,
                            ks_exc.NotFound))
