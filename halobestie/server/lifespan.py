"""ASGI lifespan: start-up and shutdown hooks of a server process.

Apps register hooks with `on_startup` / `on_shutdown` (async callables taking the listener name);
the ASGI servers (uvicorn, daphne) drive them through the lifespan protocol.
"""

import logging

logger = logging.getLogger(__name__)

_startup_hooks = []
_shutdown_hooks = []


def on_startup(hook):
    _startup_hooks.append(hook)
    return hook


def on_shutdown(hook):
    _shutdown_hooks.append(hook)
    return hook


class LifespanApp:
    def __init__(self, app, *, listener):
        self.app = app
        self.listener = listener

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                try:
                    for hook in _startup_hooks:
                        await hook(self.listener)
                except Exception as exc:
                    logger.exception("start-up failed")
                    await send({"type": "lifespan.startup.failed", "message": str(exc)})
                    return
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                for hook in _shutdown_hooks:
                    try:
                        await hook(self.listener)
                    except Exception:
                        logger.exception("shutdown hook failed")
                await send({"type": "lifespan.shutdown.complete"})
                return
