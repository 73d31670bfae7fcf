"""`SandboxServer`: the sandbox on a free 127.0.0.1 port, served by uvicorn in a thread."""

from __future__ import annotations

import socket
import threading
import time
from types import TracebackType
from typing import Self

import stripe
import uvicorn

from gateway.sandbox.app import SandboxApp, create_sandbox_app
from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.control_client import SandboxControl
from gateway.sandbox.engine import Sandbox


class SandboxServer:
    """Context manager: `with SandboxServer(config) as server: server.url, server.control`."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        log_level: str = "warning",
        startup_timeout: float = 10.0,
    ) -> None:
        self.config = config or SandboxConfig()
        self.app: SandboxApp = create_sandbox_app(self.config)
        self._host = host
        self._port = port
        self._log_level = log_level
        self._startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self._control: SandboxControl | None = None
        self.port = 0

    @property
    def url(self) -> str:
        if not self.port:
            raise RuntimeError("the sandbox server is not running")
        return f"http://{self._host}:{self.port}"

    @property
    def control(self) -> SandboxControl:
        if self._control is None:
            self._control = SandboxControl(self.url)
        return self._control

    @property
    def sandbox(self) -> Sandbox:
        """In-process access to the state (tests may inspect it under `sandbox.lock`)."""
        return self.app.sandbox

    def stripe_client(self, *, api_key: str | None = None, max_network_retries: int = 2) -> stripe.StripeClient:
        """A real stripe SDK client pointed at this sandbox."""
        return stripe.StripeClient(
            api_key or self.config.api_key,
            base_addresses={"api": self.url},
            max_network_retries=max_network_retries,
        )

    def start(self) -> Self:
        # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets whose proto says
        # TCP, and without it every keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self._host, self._port))
        self._socket = sock
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            self.app, log_level=self._log_level, lifespan="on", access_log=False,
        )
        server = uvicorn.Server(config)
        self._server = server
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=10)
        if self._control is not None:
            self._control.close()
            self._control = None
        self.app.close()
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None
        self.port = 0

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def serve(config: SandboxConfig, *, host: str = "127.0.0.1", port: int = 12111, log_level: str = "info") -> None:
    """Run a sandbox in the foreground until Ctrl-C (what `nofu sandbox` needs)."""
    with SandboxServer(config, host=host, port=port, log_level=log_level) as server:
        print(f"nofu Stripe sandbox on {server.url} (api key {config.api_key})", flush=True)
        try:
            while server.running:
                time.sleep(0.5)
        except KeyboardInterrupt:
            pass
