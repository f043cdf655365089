"""Keystone: the one place that builds keystoneauth sessions, and Keystone trusts.

Three kinds of caller talk to OpenStack services through a keystoneauth session:

* **the user of a request** -- the token keystonemiddleware validated
  (``context.auth_token``) plus the token body it left in ``keystone.token_info``
  (``context.auth_token_info``) become an access-info plugin, so no new token is
  requested; optionally wrapped so that the Karbor service token travels along and
  long operations keep working past the user token's expiry where services accept it;
* **the Karbor service user** -- keystoneauth's own options in the ``[trustee]`` section
  (``auth_type = password``, ``auth_url``, ``username``, ``password``, ``user_domain_id``,
  ... plus the session options ``cafile``, ``insecure``, ``timeout``);
* **a trust** -- the ``[trustee]`` user scoped to a trust instead of a project: with an
  impersonating trust its token *is* the trustor's (user, project, roles, catalog).

Trusts are created at scheduled-operation creation with the caller's token (trustor =
caller, trustee = the ``[trustee]`` user, the caller's project and roles, impersonation)
and deleted with the caller's token when the last operation using them goes.  Identity
errors are turned into Karbor exceptions with a status the API can show.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from keystoneauth1 import access as ks_access
from keystoneauth1 import adapter as ks_adapter
from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
from keystoneauth1 import service_token as ks_service_token
from keystoneauth1 import session as ks_session
from keystoneauth1.identity import access as ks_identity_access
from oslo_config import cfg

from karbor.common import exception
from karbor.common.config import CONF
from karbor.common.context import RequestContext

LOG = logging.getLogger(__name__)

TRUSTEE_GROUP = "trustee"
CLIENTS_GROUP = "clients"

clients_opts = [
    cfg.StrOpt("region_name",
               help="Region of the OpenStack endpoints Karbor uses (catalog lookups); "
                    "unset: any region."),
    cfg.StrOpt("interface", default="public", choices=["public", "internal", "admin"],
               help="Catalog interface of the OpenStack endpoints Karbor uses."),
]

ks_loading.register_auth_conf_options(CONF, TRUSTEE_GROUP)
ks_loading.register_session_conf_options(CONF, TRUSTEE_GROUP)
CONF.register_opts(clients_opts, group=CLIENTS_GROUP)

# Scope options of the [trustee] auth plugin that a trust-scoped token must not carry.
_SCOPE_DESTS = ("project_id", "project_name", "project_domain_id", "project_domain_name",
                "domain_id", "domain_name", "system_scope", "tenant_id", "tenant_name",
                "default_domain_id", "default_domain_name")


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """``[trustee]`` (password auth + session options) and ``[clients]``, for the sample."""
    trustee = (ks_loading.get_auth_common_conf_options()
               + ks_loading.get_auth_plugin_conf_options("password")
               + ks_loading.get_session_conf_options())
    return [(TRUSTEE_GROUP, trustee), (CLIENTS_GROUP, clients_opts)]


def enabled() -> bool:
    """True when requests carry Keystone tokens, so trusts and user sessions exist."""
    return CONF.auth_strategy == "keystone"


# --------------------------------------------------------------------------- errors


def http_error(status: int, text: str) -> exception.KarborException:
    """The Karbor exception (and so the API status) of a service's HTTP error ``status``."""
    if status == 401:
        return exception.NotAuthenticated(text)
    if status == 403:
        return exception.NotAuthorized(text)
    if status == 404:
        return exception.NotFound(text)
    if 400 <= status < 500:
        return exception.Invalid(text)
    return exception.ServiceUnavailable(reason=text)


def identity_error(exc: Exception, doing: str) -> exception.KarborException:
    """A Karbor exception with a status and a message the API can show for ``exc``."""
    if isinstance(exc, exception.KarborException):
        return exc
    if isinstance(exc, ks_exc.HttpError):
        detail = exc.details or exc.message or type(exc).__name__
        status = exc.http_status or 500
        return http_error(status, f"Keystone refused to {doing}: {detail} (HTTP {status})")
    if isinstance(exc, ks_exc.MissingRequiredOptions):
        return exception.ServiceUnavailable(
            reason=f"Karbor cannot {doing}: the [{TRUSTEE_GROUP}] section lacks "
                   f"{', '.join(o.dest for o in exc.options)}")
    if isinstance(exc, ks_exc.ClientException):
        return exception.ServiceUnavailable(
            reason=f"Karbor cannot {doing}: the identity service is unreachable "
                   f"({type(exc).__name__}: {exc})")
    return exception.ServiceUnavailable(reason=f"Karbor cannot {doing}: {exc}")


