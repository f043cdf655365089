"""HTTP and authentication: one object that turns (method, path, body) into a record.

Two ways in. Without Keystone (a ``noauth`` server, a test, a laptop) the caller names the
URL and the token ``user:project`` itself; with Keystone, keystoneauth1 (via
openstack.config, so ``OS_*`` variables and ``clouds.yaml`` both work) authenticates and
finds the ``data-protect`` endpoint in the catalog. Everything above this module sees the
same :class:`Client` and the same two exceptions.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import requests

SERVICE_TYPE = "data-protect"
DEFAULT_USER = "admin"
TIMEOUT = 60.0


class CLIError(Exception):
    """Anything the user should read as one line on stderr (exit status 1)."""


class APIError(CLIError):
    """A fault answered by the API: ``{"<faultName>": {"code", "message"}}``."""

    def __init__(self, code: int, message: str):
        super().__init__(f"{message} (HTTP {code})")
        self.code = code
        self.message = message


@dataclass
class Settings:
    """What the global options and the environment say about where and who we are."""

    url: str | None = None
    token: str | None = None
    project: str | None = None
    user: str | None = None
    os_cloud: str | None = None
    region: str | None = None
    interface: str | None = None
    insecure: bool = False
    timeout: float = TIMEOUT


def fault(resp: requests.Response) -> APIError:
    """The API's own message when it sent one; else the reason phrase, never a page of HTML."""
    message = None
    try:
        body = resp.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and len(body) == 1:
        inner = next(iter(body.values()))
        if isinstance(inner, dict) and inner.get("message") is not None:
            message = str(inner["message"])
            try:
                code = int(inner.get("code") or resp.status_code)
            except (TypeError, ValueError):
                code = resp.status_code
            return APIError(code, " ".join(message.split()) or resp.reason or "error")
    text = (resp.text or "").strip()
    if text and len(text) < 300 and "<" not in text:
        message = " ".join(text.split())
    return APIError(resp.status_code, message or resp.reason or "error")


def noauth_base(url: str, project: str | None, token: str | None) -> tuple[str, str]:
    """(``.../v1/<project>`` base, token) for a no-auth server.

    ``--url http://host:8799`` plus a project builds the base; a URL that already ends in
    ``/v1/<project>`` is taken as it is, as python-karborclient's ``--karbor-url`` is.
    """
    url = url.rstrip("/")
    path = urlsplit(url).path.rstrip("/").split("/")
    url_project = path[-1] if len(path) >= 2 and path[-2] == "v1" else None
    if url_project is None:
        if path and path[-1] == "v1":
            url = url[: -len("/v1")]
        if not project and token and ":" in token:
            project = token.split(":", 1)[1]
        if not project:
            raise CLIError("no project: give --project (or KARBOR_PROJECT), a token "
                           "'user:project', or a URL ending in /v1/<project>")
        url = f"{url}/v1/{project}"
    elif project and project != url_project:
        raise CLIError(f"--project {project} does not match the URL's project {url_project}")
    project = project or url_project
    return url, token or f"{DEFAULT_USER}:{project}"


