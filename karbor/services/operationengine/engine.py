"""The operation engine process: placeholder loop until the scheduler lands."""

from __future__ import annotations

import threading


class OperationEngine:
    def __init__(self, service_id: int | None = None):
        self.service_id = service_id
        self._stop = threading.Event()

    def start(self) -> None:
        return None

    def stop(self) -> None:
        self._stop.set()
