"""Server plumbing: the ASGI listeners, middleware, routing, health, drain, metrics, logs."""