class Client:
    """Requests relative to the project's v1 base; returns parsed JSON or raises."""

    def __init__(self, settings: Settings):
        self.settings = settings
        self._adapter = None
        self._session: requests.Session | None = None
        self.base: str | None = None
        self.token: str | None = None
        self.where = settings.url or "the data-protect endpoint"

    # -- connection ------------------------------------------------------------------------

    def _keystone(self) -> bool:
        """Keystone unless a token is given: ``--url`` then only overrides the catalog."""
        s = self.settings
        if s.token:
            return False
        env = os.environ
        return bool(s.os_cloud or env.get("OS_CLOUD") or env.get("OS_AUTH_URL")
                    or env.get("OS_AUTH_TYPE"))

    def _connect(self) -> None:
        if self._session is not None or self._adapter is not None:
            return
        s = self.settings
        if self._keystone():
            self._connect_keystone()
            return
        if not s.url:
            raise CLIError("no Karbor URL: give --url (or KARBOR_URL), or Keystone "
                           "credentials (OS_* variables, or --os-cloud with clouds.yaml)")
        self.base, self.token = noauth_base(s.url, s.project, s.token)
        self.where = self.base
        session = requests.Session()
        session.headers.update({"X-Auth-Token": self.token, "Accept": "application/json",
                                "User-Agent": "karborctl"})
        session.verify = not s.insecure
        self._session = session

    def _connect_keystone(self) -> None:
        s = self.settings
        try:
            import openstack.config
            from keystoneauth1 import adapter
            from keystoneauth1 import exceptions as ks_exc
        except ImportError as exc:  # pragma: no cover - both are dependencies
            raise CLIError(f"Keystone authentication needs openstacksdk: {exc}") from None
        try:
            config = openstack.config.OpenStackConfig()
            kwargs: dict[str, Any] = {}
            if s.region:
                kwargs["region_name"] = s.region
            region = config.get_one(cloud=s.os_cloud or os.environ.get("OS_CLOUD"), **kwargs)
            session = region.get_session()
            self._adapter = adapter.Adapter(
                session, service_type=SERVICE_TYPE,
                interface=s.interface or region.get_interface() or "public",
                region_name=s.region or region.get_region_name() or None,
                endpoint_override=s.url or None, user_agent="karborctl")
            self.where = s.url or f"the {SERVICE_TYPE} endpoint"
        except (ks_exc.ClientException, openstack.exceptions.SDKException) as exc:
            raise CLIError(f"authentication failed: {exc}") from None

    # -- requests --------------------------------------------------------------------------

    def request(self, method: str, path: str, body: Any = None,
                params: dict[str, Any] | None = None) -> Any:
        """The response body parsed (``{}`` when empty); API faults raise :class:`APIError`."""
        self._connect()
        params = {k: v for k, v in (params or {}).items() if v is not None}
        path = "/".join(quote(part, safe=":#@") for part in path.split("/"))
        kwargs: dict[str, Any] = {"params": params or None}
        if body is not None:
            kwargs["data"] = json.dumps(body)
            kwargs["headers"] = {"Content-Type": "application/json"}
        try:
            if self._adapter is not None:
                resp = self._request_keystone(method, path, kwargs)
            else:
                resp = self._session.request(method, f"{self.base}/{path}",
                                             timeout=self.settings.timeout, **kwargs)
        except requests.exceptions.ConnectionError as exc:
            raise CLIError(self._connection_message(exc)) from None
        except requests.exceptions.Timeout:
            raise CLIError(f"no answer from {self.where} within "
                           f"{self.settings.timeout:g} s") from None
        except requests.exceptions.RequestException as exc:
            raise CLIError(f"request to {self.where} failed: {exc}") from None
        if resp.status_code >= 400:
            raise fault(resp)
        if not resp.content:
            return {}
        try:
            return resp.json()
        except ValueError:
            raise CLIError(f"{method} {path}: the answer is not JSON "
                           f"(HTTP {resp.status_code})") from None

    def _request_keystone(self, method: str, path: str, kwargs: dict) -> requests.Response:
        from keystoneauth1 import exceptions as ks_exc

        try:
            return self._adapter.request(f"/{path}", method, raise_exc=False, **kwargs)
        except ks_exc.ConnectFailure as exc:
            raise CLIError(f"cannot connect to {self.where}: {exc}") from None
        except ks_exc.EndpointNotFound:
            raise CLIError(f"no {SERVICE_TYPE} endpoint in the service catalog "
                           "(give --url to override)") from None
        except ks_exc.ClientException as exc:
            raise CLIError(f"authentication failed: {exc}") from None

    def _connection_message(self, exc: Exception) -> str:
        text = str(exc)
        if "refused" in text.lower():
            return f"cannot connect to {self.where}: connection refused (is karbor-server " \
                   "running?)"
        if "resolve" in text.lower() or "name or service" in text.lower():
            return f"cannot connect to {self.where}: unknown host"
        return f"cannot connect to {self.where}"

    def project_id(self) -> str | None:
        """The caller's project: the no-auth base's last segment, or Keystone's."""
        self._connect()
        if self.base:
            return self.base.rstrip("/").rsplit("/", 1)[-1]
        return self._adapter.get_project_id() if self._adapter is not None else None

    # -- conveniences ----------------------------------------------------------------------

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params=params)

    def post(self, path: str, body: Any) -> Any:
        return self.request("POST", path, body)

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)
