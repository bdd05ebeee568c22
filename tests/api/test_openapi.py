"""The OpenAPI document: fresh in openapi.json, and the handler conforms to it (schemathesis over HTTP)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qsl, unquote, urlsplit

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.handler import handle
from api.openapi import build_document, render
from ops.template import TEMPLATE_PATH, Template
from tests.api.conftest import Api
from tests.api.support import ALICE, ALLOWED_ORIGIN, at, claims, job_event, rest_event
from tests.examples import examples

OPENAPI_JSON = Path(__file__).resolve().parents[2] / "openapi.json"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]

# Only GetJobFn's operations go to GetJobFn: POST /v1/jobs is SubmitJobFn's, the secret
# WebhookSecretFn's, and the preflights API Gateway's own (MOCK) answers.
schema = schemathesis.openapi.from_dict(build_document()).include(operation_id=["getJob", "listJobs"])
TEMPLATE_PREFLIGHTS = {
    "Jobs": "JobsOptionsMethod",
    "Job": "JobOptionsMethod",
    "WebhookSecret": "WebhookSecretOptionsMethod",
}


@pytest.mark.unit
def test_openapi_json_is_fresh():
    assert OPENAPI_JSON.read_text() == render(), "openapi.json is stale: run `make openapi`"


@pytest.mark.unit
def test_document_lists_every_answer_of_each_route():
    paths = build_document()["paths"]
    assert set(paths["/v1/jobs/{id}"]["get"]["responses"]) == {
        "200",
        "304",
        "400",
        "401",
        "404",
        "500",
        "503",
    }
    assert set(paths["/v1/jobs"]["get"]["responses"]) == {"200", "400", "401", "403", "500", "503"}
    assert paths["/v1/jobs"]["options"]["security"] == [] == paths["/v1/jobs/{id}"]["options"]["security"]
    assert set(paths["/v1/jobs"]["post"]["responses"]) == {"202", "400", "401", "409", "415", "500", "503"}
    assert set(paths["/v1/webhooks/secret"]["get"]["responses"]) == {"200", "401", "500"}
    assert paths["/v1/webhooks/secret"]["options"]["security"] == []


@pytest.mark.unit
def test_the_submit_body_and_its_refusals_are_documented():
    document = build_document()
    body = document["components"]["schemas"]["SubmitJobRequest"]
    assert set(body["properties"]) == {"model", "input", "webhook", "webhookEvents"}
    assert body["required"] == ["model", "input"]
    post = document["paths"]["/v1/jobs"]["post"]
    assert [p["name"] for p in post["parameters"]] == ["Idempotency-Key"]
    codes = document["components"]["schemas"]["Error"]["properties"]["error"]["properties"]["code"]["enum"]
    assert {
        "INVALID_REQUEST",
        "MODEL_NOT_ALLOWED",
        "INPUT_TOO_LARGE",
        "INVALID_IDEMPOTENCY_KEY",
        "IDEMPOTENCY_KEY_REUSED",
        "INVALID_WEBHOOK",
        "REQUEST_IN_PROGRESS",
        "UNSUPPORTED_MEDIA_TYPE",
        "SERVICE_UNAVAILABLE",
    } <= set(codes)


@pytest.mark.unit
@pytest.mark.parametrize(
    ("path", "name"),
    [("/v1/jobs", "Jobs"), ("/v1/jobs/{id}", "Job"), ("/v1/webhooks/secret", "WebhookSecret")],
)
def test_preflights_are_documented_as_the_templates_mock_answers_them(path, name):
    method = Template.read(TEMPLATE_PATH).resources[TEMPLATE_PREFLIGHTS[name]]["Properties"]
    assert method["Integration"]["Type"] == "MOCK"
    velocity = next(iter(method["Integration"]["IntegrationResponses"][0]["ResponseTemplates"].values()))
    text = velocity["Fn::Sub"] if isinstance(velocity, dict) else velocity
    sent = dict(re.findall(r"responseOverride\.header\.([A-Za-z-]+) = '([^']*)'", text))
    documented = build_document()["paths"][path]["options"]["responses"]["204"]["headers"]
    assert {
        header: documented[header]["schema"]["enum"][0]
        for header in (
            "Access-Control-Allow-Methods",
            "Access-Control-Allow-Headers",
            "Access-Control-Max-Age",
        )
    } == sent


def _gateway(api: Api) -> type[BaseHTTPRequestHandler]:
    """An HTTP front that turns requests into REST proxy events, as API Gateway and its authorizer do."""

    class Gateway(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            url = urlsplit(self.path)
            # The authorizer: any bearer token is Alice's here (token checks are API Gateway's job).
            authorized = bool(self.headers.get("Authorization"))
            event = rest_event(
                self.command,
                unquote(url.path),
                claims_=claims(ALICE) if authorized else None,
                anonymous=not authorized,
                query=dict(parse_qsl(url.query, keep_blank_values=True)),
            )
            for name, value in self.headers.items():
                event["headers"][name] = value
                event["multiValueHeaders"][name] = self.headers.get_all(name)
            response = handle(event, None, api.deps)
            payload = (response.get("body") or "").encode()
            self.send_response(response["statusCode"])
            for name, values in response["multiValueHeaders"].items():
                for value in values:
                    self.send_header(name, value)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(payload)

        def __getattr__(self, name: str):
            # Every method reaches the handler (schemathesis tries TRACE, QUERY, ...): `do_<METHOD>`.
            if name.startswith("do_"):
                return self._answer
            raise AttributeError(name)

        def log_message(self, format: str, *args: object) -> None:
            return None

    return Gateway


@pytest.fixture
def base_url(local_api: Api) -> Iterator[str]:
    """The handler behind a local HTTP server, on a table holding a few of Alice's jobs."""
    local_api.write(
        job_event(
            "job-1",
            status="COMPLETED",
            occurred=at(5),
            output_url="https://cdn.example/v.mp4",
            result={"seconds": 5},
        ),
        job_event(
            "job-2",
            status="FAILED",
            created=at(1),
            occurred=at(2),
            error={"code": "X", "message": "m", "retryable": True},
        ),
        *(job_event(f"job-q{n}", created=at(n + 2), progress=n) for n in range(3)),
    )
    server = ThreadingHTTPServer(("127.0.0.1", 0), _gateway(local_api))
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.integration
@schema.parametrize()
@settings(max_examples=examples(40), deadline=None, suppress_health_check=list(HealthCheck))
def test_handler_conforms_to_the_document(case, base_url):
    case.call_and_validate(
        base_url=base_url,
        headers={"Authorization": "Bearer token-of-alice", "Origin": ALLOWED_ORIGIN},
        checks=CHECKS,
    )
