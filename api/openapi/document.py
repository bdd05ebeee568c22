"""The whole document: the paths, the security scheme, the component schemas; and its JSON text."""

from __future__ import annotations

import json
from typing import Any, Final

from api.openapi.preflight import preflight
from api.openapi.routes import get_job, job_id_parameter, list_jobs, submit_job, webhook_secret
from api.openapi.schemas import component_schemas

SECURITY_SCHEME: Final = "CognitoUserPool"


def build_document() -> dict[str, Any]:
    """The OpenAPI 3.0 document of every route: the jobs, the webhook secret, their CORS preflights."""
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Job status API",
            "version": "1.0.0",
            "description": "Submit video-generation jobs and read their status (docs/api.md).",
        },
        "paths": {
            "/v1/jobs": {"get": list_jobs(), "post": submit_job(), "options": preflight("Jobs", [])},
            "/v1/jobs/{id}": {"get": get_job(), "options": preflight("Job", [job_id_parameter()])},
            "/v1/webhooks/secret": {"get": webhook_secret(), "options": preflight("WebhookSecret", [])},
        },
        "security": [{SECURITY_SCHEME: []}],
        "components": {
            "securitySchemes": {
                SECURITY_SCHEME: {
                    "type": "apiKey",
                    "in": "header",
                    "name": "Authorization",
                    "description": "A Cognito user pool ID token, checked by API Gateway's authorizer",
                    "x-amazon-apigateway-authtype": "cognito_user_pools",
                }
            },
            "schemas": component_schemas(),
        },
    }


def render() -> str:
    """The document as `openapi.json` holds it."""
    return json.dumps(build_document(), indent=2, ensure_ascii=False) + "\n"
