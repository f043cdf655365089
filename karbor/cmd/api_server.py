"""Serving the WSGI app over HTTP in-process (waitress), stoppable on a signal."""

from __future__ import annotations

import errno
import logging
import threading

from waitress import wasyncore
from waitress.channel import HTTPChannel
from waitress.parser import HTTPRequestParser
from waitress.server import BaseWSGIServer, create_server

from karbor.api.app import create_app
from karbor.common.config import CONF

LOG = logging.getLogger(__name__)


class _RequestParser(HTTPRequestParser):
    """Waitress's parser, minus a hang on ``Expect: 100-continue`` without a body.

    Waitress answers the expectation with "100 Continue" and then marks the request
    incomplete to wait for the body; a request that has none (GET, ``Content-Length:
    0``) or was already refused (too large) was thus never dispatched.  A request that is
    complete expects nothing more: no interim response is due (RFC 9110 10.1.1).
    """

    def received(self, data: bytes) -> int:
        consumed = super().received(data)
        if self.completed:
            self.expect_continue = False
        return consumed


class _Channel(HTTPChannel):
    parser_class = _RequestParser


class APIServer:
    def __init__(self, host: str | None = None, port: int | None = None):
        self.app = create_app()
        self._map: dict = {}
        host = host or CONF.osapi_karbor_listen
        port = port if port is not None else CONF.osapi_karbor_listen_port
        try:
            self.server = create_server(
                self.app, map=self._map, host=host, port=port,
                threads=CONF.osapi_karbor_workers, ident="karbor",
                clear_untrusted_proxy_headers=True, channel_timeout=120)
        except OSError as exc:
            # A busy port is what a second server started by mistake meets: the user
            # needs the address and the likely cause, not waitress's stack.
            hint = (" (is another karbor-server running? stop it, or choose another port: "
                    "osapi_karbor_listen_port, or KARBOR_PORT for run-server.sh)"
                    if exc.errno == errno.EADDRINUSE else "")
            raise RuntimeError(f"cannot listen on {host}:{port}: "
                               f"{exc.strerror or exc}{hint}") from None
        for dispatcher in self._map.values():  # one listener per address
            if isinstance(dispatcher, BaseWSGIServer):
                dispatcher.channel_class = _Channel
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self.server.socket.getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> None:
        self._thread = threading.Thread(target=self.server.run, name="karbor-api", daemon=True)
        self._thread.start()
        LOG.info("Karbor API listening on %s", self.url)

    def stop(self) -> None:
        """Stop accepting, let requests in progress finish, then close every connection."""
        try:
            self.server.accepting = False
            self.server.task_dispatcher.shutdown(timeout=10)
            # Closing the whole socket map (listener, trigger, keep-alive channels)
            # empties it, which is what ends waitress's loop.
            wasyncore.close_all(self.server._map)
        except Exception:
            LOG.exception("error while stopping the API server")
        if self._thread:
            self._thread.join(5)
