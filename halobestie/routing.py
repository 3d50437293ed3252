"""WebSocket routes of the public listener."""

websocket_urlpatterns = []
