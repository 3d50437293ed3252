"""HaloBestie backend: the project package (settings, ASGI apps, URLconfs) and the accounts app."""
