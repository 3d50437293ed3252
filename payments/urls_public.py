"""Public payment routes outside /api/v1/: the Xendit webhooks and the webview return pages."""

urlpatterns = []
