"""WebSocket routes of the public listener: the chat socket (protocol in docs/realtime.md)."""

from django.urls import path

from sessions_app.consumers import ChatConsumer

websocket_urlpatterns = [
    path("ws/v1/", ChatConsumer.as_asgi()),
]
