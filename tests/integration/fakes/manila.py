"""A **fake** Manila (shared file systems API v2) for the tests of Karbor's Manila plugins.

Manila cannot run here (it needs share back ends and its own services), so this fake speaks
the real Manila v2 REST API for exactly the calls Karbor makes, with the real URLs,
bodies and rules:

* version discovery: ``GET /`` (300, the version list) and ``GET /v2/`` (the v2 document,
  ``version`` 2.84, ``min_version`` 2.0); microversions from ``X-OpenStack-Manila-API-Version``
  or ``OpenStack-API-Version: shared-file-system 2.x`` (out of range: 404, as Manila),
  echoed in the answer;
* ``GET /v2/{project_id}/shares[/detail]`` (filters ``name``, ``status``, ``project_id``),
  ``GET|DELETE /v2/{project_id}/shares/{id}``, ``POST /v2/{project_id}/shares`` (optionally
  ``snapshot_id``: a share from a snapshot);
* ``POST /v2/{project_id}/snapshots`` (``share_id``, ``name``, ``description``, ``force``),
  ``GET|DELETE /v2/{project_id}/snapshots/{id}``.

Shares go ``creating`` (``creating_from_snapshot`` from a snapshot) -> ``available`` and
snapshots ``creating`` -> ``available`` after ``delay`` seconds; deletion goes through
``deleting``.  Manila's rules are kept: a snapshot needs an available share (or ``force``),
a share with snapshots cannot be deleted, a snapshot or share is deleted only in
``available``/``error``, a share from a snapshot needs an available snapshot and at least its
size.  ``faults`` steer failures: ``faults["snapshot"]`` / ``faults["share"]`` = ``"error"``
(the new object ends in ``error``) or ``"stuck"`` (it stays ``creating`` until
:meth:`set_status`), ``faults["snapshot_delete"] = "error"`` (``error_deleting``).
"""

from __future__ import annotations

import time

from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from tests.integration.fakes._base import GONE, FakeService, Timed, new_id, now_iso

MIN_VERSION = (2, 0)
MAX_VERSION = (2, 84)
HEADER = "X-OpenStack-Manila-API-Version"


def _version(text: str) -> tuple[int, int] | None:
    try:
        major, minor = text.strip().split(".")
        return int(major), int(minor)
    except ValueError:
        return None


def _text(version: tuple[int, int]) -> str:
    return f"{version[0]}.{version[1]}"