# --------------------------------------------------------------------------- sessions

_lock = threading.Lock()
_service_auth: Any = None
_trustee_user_id: str | None = None


def _new_session(auth: Any) -> ks_session.Session:
    return ks_loading.load_session_from_conf_options(CONF, TRUSTEE_GROUP, auth=auth)


def _loader():
    auth_type = CONF[TRUSTEE_GROUP].auth_type
    if not auth_type:
        raise exception.ServiceUnavailable(
            reason=f"Karbor cannot act for users: the [{TRUSTEE_GROUP}] section (the Karbor "
                   "service user's keystoneauth options: auth_type, auth_url, username, "
                   "password, user_domain_id) is not configured")
    try:
        return ks_loading.get_plugin_loader(auth_type)
    except ks_exc.NoMatchingPlugin as exc:
        raise exception.ServiceUnavailable(
            reason=f"[{TRUSTEE_GROUP}] auth_type {auth_type!r} is unknown") from exc


def service_auth():
    """The Karbor service user's auth plugin (one per process: its token is reused)."""
    global _service_auth
    with _lock:
        if _service_auth is None:
            _loader()
            try:
                _service_auth = ks_loading.load_auth_from_conf_options(CONF, TRUSTEE_GROUP)
            except ks_exc.ClientException as exc:
                raise identity_error(exc, "load the Karbor service credentials") from exc
        return _service_auth


def service_session() -> ks_session.Session:
    """A session acting as the Karbor service user."""
    return _new_session(service_auth())


def trustee_user_id() -> str:
    """Keystone id of the ``[trustee]`` user (asked once per process)."""
    global _trustee_user_id
    if _trustee_user_id is None:
        auth = service_auth()
        try:
            user_id = auth.get_user_id(service_session())
        except ks_exc.ClientException as exc:
            # The caller is not at fault: whatever Keystone said, Karbor is misconfigured
            # or Keystone is unwell.
            reason = identity_error(exc, "authenticate the Karbor service user").msg
            raise exception.ServiceUnavailable(reason=reason) from exc
        if not user_id:
            raise exception.ServiceUnavailable(
                reason="Karbor cannot find its service user's id in Keystone")
        _trustee_user_id = user_id
    return _trustee_user_id


def user_auth(context: RequestContext):
    """The caller's validated token as a keystoneauth plugin (no new authentication)."""
    if not context.auth_token or not context.auth_token_info:
        raise exception.NotAuthenticated(
            "This needs the caller's Keystone token (auth_strategy = keystone).")
    auth_ref = ks_access.create(body=context.auth_token_info, auth_token=context.auth_token)
    return ks_identity_access.AccessInfoPlugin(auth_ref, auth_url=identity_url())


def user_session(context: RequestContext, *,
                 with_service_token: bool = True) -> ks_session.Session:
    """A session acting as the caller; with the Karbor service token when configured."""
    auth = user_auth(context)
    if with_service_token and CONF[TRUSTEE_GROUP].auth_type:
        auth = ks_service_token.ServiceTokenAuthWrapper(user_auth=auth,
                                                        service_auth=service_auth())
    return _new_session(auth)


def trust_auth(trust_id: str):
    """The ``[trustee]`` user's plugin scoped to ``trust_id`` (its own token cache)."""
    loader = _loader()
    dests = {opt.dest for opt in loader.get_options()}
    if "trust_id" not in dests:
        raise exception.ServiceUnavailable(
            reason=f"[{TRUSTEE_GROUP}] auth_type {CONF[TRUSTEE_GROUP].auth_type!r} cannot "
                   "use trusts; use password")
    overrides: dict[str, Any] = {d: None for d in _SCOPE_DESTS if d in dests}
    overrides["trust_id"] = trust_id
    try:
        return ks_loading.load_auth_from_conf_options(CONF, TRUSTEE_GROUP, **overrides)
    except ks_exc.ClientException as exc:
        raise identity_error(exc, "load the Karbor service credentials") from exc


def trust_session(trust_id: str, auth: Any = None) -> ks_session.Session:
    """A session acting through ``trust_id`` (as the trustor, with impersonation)."""
    return _new_session(auth or trust_auth(trust_id))


def client_adapter(session: ks_session.Session, service_type: str,
                   **kwargs: Any) -> ks_adapter.Adapter:
    """An adapter for one OpenStack service: endpoint from the catalog, [clients] region
    and interface unless given."""
    kwargs.setdefault("region_name", CONF[CLIENTS_GROUP].region_name)
    kwargs.setdefault("interface", CONF[CLIENTS_GROUP].interface)
    return ks_adapter.Adapter(session, service_type=service_type, **kwargs)


