"""Registers a Karbor process in the services table and keeps its heartbeat fresh."""

from __future__ import annotations

import logging
import threading

from sqlalchemy import select, update

from karbor.common.config import CONF
from karbor.db import models
from karbor.db.models import utcnow
from karbor.db.session import session_scope

LOG = logging.getLogger(__name__)


class Heartbeat:
    def __init__(self, binary: str, topic: str | None = None, host: str | None = None):
        self.binary = binary
        self.topic = topic or binary.replace("karbor-", "")
        self.host = host or CONF.host
        self.service_id: int | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def register(self) -> int:
        with session_scope(write=True) as session:
            row = session.scalar(select(models.Service).where(
                models.Service.host == self.host, models.Service.binary == self.binary,
                models.Service.deleted == False))  # noqa: E712
            if row is None:
                row = models.Service(host=self.host, binary=self.binary, topic=self.topic,
                                     report_count=0, disabled=False)
                session.add(row)
            row.updated_at = utcnow()
            session.flush()
            self.service_id = row.id
        return self.service_id

    def beat(self) -> None:
        with session_scope(write=True) as session:
            session.execute(update(models.Service).where(models.Service.id == self.service_id)
                            .values(report_count=models.Service.report_count + 1,
                                    updated_at=utcnow()))

    def start(self) -> None:
        if self.service_id is None:
            self.register()
        self._thread = threading.Thread(target=self._loop, name=f"heartbeat-{self.binary}",
                                        daemon=True)
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(CONF.report_interval):
            try:
                self.beat()
            except Exception:
                LOG.exception("heartbeat of %s failed", self.binary)

    def stop(self) -> None:
        self._stop.set()
