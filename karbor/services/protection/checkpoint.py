"""A checkpoint as laid out in the bank (same keys as the original).

``/checkpoints/<id>/index.json`` holds the metadata; three index objects under
``/indices/`` let a bank be listed (and imported) without the database;
``/checkpoints/<id>/resource-data/<resource_id>/`` is each plugin's section.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from karbor.common import exception
from karbor.services.protection.bank_plugin import Bank, BankSection, LeasePlugin

VERSION = "0.9"


class BankCheckpoint:
    def __init__(self, bank: Bank, checkpoint_id: str, metadata: dict[str, Any] | None = None):
        self.bank = bank
        self.id = checkpoint_id
        self._md = metadata or {}

    @property
    def _index_key(self) -> str:
        return f"/checkpoints/{self.id}/index.json"

    @property
    def metadata(self) -> dict[str, Any]:
        return self._md

    @property
    def status(self) -> str | None:
        return self._md.get("status")

    @status.setter
    def status(self, value: str) -> None:
        self._md["status"] = value

    @property
    def resource_graph(self) -> str | None:
        return self._md.get("resource_graph")

    @resource_graph.setter
    def resource_graph(self, value: str) -> None:
        self._md["resource_graph"] = value

    @property
    def protection_plan(self) -> dict:
        return self._md.get("protection_plan", {})

    @property
    def project_id(self) -> str | None:
        return self._md.get("project_id")

    @classmethod
    def create(cls, bank: Bank, record, owner_id: str) -> BankCheckpoint:
        created = record.created_at or dt.datetime.now(dt.UTC).replace(tzinfo=None)
        import json

        md = {
            "version": VERSION, "id": record.id, "status": record.status,
            "owner_id": owner_id, "provider_id": record.provider_id,
            "project_id": record.project_id,
            "protection_plan": json.loads(record.protection_plan),
            "extra_info": record.extra_info, "created_at": created.strftime("%Y-%m-%d"),
            "timestamp": int(created.replace(tzinfo=dt.UTC).timestamp()),
            "resource_graph": record.resource_graph,
        }
        plugin = bank.plugin
        if isinstance(plugin, LeasePlugin) and not plugin.check_lease_validity():
            plugin.acquire_lease()  # mark this writer alive before its first object
        cp = cls(bank, record.id, md)
        cp.commit()
        return cp

    @classmethod
    def load(cls, bank: Bank, checkpoint_id: str) -> BankCheckpoint:
        md = bank.get_object(f"/checkpoints/{checkpoint_id}/index.json")
        if md.get("version") != VERSION:
            raise exception.BankError(reason=f"unsupported checkpoint version {md.get('version')}")
        return cls(bank, checkpoint_id, md)

    def commit(self) -> None:
        self.bank.update_object(self._index_key, self._md)

    def _index_keys(self) -> list[str]:
        md = self._md
        stamp = f"{md['timestamp']}@{self.id}"
        return [
            f"/indices/by-provider/{md['provider_id']}/{md['project_id']}/{stamp}",
            f"/indices/by-date/{md['created_at']}/{md['project_id']}/{stamp}",
            f"/indices/by-plan/{md['protection_plan']['id']}/{md['project_id']}/"
            f"{md['created_at']}/{stamp}",
        ]

    def write_indices(self) -> None:
        for key in self._index_keys():
            self.bank.update_object(key, self.id)

    def complete(self, status: str) -> None:
        """Declare the checkpoint complete: data durable first, then index, then listings."""
        self.bank.flush()
        self.status = status
        self.commit()
        self.write_indices()
        self.bank.flush()

    def get_resource_bank_section(self, resource_id: str) -> BankSection:
        return self.bank.get_sub_section(f"/checkpoints/{self.id}/resource-data/{resource_id}")

    def delete(self) -> None:
        """Remove the checkpoint from the bank: indices first, so it is never half-listed."""
        for key in self._index_keys():
            self.bank.delete_object(key)
        for key in self.bank.list_objects(f"/checkpoints/{self.id}/"):
            if key != self._index_key:
                self.bank.delete_object(key)
        self.bank.delete_object(self._index_key)
