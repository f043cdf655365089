"""A **fake** Trove (database API v1.0) for the tests of Karbor's Trove plugins.

Trove cannot run here (it needs Nova, Cinder, Swift and guest images), so this fake speaks
the real Trove v1.0 REST API for exactly the calls Karbor makes, with Trove's URLs,
bodies, status codes and error bodies (``{"badRequest": {"code": 400, "message": ...}}``):

* ``GET /`` (the version list);
* ``GET /v1.0/{project_id}/instances`` (pages of ``limit`` = 20 with a ``next`` link carrying
  the ``marker``, as Trove), ``GET|DELETE /v1.0/{project_id}/instances/{id}``,
  ``POST /v1.0/{project_id}/instances`` (``name``, ``flavorRef``, ``volume.size``,
  ``datastore``, ``restorePoint.backupRef``);
* ``POST /v1.0/{project_id}/backups`` (``name``, ``instance``, ``description``),
  ``GET|DELETE /v1.0/{project_id}/backups/{id}``.

Instances go ``BUILD`` -> ``ACTIVE`` after ``delay`` seconds; a backup goes ``NEW`` ->
``BUILDING`` -> ``COMPLETED`` while its instance is ``BACKUP``; a deleted instance is
``SHUTDOWN`` and then gone; a deleted backup disappears.  Trove's rules are kept: a backup
needs an ``ACTIVE`` instance (422), a running backup or a building instance cannot be
deleted (422), an instance restored from a backup needs a ``COMPLETED`` backup and a volume at
least as large as the backup.  ``faults`` steer failures: ``faults["backup"]`` / ``faults[
"instance"]`` = ``"error"`` (``FAILED`` / ``ERROR`` with a ``fault`` message) or ``"stuck"``
(stays ``BUILDING`` / ``BUILD`` until :meth:`set_status`), ``faults["backup_delete"] =
"error"`` (``DELETE_FAILED``).
"""

from __future__ import annotations

import time

from werkzeug.routing import Rule
from werkzeug.wrappers import Response

from tests.integration.fakes._base import GONE, FakeService, Timed, new_id, now_iso

PAGE_SIZE = 20
FLAVORS = {"1": 512, "2": 2048, "3": 4096, "6": 1024}
DATASTORE = {"type": "mysql", "version": "5.7.29",
             "version_id": "b00000b0-00b0-0b00-00b0-000b000000bb"}


class _Backup(Timed):
    def __init__(self, body, schedule, service: FakeTrove):
        super().__init__(body, schedule)
        self.service = service

    def on_status(self, status) -> None:
        if status in ("COMPLETED", "FAILED"):
            instance = self.service.instances.get(self.body["instance_id"])
            if instance is not None and instance.body["status"] == "BACKUP":
                instance.body["status"] = "ACTIVE"
        if status == "COMPLETED":
            self.body["locationRef"] = (f"http://swift.example/v1/AUTH_x/database_backups/"
                                        f"{self.body['id']}.xbstream.gz.enc")
            self.body["size"] = 0.14


