"""The OpenAPI 3 document of the v1 API (placeholder until generated from the routes)."""


def document() -> dict:
    return {"openapi": "3.0.3", "info": {"title": "Karbor", "version": "1.0"}, "paths": {}}