def identity_url() -> str | None:
    """The Keystone v3 API URL, from ``[trustee] auth_url`` (else keystone_authtoken's)."""
    url = None
    try:
        url = CONF[TRUSTEE_GROUP].auth_url
    except cfg.NoSuchOptError:
        url = None
    if not url:
        try:
            url = CONF.keystone_authtoken.auth_url or \
                CONF.keystone_authtoken.www_authenticate_uri
        except (cfg.NoSuchOptError, cfg.NoSuchGroupError):
            url = None
    if not url:
        return None
    url = url.rstrip("/")
    if url.endswith("/v3"):
        return url
    if url.endswith("/v2.0"):
        url = url[: -len("/v2.0")]
    return url + "/v3"


def _identity(path: str) -> str:
    base = identity_url()
    if not base:
        raise exception.ServiceUnavailable(
            reason=f"Karbor does not know Keystone's address: set [{TRUSTEE_GROUP}] auth_url")
    return base + path


def context_from_access(auth_ref) -> RequestContext:
    """A RequestContext for the holder of a token (user, project, roles, token, catalog)."""
    body = getattr(auth_ref, "_data", None)  # the token body, as keystonemiddleware keeps it
    catalog = auth_ref.service_catalog.catalog if auth_ref.has_service_catalog() else []
    return RequestContext(
        user_id=auth_ref.user_id, user_name=auth_ref.username,
        project_id=auth_ref.project_id, project_name=auth_ref.project_name,
        roles=list(auth_ref.role_names or []), auth_token=auth_ref.auth_token,
        service_catalog=list(catalog or []), auth_token_info=body,
        is_admin_project=bool(auth_ref.is_admin_project))


# --------------------------------------------------------------------------- trusts


def create_trust(context: RequestContext) -> str:
    """Create a trust from the caller to the Karbor service user; return its id.

    trustor = the caller, trustee = the ``[trustee]`` user, project = the caller's,
    roles = the caller's, impersonation = True (trust tokens carry the caller's identity).
    """
    if not context.user_id or not context.project_id:
        raise exception.NotAuthenticated("A trust needs a project-scoped Keystone token.")
    if not context.roles:
        raise exception.NotAuthorized("The caller's token has no roles to delegate.")
    trustee = trustee_user_id()
    body = {"trust": {"trustor_user_id": context.user_id, "trustee_user_id": trustee,
                      "project_id": context.project_id, "impersonation": True,
                      "allow_redelegation": False,
                      "roles": [{"name": name} for name in context.roles]}}
    try:
        resp = user_session(context, with_service_token=False).post(
            _identity("/OS-TRUST/trusts"), json=body)
        trust_id = resp.json()["trust"]["id"]
    except ks_exc.ClientException as exc:
        raise identity_error(exc, f"create a trust for user {context.user_id} in project "
                                  f"{context.project_id}") from exc
    except (ValueError, KeyError) as exc:
        raise exception.ServiceUnavailable(
            reason=f"Keystone answered the trust creation unexpectedly: {exc}") from exc
    LOG.info("created trust %s (trustor %s, trustee %s, project %s)", trust_id,
             context.user_id, trustee, context.project_id)
    return trust_id


def delete_trust(context: RequestContext | None, trust_id: str) -> bool:
    """Delete a trust: as the caller (Keystone lets only the trustor, or an admin, do it),
    else as the Karbor service user.  True when it is gone; never raises."""
    sessions = []
    if context is not None and context.auth_token and context.auth_token_info:
        sessions.append(("caller", lambda: user_session(context, with_service_token=False)))
    if CONF[TRUSTEE_GROUP].auth_type:
        sessions.append(("karbor service user", service_session))
    for who, make in sessions:
        try:
            make().delete(_identity(f"/OS-TRUST/trusts/{trust_id}"))
        except ks_exc.NotFound:
            return True
        except (ks_exc.ClientException, exception.KarborException) as exc:
            LOG.warning("trust %s could not be deleted as the %s: %s", trust_id, who, exc)
            continue
        LOG.info("deleted trust %s", trust_id)
        return True
    LOG.warning("trust %s was left in Keystone: nobody could delete it", trust_id)
    return False


def _reset_for_tests() -> None:
    global _service_auth, _trustee_user_id
    with _lock:
        _service_auth = None
        _trustee_user_id = None