class FakeTrove(FakeService):
    SERVICE_TYPE = "database"
    FAULTS = {**FakeService.FAULTS, 500: "instanceFault"}

    def __init__(self, validate_token, *, delay: float = 0.3) -> None:
        super().__init__(validate_token, delay=delay)
        self.instances: dict[str, Timed] = {}
        self.backups: dict[str, _Backup] = {}

    def catalog_url(self) -> str:
        return f"{self.url}/v1.0/$(project_id)s"

    def rules(self):
        p = "/v1.0/<project_id>"
        return [
            Rule("/", endpoint=self.root, methods=["GET"]),
            Rule(p + "/instances", endpoint=self.list_instances, methods=["GET"]),
            Rule(p + "/instances", endpoint=self.create_instance, methods=["POST"]),
            Rule(p + "/instances/<instance_id>", endpoint=self.show_instance,
                 methods=["GET"]),
            Rule(p + "/instances/<instance_id>", endpoint=self.delete_instance,
                 methods=["DELETE"]),
            Rule(p + "/backups", endpoint=self.create_backup, methods=["POST"]),
            Rule(p + "/backups/<backup_id>", endpoint=self.show_backup, methods=["GET"]),
            Rule(p + "/backups/<backup_id>", endpoint=self.delete_backup,
                 methods=["DELETE"]),
        ]

    def root(self, request):
        return self.json({"versions": [{"id": "v1.0", "status": "CURRENT",
                                        "updated": "2012-08-01T00:00:00Z",
                                        "links": [{"href": f"{self.url}/v1.0/",
                                                   "rel": "self"}]}]})

    # -- helpers
    def _tick(self) -> None:
        clock = time.monotonic()
        # backups first: a finishing backup puts its instance back to ACTIVE
        for table in (self.backups, self.instances):
            for key in list(table):
                if not table[key].advance(clock):
                    del table[key]

    def _owned(self, table, object_id, project_id):
        self._tick()
        obj = table.get(object_id)
        return obj if obj is not None and obj.body["tenant_id"] == project_id else None

    def set_status(self, kind: str, object_id: str, status: str) -> None:
        """Force an instance's or backup's status (``kind`` = ``instance`` / ``backup``)."""
        with self.lock:
            obj = (self.instances if kind == "instance" else self.backups)[object_id]
            obj.schedule = []
            obj.body["status"] = status
            obj.on_status(status)

    def live(self, kind: str) -> dict[str, dict]:
        with self.lock:
            self._tick()
            table = self.instances if kind == "instance" else self.backups
            return {k: dict(v.body) for k, v in table.items()}

    def _instance_view(self, instance: Timed) -> dict:
        body = {k: v for k, v in instance.body.items() if k not in ("tenant_id", "updated_at")}
        href = f"{self.url}/v1.0/{instance.body['tenant_id']}/instances/{body['id']}"
        body["links"] = [{"href": href, "rel": "self"}, {"href": href, "rel": "bookmark"}]
        return body

    # -- instances
    def list_instances(self, request, project_id):
        denied = self.authenticate(request, project_id)
        if denied:
            return denied
        with self.lock:
            self._tick()
            mine = sorted((i for i in self.instances.values()
                           if i.body["tenant_id"] == project_id),
                          key=lambda i: i.body["id"])
            found = [self._instance_view(i) for i in mine]
        marker = request.args.get("marker")
        if marker:
            ids = [i["id"] for i in found]
            found = found[ids.index(marker) + 1:] if marker in ids else []
        try:
            limit = min(int(request.args.get("limit", PAGE_SIZE)), PAGE_SIZE)
        except ValueError:
            return self.error(400, "limit must be an integer")
        page, more = found[:limit], len(found) > limit
        body = {"instances": page}
        if more:
            body["links"] = [{"rel": "next", "href": f"{self.url}/v1.0/{project_id}/instances"
                                                     f"?limit={limit}&marker={page[-1]['id']}"}]
        return self.json(body)

    def show_instance(self, request, project_id, instance_id):
        denied = self.authenticate(request, project_id)
        if denied:
            return denied
        with self.lock:
            instance = self._owned(self.instances, instance_id, project_id)
            if instance is None:
                return self.error(404, f"The resource could not be found. Instance "
                                       f"{instance_id} could not be found.")
            return self.json({"instance": self._instance_view(instance)})

    def create_instance(self, request, project_id):
        denied = self.authenticate(request, project_id)
        if denied:
            return denied
        spec = self.body(request, "instance")
        if not isinstance(spec, dict):
            return spec
        if not spec.get("name"):
            return self.error(400, "Validation error: instance['name'] is a required "
                                   "property")
        flavor = str(spec.get("flavorRef") or "")
        if flavor not in FLAVORS:
            return self.error(404, f"Flavor {flavor or None} could not be found.")
        volume = spec.get("volume") if isinstance(spec.get("volume"), dict) else None
        try:
            size = int((volume or {}).get("size"))
        except (TypeError, ValueError):
            return self.error(400, "Volume size was not specified.")
        if size <= 0:
            return self.error(400, f"Volume size {size} is invalid.")
        datastore = dict(DATASTORE)
        with self.lock:
            backup_ref = ((spec.get("restorePoint") or {}).get("backupRef")
                          if isinstance(spec.get("restorePoint"), dict) else None)
            if backup_ref:
                backup = self._owned(self.backups, backup_ref, project_id)
                if backup is None:
                    return self.error(404, f"Backup {backup_ref} cannot be found.")
                if backup.body["status"] != "COMPLETED":
                    return self.error(400, f"Backup {backup_ref} is not in COMPLETED state.")
                if (backup.body["size"] or 0) > size:
                    return self.error(400, f"Backup is too large for given flavor or volume. "
                                           f"Backup size: {backup.body['size']} GBs. "
                                           f"Available size: {size} GBs.")
                datastore = dict(backup.body["datastore"])
            elif isinstance(spec.get("datastore"), dict):
                datastore.update({k: v for k, v in spec["datastore"].items()
                                  if k in ("type", "version")})
            instance_id = new_id()
            fault = self.faults.get("instance")
            body = {"id": instance_id, "name": spec["name"], "status": "BUILD",
                    "flavor": {"id": flavor, "links": []}, "volume": {"size": size},
                    "datastore": {"type": datastore["type"],
                                  "version": datastore["version"]},
                    "region": "RegionOne", "created": now_iso(), "updated": now_iso(),
                    "ip": [], "tenant_id": project_id,
                    "restorePoint": {"backupRef": backup_ref} if backup_ref else None}
            schedule = [] if fault == "stuck" else self.later(
                "ERROR" if fault == "error" else "ACTIVE")
            if fault == "error":
                body["fault"] = {"message": "Injected fault: the guest agent failed to "
                                            "start", "created": now_iso(), "details": ""}
            self.instances[instance_id] = Timed(body, schedule)
            return self.json({"instance": self._instance_view(self.instances[instance_id])})

    def delete_instance(self, request, project_id, instance_id):
        denied = self.authenticate(request, project_id)
        if denied:
            return denied
        with self.lock:
            instance = self._owned(self.instances, instance_id, project_id)
            if instance is None:
                return self.error(404, f"Instance {instance_id} could not be found.")
            if instance.body["status"] in ("BUILD", "BACKUP"):
                return self.error(422, f"Instance {instance_id} is not ready. (Status is "
                                       f"{instance.body['status']}).")
            instance.body["status"] = "SHUTDOWN"
            instance.schedule = self.later(GONE)
        return Response(status=202)

    # -- backups
    def create_backup(self, request, project_id):
        denied = self.authenticate(request, project_id)
        if denied:
            return denied
        spec = self.body(request, "backup")
        if not isinstance(spec, dict):
            return spec
        if not spec.get("name") or not spec.get("instance"):
            return self.error(400, "Validation error: backup['name'] and "
                                   "backup['instance'] are required properties")
        with self.lock:
            instance = self._owned(self.instances, spec["instance"], project_id)
            if instance is None:
                return self.error(404, f"Instance {spec['instance']} could not be found.")
            if instance.body["status"] != "ACTIVE":
                return self.error(422, f"Instance {spec['instance']} is not ready. (Status "
                                       f"is {instance.body['status']}).")
            backup_id = new_id()
            fault = self.faults.get("backup")
            body = {"id": backup_id, "name": spec["name"],
                    "description": spec.get("description"), "status": "NEW",
                    "instance_id": instance.body["id"], "locationRef": None,
                    "created": now_iso(), "updated": now_iso(), "size": None,
                    "datastore": dict(DATASTORE, type=instance.body["datastore"]["type"],
                                      version=instance.body["datastore"]["version"]),
                    "parent_id": None, "tenant_id": project_id}
            if fault == "stuck":
                schedule = self.later("BUILDING")
            else:
                schedule = self.later("BUILDING", "FAILED" if fault == "error"
                                      else "COMPLETED")
            instance.body["status"] = "BACKUP"
            self.backups[backup_id] = _Backup(body, schedule, self)
            view = {k: v for k, v in body.items() if k != "tenant_id"}
            return self.json({"backup": view}, 202)

    def show_backup(self, request, project_id, backup_id):
        denied = self.authenticate(request, project_id)
        if denied:
            return denied
        with self.lock:
            backup = self._owned(self.backups, backup_id, project_id)
            if backup is None:
                return self.error(404, f"Backup {backup_id} cannot be found.")
            return self.json({"backup": {k: v for k, v in backup.body.items()
                                         if k != "tenant_id"}})

    def delete_backup(self, request, project_id, backup_id):
        denied = self.authenticate(request, project_id)
        if denied:
            return denied
        with self.lock:
            backup = self._owned(self.backups, backup_id, project_id)
            if backup is None:
                return self.error(404, f"Backup {backup_id} cannot be found.")
            if backup.body["status"] in ("NEW", "BUILDING", "SAVING"):
                return self.error(422, f"Backup {backup_id} cannot be deleted: it is "
                                       f"running ({backup.body['status']}).")
            backup.schedule = (self.later("DELETE_FAILED")
                               if self.faults.get("backup_delete") == "error"
                               else self.later(GONE))
        return Response(status=202)
