"""Open and close the listeners a service is configured with: SIP, WebSocket bridge,
AudioSocket, and the HTTP health endpoint. Each gets the service's call handler and
admission control; none knows about the others.
"""

import logging
from typing import TYPE_CHECKING
from xml.sax.saxutils import escape

from aiohttp import web

from ivr.errors import UserError

if TYPE_CHECKING:
    from ivr.service.service import Service

log = logging.getLogger("ivr.serve")


async def start_listeners(service: "Service") -> dict[str, tuple[str, int]]:
    cfg = service.cfg
    bound: dict[str, tuple[str, int]] = {}
    try:
        for name, listener in cfg.listeners.items():
            opts = dict(listener.options)
            if name == "sip":
                from ivr.transports.sip.server import SipServer

                users = {user: _secret(service, value) for user, value in (opts.pop("users", {}) or {}).items()}
                server = SipServer(listener.host, listener.port, handler=service.handle,
                                   admission=service.admission, auth=users or None, **opts)
            elif name == "ws":
                from ivr.transports.ws_server import WsBridgeServer

                server = WsBridgeServer(listener.host, listener.port, opts.pop("path", "/media"),
                                        handler=service.handle, admission=service.admission, token=cfg.ws_token,
                                        busy_audio=service.busy_audio, on_transfer=service.note_transfer, **opts)
            elif name == "audiosocket":
                from ivr.transports.audiosocket import AudioSocketServer

                server = AudioSocketServer(listener.host, listener.port, handler=service.handle,
                                           admission=service.admission, busy_audio=service.busy_audio,
                                           on_transfer=service.note_transfer, **opts)
            elif name == "http":
                server = HealthServer(service, listener.host, listener.port)
            else:
                continue
            try:
                address = await server.start()
            except OSError as exc:
                raise UserError(f"cannot listen for {name} on {listener.host}:{listener.port}: {exc.strerror}",
                                "is another process using the port? pick another with --" + name) from exc
            server.address = address
            service.listeners[name] = server
            bound[name] = address
            log.info("%s listening on %s:%s", name, *address)
    except TypeError as exc:   # an option the listener does not take: name it
        await stop_listeners(service)
        raise UserError(f"bad listener option: {exc}", "see docs/serve.md for each listener's keys") from exc
    except BaseException:
        await stop_listeners(service)
        raise
    return bound


async def stop_listeners(service: "Service") -> None:
    for name, server in list(service.listeners.items()):
        try:
            await server.stop(2.0)
        except Exception:
            log.exception("stopping %s failed", name)
        service.listeners.pop(name, None)


def _secret(service: "Service", env_name) -> str:
    """SIP passwords are named by environment variable in the config, never written in it."""
    value = service.env.get(str(env_name))
    if not value:
        raise UserError(f"SIP user password variable {env_name} is not set",
                        f"export {env_name}=... before starting (the config names the variable, not the password)")
    return value


class HealthServer:
    """GET /health: 200 when ready and taking calls, else 503 (for load balancers and probes).

    Where the bridges cannot transfer a call themselves (Twilio Media Streams, AudioSocket),
    the telephony side asks here afterwards: GET /calls/{id}/transfer gives the target as
    text (empty when the flow did not transfer: Asterisk's CURL), POST /twilio/after-stream
    answers Twilio's <Connect action> with <Dial> or <Hangup/> (any node: ivr/service/transfers.py);
    POST /drain (machine access, like the webhooks) drains the node and then stops it. GET /metrics: Prometheus
    (ivr/web/metrics.py; bearer token IVR_METRICS_TOKEN, else loopback peers only). Every
    other page, including any added later, needs a login (ivr/web/auth.py); the two webhooks
    need IVR_WEBHOOK_TOKEN when it is set, else a loopback peer."""

    def __init__(self, service: "Service", host: str, port: int) -> None:
        self.service, self.host, self.port = service, host, port
        self.runner: web.AppRunner | None = None

    async def start(self) -> tuple[str, int]:
        from ivr.web.auth import MACHINE, Auth

        app = web.Application()
        self.auth = Auth(self.service.cfg.auth, {"/calls/{call_id}/transfer": MACHINE,
                                                 "/twilio/after-stream": MACHINE, "/drain": MACHINE})
        self.auth.install(app)   # before the routes below: a route added anywhere is behind the login
        app.router.add_get("/health", self._health)
        app.router.add_get("/calls/{call_id}/transfer", self._transfer_text)
        app.router.add_post("/twilio/after-stream", self._twilio_after_stream)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_post("/drain", self._drain)
        from ivr.web.dashboard import Dashboard

        self.dashboard = Dashboard(self.service.cfg)
        self.dashboard.install(app)   # GET /dashboard: reports, supervisor role
        from ivr.web.console import Console

        self.console = Console(self.service, getattr(self.service.cfg, "console", None))
        self.console.install(app)     # /console, /console/supervisor, /console/ws: agents, live
        await self.console.start()    # a hub subscriber
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, self.host, self.port)
        await site.start()
        sock = site._server.sockets[0]
        return sock.getsockname()[:2]

    async def _health(self, _request: web.Request) -> web.Response:
        data = self.service.health()
        return web.json_response(data, status=200 if data["ok"] else 503)

    async def _drain(self, _request: web.Request) -> web.Response:
        """`ivr drain`: no new calls here, the calls in progress finish, then the node exits."""
        self.service.drain()
        return web.json_response({"draining": True, "calls": len(self.service.calls)})

    async def _metrics(self, request: web.Request) -> web.Response:
        from ivr.web.metrics import handle

        return await handle(request, getattr(self.service, "metrics", None), self.service.cfg.metrics_token)

    async def _transfer_text(self, request: web.Request) -> web.Response:
        found = await self.service.transfers.find(request.match_info["call_id"], self.service.store)
        return web.Response(text=found["target"] if found else "")

    async def _twilio_after_stream(self, request: web.Request) -> web.Response:
        form = await request.post()
        found = await self.service.transfers.find(str(form.get("CallSid", "")), self.service.store)
        if found and found["target"]:
            target = escape(found["target"])
            verb = f"<Sip>{target}</Sip>" if target.startswith("sip:") else f"<Number>{target}</Number>"
            body = f"<Response><Dial>{verb}</Dial></Response>"
        else:
            body = "<Response><Hangup/></Response>"
        return web.Response(text='<?xml version="1.0" encoding="UTF-8"?>' + body, content_type="application/xml")

    async def stop(self, _deadline_s: float = 0) -> None:
        if getattr(self, "console", None) is not None:
            await self.console.stop()
        if self.runner:
            await self.runner.cleanup()
        if getattr(self, "dashboard", None) is not None:
            self.dashboard.close()