class FakeManila(FakeService):
    SERVICE_TYPE = "sharev2"

    def __init__(self, validate_token, *, delay: float = 0.3) -> None:
        super().__init__(validate_token, delay=delay)
        self.shares: dict[str, Timed] = {}
        self.snapshots: dict[str, Timed] = {}

    def catalog_url(self) -> str:
        return f"{self.url}/v2/$(project_id)s"

    def rules(self):
        p = "/v2/<project_id>"
        return [
            Rule("/", endpoint=self.root, methods=["GET"]),
            Rule("/v2", endpoint=self.v2, methods=["GET"]),
            Rule("/v2/", endpoint=self.v2, methods=["GET"]),
            Rule(p, endpoint=self.v2_project, methods=["GET"]),
            Rule(p + "/", endpoint=self.v2_project, methods=["GET"]),
            Rule(p + "/shares", endpoint=self.list_shares, methods=["GET"]),
            Rule(p + "/shares/detail", endpoint=self.list_shares, methods=["GET"]),
            Rule(p + "/shares", endpoint=self.create_share, methods=["POST"]),
            Rule(p + "/shares/<share_id>", endpoint=self.show_share, methods=["GET"]),
            Rule(p + "/shares/<share_id>", endpoint=self.delete_share, methods=["DELETE"]),
            Rule(p + "/snapshots", endpoint=self.create_snapshot, methods=["POST"]),
            Rule(p + "/snapshots/<snapshot_id>", endpoint=self.show_snapshot,
                 methods=["GET"]),
            Rule(p + "/snapshots/<snapshot_id>", endpoint=self.delete_snapshot,
                 methods=["DELETE"]),
        ]

    # -- versions
    def _v2_doc(self) -> dict:
        return {"id": "v2.0", "status": "CURRENT",
                "version": _text(MAX_VERSION), "min_version": _text(MIN_VERSION),
                "updated": "2015-08-27T11:33:21Z",
                "links": [{"rel": "describedby", "type": "text/html",
                           "href": "http://docs.openstack.org/"},
                          {"rel": "self", "href": f"{self.url}/v2/"}],
                "media-types": [{"base": "application/json",
                                 "type": "application/vnd.openstack.share+json;version=1"}]}

    def root(self, request):
        v1 = {"id": "v1.0", "status": "DEPRECATED", "version": "", "min_version": "",
              "updated": "2015-08-27T11:33:21Z",
              "links": [{"rel": "self", "href": f"{self.url}/v1/"}],
              "media-types": [{"base": "application/json",
                               "type": "application/vnd.openstack.share+json;version=1"}]}
        return self.json({"versions": [v1, self._v2_doc()]}, 300)

    def v2(self, request):
        return self.json({"versions": [self._v2_doc()]})

    def v2_project(self, request, project_id):
        return self.json({"versions": [self._v2_doc()]})

    # -- common checks
    def _begin(self, request, project_id):
        """Authentication + microversion: (None, headers) or (error response, None)."""
        denied = self.authenticate(request, project_id)
        if denied is not None:
            return denied, None
        wanted = request.headers.get(HEADER)
        if wanted is None:
            generic = request.headers.get("OpenStack-API-Version", "")
            if generic.startswith("shared-file-system "):
                wanted = generic.split(" ", 1)[1]
        if wanted is None:
            version = MIN_VERSION
        elif wanted.strip() == "latest":
            version = MAX_VERSION
        else:
            version = _version(wanted)
            if version is None:
                return self.error(400, f"Invalid API version request string {wanted}."), None
            if not MIN_VERSION <= version <= MAX_VERSION:
                return self.error(404, f"Version {wanted} is not supported by the API. "
                                       f"Minimum is 2.0 and maximum is 2.84."), None
        return None, {HEADER: _text(version), "Vary": HEADER}

    def _tick(self, table: dict[str, Timed]) -> None:
        clock = time.monotonic()
        for key in list(table):
            if not table[key].advance(clock):
                del table[key]

    def _owned(self, table, object_id, project_id) -> Timed | None:
        self._tick(table)
        obj = table.get(object_id)
        return obj if obj is not None and obj.body["project_id"] == project_id else None

    def _outcome(self, kind: str, success: str) -> list:
        fault = self.faults.get(kind)
        if fault == "stuck":
            return []
        return self.later("error" if fault == "error" else success)

    # -- test knobs
    def set_status(self, kind: str, object_id: str, status: str) -> None:
        """Force a share's or snapshot's status (``kind`` = ``share`` / ``snapshot``)."""
        with self.lock:
            table = self.shares if kind == "share" else self.snapshots
            table[object_id].schedule = []
            table[object_id].body["status"] = status

    def live(self, kind: str) -> dict[str, dict]:
        with self.lock:
            table = self.shares if kind == "share" else self.snapshots
            self._tick(table)
            return {k: dict(v.body) for k, v in table.items()}

    # -- shares
    def _share_view(self, share: Timed) -> dict:
        body = dict(share.body)
        body["links"] = [{"rel": "self", "href": f"{self.url}/v2/{body['project_id']}/"
                                                 f"shares/{body['id']}"}]
        return body

    def list_shares(self, request, project_id):
        error, headers = self._begin(request, project_id)
        if error:
            return error
        with self.lock:
            self._tick(self.shares)
            found = [self._share_view(s) for s in self.shares.values()
                     if s.body["project_id"] == project_id]
        for key in ("name", "status", "project_id"):
            if request.args.get(key):
                found = [s for s in found if s.get(key) == request.args[key]]
        if not request.path.endswith("/detail"):
            found = [{"id": s["id"], "name": s["name"], "links": s["links"]} for s in found]
        return self.json({"shares": found}, headers=headers)

    def show_share(self, request, project_id, share_id):
        error, headers = self._begin(request, project_id)
        if error:
            return error
        with self.lock:
            share = self._owned(self.shares, share_id, project_id)
            if share is None:
                return self.error(404, f"Share {share_id} could not be found.")
            return self.json({"share": self._share_view(share)}, headers=headers)

    def create_share(self, request, project_id):
        error, headers = self._begin(request, project_id)
        if error:
            return error
        spec = self.body(request, "share")
        if not isinstance(spec, dict):
            return spec
        proto = spec.get("share_proto")
        if not proto or str(proto).upper() not in ("NFS", "CIFS", "GLUSTERFS", "HDFS",
                                                   "CEPHFS", "MAPRFS"):
            return self.error(400, f"Invalid share protocol provided: {proto}")
        try:
            size = int(spec.get("size"))
        except (TypeError, ValueError):
            return self.error(400, "Share size must be an integer.")
        if size <= 0:
            return self.error(400, "Share size must be greater than 0.")
        with self.lock:
            snapshot_id = spec.get("snapshot_id")
            if snapshot_id:
                snapshot = self._owned(self.snapshots, snapshot_id, project_id)
                if snapshot is None:
                    return self.error(404, f"Snapshot {snapshot_id} could not be found.")
                if snapshot.body["status"] != "available":
                    return self.error(400, "status must be available")
                if size < snapshot.body["share_size"]:
                    return self.error(400, f"Share size ({size}) must be equal or greater "
                                           f"than snapshot size "
                                           f"({snapshot.body['share_size']}).")
            share_id = new_id()
            body = {"id": share_id, "name": spec.get("name"),
                    "description": spec.get("description"),
                    "status": "creating_from_snapshot" if snapshot_id else "creating",
                    "size": size, "share_proto": str(proto).upper(),
                    "share_type": spec.get("share_type") or "default",
                    "share_type_name": "default",
                    "share_network_id": spec.get("share_network_id"),
                    "availability_zone": spec.get("availability_zone") or "nova",
                    "snapshot_id": snapshot_id, "project_id": project_id,
                    "user_id": "fake-user", "metadata": spec.get("metadata") or {},
                    "is_public": bool(spec.get("is_public", False)),
                    "snapshot_support": True, "create_share_from_snapshot_support": True,
                    "host": "fake@manila#pool", "created_at": now_iso(),
                    "has_replicas": False, "replication_type": None, "task_state": None}
            self.shares[share_id] = Timed(body, self._outcome("share", "available"))
            return self.json({"share": self._share_view(self.shares[share_id])},
                             headers=headers)

    def delete_share(self, request, project_id, share_id):
        error, headers = self._begin(request, project_id)
        if error:
            return error
        with self.lock:
            share = self._owned(self.shares, share_id, project_id)
            if share is None:
                return self.error(404, f"Share {share_id} could not be found.")
            self._tick(self.snapshots)
            if any(s.body["share_id"] == share_id for s in self.snapshots.values()):
                return self.error(400, f"Share {share_id} has snapshots.")
            if share.body["status"] not in ("available", "error", "inactive"):
                return self.error(403, "Share status must be one of ('available', 'error', "
                                       "'inactive').")
            share.body["status"] = "deleting"
            share.schedule = self.later(GONE)
        return Response(status=202, headers=headers)

    # -- snapshots
    def _snapshot_view(self, snapshot: Timed) -> dict:
        body = dict(snapshot.body)
        body["links"] = [{"rel": "self", "href": f"{self.url}/v2/{body['project_id']}/"
                                                 f"snapshots/{body['id']}"}]
        return body

    def create_snapshot(self, request, project_id):
        error, headers = self._begin(request, project_id)
        if error:
            return error
        spec = self.body(request, "snapshot")
        if not isinstance(spec, dict):
            return spec
        share_id = spec.get("share_id")
        force = spec.get("force", False)
        if isinstance(force, str):
            if force.lower() not in ("true", "false", "1", "0", "yes", "no"):
                return self.error(400, f"Invalid value '{force}' for force.")
            force = force.lower() in ("true", "1", "yes")
        with self.lock:
            share = self._owned(self.shares, share_id, project_id) if share_id else None
            if share is None:
                return self.error(404, f"Share {share_id} could not be found.")
            status = share.body["status"]
            if status != "available" and not (force and status in ("in-use", "extending",
                                                                    "shrinking")):
                return self.error(400, "Invalid share: source share status must be "
                                       "available.")
            snapshot_id = new_id()
            body = {"id": snapshot_id, "name": spec.get("name"),
                    "description": spec.get("description"), "status": "creating",
                    "share_id": share_id, "share_size": share.body["size"],
                    "size": share.body["size"], "share_proto": share.body["share_proto"],
                    "project_id": project_id, "user_id": "fake-user",
                    "created_at": now_iso()}
            self.snapshots[snapshot_id] = Timed(body, self._outcome("snapshot", "available"))
            return self.json({"snapshot": self._snapshot_view(self.snapshots[snapshot_id])},
                             202, headers=headers)

    def show_snapshot(self, request, project_id, snapshot_id):
        error, headers = self._begin(request, project_id)
        if error:
            return error
        with self.lock:
            snapshot = self._owned(self.snapshots, snapshot_id, project_id)
            if snapshot is None:
                return self.error(404, f"Snapshot {snapshot_id} could not be found.")
            return self.json({"snapshot": self._snapshot_view(snapshot)}, headers=headers)

    def delete_snapshot(self, request, project_id, snapshot_id):
        error, headers = self._begin(request, project_id)
        if error:
            return error
        with self.lock:
            snapshot = self._owned(self.snapshots, snapshot_id, project_id)
            if snapshot is None:
                return self.error(404, f"Snapshot {snapshot_id} could not be found.")
            if snapshot.body["status"] not in ("available", "error"):
                return self.error(400, "Share Snapshot status must be one of available or "
                                       "error.")
            snapshot.body["status"] = "deleting"
            snapshot.schedule = (self.later("error_deleting")
                                 if self.faults.get("snapshot_delete") == "error"
                                 else self.later(GONE))
        return Response(status=202, headers=headers)
