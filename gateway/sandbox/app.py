"""`create_sandbox_app(config)`: the ASGI app serving `/v1/*` (Stripe) and `/sandbox/*` (control)."""

from __future__ import annotations

from gateway.sandbox.api import StripeApi
from gateway.sandbox.config import SandboxConfig
from gateway.sandbox.control import ControlApi
from gateway.sandbox.engine import Sandbox
from gateway.sandbox.http import Receive, Scope, Send, json_response, read_request, send_response


class SandboxApp:
    """A plain ASGI application; `.sandbox` exposes the state for in-process inspection."""

    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.sandbox = Sandbox(config)
        self._api = StripeApi(self.sandbox)
        self._control = ControlApi(self.sandbox)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return
        request = await read_request(scope, receive)
        if request.path.startswith("/v1/"):
            response = self._api.handle(request)
        elif request.path.startswith("/sandbox/"):
            response = await self._control.handle(request)
        else:
            response = json_response(404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({request.method}: {request.path})."}})
        await send_response(send, response)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self.sandbox.close()
                await send({"type": "lifespan.shutdown.complete"})
                return

    def close(self) -> None:
        """Stop webhook delivery (also done on ASGI lifespan shutdown)."""
        self.sandbox.close()


def create_sandbox_app(config: SandboxConfig) -> SandboxApp:
    return SandboxApp(config)
