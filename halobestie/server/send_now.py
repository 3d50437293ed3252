"""The synchronous text writer our WebSocket protocol offers its app (halobestie/serve.py), for the
chat socket's delivery fast path (sessions_app/consumers.py, issue 22 "chat past the relay").

`scope["extensions"][EXTENSION]` is `send_text_now(text) -> bool`: it writes one text frame to the
socket at once and returns True, or writes nothing and returns False when it cannot write now
(handshake not complete, closing or closed, the transport paused for flow control, shutting down).
It never raises and never awaits. On False the app sends the frame the ordinary way
(`websocket.send`), which then behaves exactly as before (waits for the transport, or raises
ClientDisconnected).

It writes past every ASGI `send` wrapper between the server and the consumer
(SocketObservabilityMiddleware's `observed_send`): a wrapper that starts counting `websocket.send`
messages must wrap (or remove) this extension too. Servers without it (Channels' communicator in
tests, daphne, plain `uvicorn` with its own protocols) leave the consumer on the ordinary path.
"""

EXTENSION = "halobestie.send_text_now"
