"""HTTP layer: one router per resource under /api/v1, over the services; shared dependencies in deps.py."""
