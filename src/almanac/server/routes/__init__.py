"""HTTP routes, one module per feature; each exposes `router` and is included by server.app.create_app."""
