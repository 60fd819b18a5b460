"""The ASGI entry point: HTTP (Django), WebSockets (Channels), lifespan.

Lifespan binds the event loop that runs generations, closes replies left
streaming by a process that died, and on shutdown ends running replies as
interrupted so that none is ever stuck.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "chatsite.settings")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402
from django.conf import settings  # noqa: E402

from conversations.accounts.sockets import socket_auth  # noqa: E402
from conversations.lifespan import handle_lifespan  # noqa: E402
from conversations.relays.setup import simulator_key  # noqa: E402
from conversations.routing import websocket_urlpatterns  # noqa: E402

SIMULATOR_PREFIX = "/simulator"


def build_router(*, simulator_enabled: bool) -> ProtocolTypeRouter:
    """HTTP to Django (and the simulator's mount when enabled), WebSockets to Channels."""
    django_http = django_asgi_app
    if simulator_enabled:
        # A development tool, loaded only where it is switched on (see settings). It
        # answers only this install's own key, which only the simulated relay holds,
        # and keeps no record of what it is sent (users' prompts).
        from conversations.simulator.app import Simulator

        simulator = Simulator(token_rate=settings.SIMULATOR_TOKEN_RATE,
                              api_key=simulator_key(), record=False)

        async def http_app(scope, receive, send):
            if scope["path"] == SIMULATOR_PREFIX or scope["path"].startswith(
                    SIMULATOR_PREFIX + "/"):
                scope = {**scope, "root_path": scope.get("root_path", "") + SIMULATOR_PREFIX}
                await simulator(scope, receive, send)
                return
            await django_http(scope, receive, send)
    else:
        http_app = django_http
    return ProtocolTypeRouter(
        {
            "http": http_app,
            "websocket": AllowedHostsOriginValidator(
                socket_auth(URLRouter(websocket_urlpatterns))
            ),
        }
    )


router = build_router(simulator_enabled=settings.SIMULATOR_ENABLED)


INSECURE_START = (
    "Refusing to start: SECRET_KEY is not set (or is the public development key) and "
    "DEBUG is off. Set SECRET_KEY in the environment, or start with `manage.py serve`, "
    f"which generates one on its first start and keeps it in {settings.SECRET_KEY_FILE}."
)


async def _refuse_start(receive, send) -> None:
    message = await receive()
    if message["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.failed", "message": INSECURE_START})


async def application(scope, receive, send):
    if scope["type"] == "lifespan":
        if settings.INSECURE_SECRET_KEY:
            await _refuse_start(receive, send)
            return
        await handle_lifespan(receive, send)
        return
    await router(scope, receive, send)
