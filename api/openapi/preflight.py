"""The CORS preflights (OPTIONS), which API Gateway answers itself (MOCK integrations)."""

from __future__ import annotations

from typing import Any, Final

from api.openapi.parts import COMMON_HEADERS, header

# What the template's MOCK preflights answer (tests/api/test_openapi.py compares them with template.yaml).
PREFLIGHT_METHODS: Final = {
    "Jobs": "GET, POST, OPTIONS",
    "Job": "GET, OPTIONS",
    "WebhookSecret": "GET, OPTIONS",
}
PREFLIGHT_HEADERS: Final = {
    "Jobs": "Authorization, Content-Type, Idempotency-Key",
    "Job": "Authorization, If-None-Match",
    "WebhookSecret": "Authorization, If-None-Match",
}
PREFLIGHT_MAX_AGE: Final = "600"


def preflight(name: str, path_parameters: list[dict[str, Any]]) -> dict[str, Any]:
    """The OPTIONS operation of the resource `name` (a key of `PREFLIGHT_METHODS`)."""
    return {
        "operationId": f"preflight{name}",
        "summary": "CORS preflight: API Gateway answers (MOCK), no authorization, no function",
        "security": [],
        "parameters": [
            *path_parameters,
            {"name": "Origin", "in": "header", "required": False, "schema": {"type": "string"}},
        ],
        "responses": {
            "204": {
                "description": "The CORS headers for an allowed Origin; for any other, only `Vary`",
                "headers": {
                    "Vary": COMMON_HEADERS["Vary"],
                    "Access-Control-Allow-Origin": COMMON_HEADERS["Access-Control-Allow-Origin"],
                    "Access-Control-Allow-Methods": header("Allowed methods", enum=[PREFLIGHT_METHODS[name]]),
                    "Access-Control-Allow-Headers": header("Allowed headers", enum=[PREFLIGHT_HEADERS[name]]),
                    "Access-Control-Max-Age": header(
                        "Seconds a preflight may be cached", enum=[PREFLIGHT_MAX_AGE]
                    ),
                },
            }
        },
        "x-amazon-apigateway-integration": {"type": "mock"},
    }
