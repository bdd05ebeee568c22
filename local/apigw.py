"""API Gateway REST API, locally: routes read from the template, requests turned into proxy events.

Preflights (MOCK) and the gateway's own errors run the template's VTL (airspeed), not a copy.
"""

from __future__ import annotations

import base64
import json
import re
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Final

from ops.template import Template

STAGE_NAME: Final = "local"
_PATH_PARAMETER = re.compile(r"^\{([^}+]+)\+?\}$")
_STATIC_VALUE = re.compile(r"^'(.*)'$", re.DOTALL)
JSON: Final = "application/json"


class _Input:
    """VTL's `$input` for a request: `params(name)` looks in the path, the query string, the headers."""

    def __init__(self, headers: Sequence[tuple[str, str]], query: Mapping[str, str], path: Mapping[str, str]):
        self._headers = headers
        self._query = query
        self._path = path

    def params(self, name: str) -> str:
        if name in self._path:
            return self._path[name]
        if name in self._query:
            return self._query[name]
        # The header as sent; the templates ask for `Origin` and `origin` (HTTP/2 lowercases).
        return next((value for key, value in self._headers if key == name), "")


@dataclass(frozen=True)
class RequestData:
    """What a mapping template may read of the request."""

    headers: Sequence[tuple[str, str]] = ()
    query: Mapping[str, str] = field(default_factory=dict)
    path: Mapping[str, str] = field(default_factory=dict)


def render(
    template: str, request: RequestData, context: Mapping[str, Any] | None = None
) -> tuple[str, dict[str, str]]:
    """A VTL mapping template's output and the headers it set through `$context.responseOverride.header`."""
    import airspeed  # local only: never on a Lambda path

    override: dict[str, Any] = {"header": {}}
    variables = {
        "input": _Input(request.headers, request.query, request.path),
        "context": {**(context or {}), "responseOverride": override},
    }
    text = str(airspeed.Template(template).merge(variables))
    return text, {str(name): str(value) for name, value in override["header"].items()}


def _static_headers(parameters: Mapping[str, Any], prefix: str) -> list[tuple[str, str]]:
    # `method.response.header.Vary: "'Origin'"`: only literal values; a mapping from elsewhere is skipped.
    headers = []
    for key, value in parameters.items():
        found = _STATIC_VALUE.match(str(value))
        if key.startswith(prefix) and found:
            headers.append((key.removeprefix(prefix), found.group(1)))
    return headers


@dataclass(frozen=True)
class MockIntegration:
    """A method's MOCK integration: its request template picks the status, its responses answer."""

    request_template: str
    responses: tuple[dict[str, Any], ...]

    @classmethod
    def of(cls, integration: Mapping[str, Any]) -> MockIntegration:
        """From a resolved `Integration` property of `Type: MOCK`."""
        templates = integration.get("RequestTemplates") or {}
        return cls(
            str(templates.get(JSON, '{"statusCode": 200}')),
            tuple(integration.get("IntegrationResponses", [])),
        )

    def answer(self, request: RequestData) -> ProxyResponse:
        """What API Gateway answers: the integration response whose pattern matches the status code."""
        chosen_text, _ = render(self.request_template, request)
        try:
            status = str(json.loads(chosen_text)["statusCode"])
        except (ValueError, KeyError, TypeError):
            return ProxyResponse.error(500, "Internal server error")
        default = next((r for r in self.responses if not r.get("SelectionPattern")), None)
        response = next(
            (
                r
                for r in self.responses
                if r.get("SelectionPattern") and re.fullmatch(r["SelectionPattern"], status)
            ),
            default,
        )
        if response is None:
            return ProxyResponse.error(500, "Internal server error")
        headers = _static_headers(response.get("ResponseParameters") or {}, "method.response.header.")
        body = ""
        if template := (response.get("ResponseTemplates") or {}).get(JSON):
            body, overrides = render(str(template), request)
            headers = [(k, v) for k, v in headers if k not in overrides] + list(overrides.items())
        return ProxyResponse(
            int(response["StatusCode"]), [("Content-Type", JSON), *headers], body.strip().encode()
        )


@dataclass(frozen=True)
class Route:
    """One API method: `resource` is API Gateway's path template (`/v1/jobs/{id}`).

    `function` is the logical id the integration invokes; a MOCK integration has `mock` instead.
    """

    method: str
    resource: str
    function: str
    authorized: bool = True
    mock: MockIntegration | None = None

    def match(self, method: str, path: str) -> dict[str, str] | None:
        """The path parameters when `method path` is this route, else None."""
        if method.upper() != self.method and self.method != "ANY":
            return None
        wanted = [p for p in self.resource.split("/") if p]
        given = [p for p in path.split("/") if p]
        if len(wanted) != len(given):
            return None
        parameters: dict[str, str] = {}
        for template_part, actual in zip(wanted, given, strict=True):
            if found := _PATH_PARAMETER.match(template_part):
                parameters[found.group(1)] = actual
            elif template_part != actual:
                return None
        return parameters


def _function_of(uri: Any, template: Template) -> str | None:
    # The integration URI names the function as `${Fn.Arn}` inside an Fn::Sub, or via GetAtt.
    text = json.dumps(uri)
    for logical_id in template.of_type("AWS::Serverless::Function"):
        name = re.escape(logical_id)
        if re.search(rf'(?<![A-Za-z0-9]){name}\.Arn\b|\["{name}", "Arn"\]', text):
            return logical_id
    return None


def _parent_id(parent: Any, template: Template) -> str | None:
    # `ParentId` is `!Ref Resource`, `!GetAtt Api.RootResourceId` (the root) or an `Fn::If` of those.
    if isinstance(parent, dict) and "Ref" in parent:
        return str(parent["Ref"])
    if isinstance(parent, dict) and "Fn::If" in parent:
        name, when_true, when_false = parent["Fn::If"]
        return _parent_id(when_true if template.condition(name) else when_false, template)
    return None


def _resource_path(logical_id: str, template: Template, resources: Mapping[str, Any]) -> str | None:
    parts: list[str] = []
    current: str | None = logical_id
    for _ in range(32):  # a path deeper than this is a cycle in a broken template
        if current is None or current not in resources:
            return "/" + "/".join(reversed(parts))
        props = resources[current].get("Properties", {})
        parts.append(str(template.resolve(props["PathPart"])))
        current = _parent_id(props.get("ParentId"), template)
    return None


def routes_from_template(template: Template) -> list[Route]:
    """Every API Gateway method of the template that proxies to one of its functions."""
    api_resources = template.of_type("AWS::ApiGateway::Resource")
    routes: list[Route] = []
    for method in template.of_type("AWS::ApiGateway::Method").values():
        if "Condition" in method and not template.condition(method["Condition"]):
            continue
        props = method.get("Properties", {})
        integration = props.get("Integration", {})
        mock = (
            MockIntegration.of(template.resolve(integration)) if integration.get("Type") == "MOCK" else None
        )
        function = _function_of(integration.get("Uri"), template) if mock is None else ""
        resource_ref = props.get("ResourceId")
        resource_id = resource_ref.get("Ref") if isinstance(resource_ref, dict) else None
        if function is None or resource_id not in api_resources:
            continue
        path = _resource_path(str(resource_id), template, api_resources)
        if path is None:
            continue
        authorization = str(template.resolve(props.get("AuthorizationType", "NONE"))).upper()
        routes.append(
            Route(
                method=str(template.resolve(props["HttpMethod"])).upper(),
                resource=path,
                function=function,
                authorized=authorization != "NONE",
                mock=mock,
            )
        )
    # Literal path parts win over parameters, as in API Gateway.
    return sorted(routes, key=lambda r: (r.resource.count("{"), -len(r.resource)))


def find_route(routes: Sequence[Route], method: str, path: str) -> tuple[Route, dict[str, str]] | None:
    """The route serving `method path` and its path parameters."""
    for route in routes:
        parameters = route.match(method, path)
        if parameters is not None:
            return route, parameters
    return None


def paths_of(routes: Sequence[Route], path: str) -> list[Route]:
    """The routes whose resource matches `path` for any method (for OPTIONS and 405s)."""
    return [r for r in routes if Route("ANY", r.resource, r.function).match("ANY", path) is not None]


def _single(values: Mapping[str, Sequence[str]]) -> dict[str, str] | None:
    # API Gateway keeps the last value of a repeated header or query parameter in the single-value map.
    return {k: v[-1] for k, v in values.items()} or None


def proxy_event(
    *,
    route: Route,
    method: str,
    path: str,
    path_parameters: Mapping[str, str],
    headers: Mapping[str, Sequence[str]],
    query: Mapping[str, Sequence[str]],
    body: bytes,
    claims: Mapping[str, str] | None,
    source_ip: str = "127.0.0.1",
    stage: str = STAGE_NAME,
    account: str = "123456789012",
    api_id: str = "local",
    now: float | None = None,
) -> dict[str, Any]:
    """The API Gateway REST proxy event for one request."""
    moment = time.time() if now is None else now
    request_id = str(uuid.uuid4())
    is_text = True
    try:
        text = body.decode()
    except UnicodeDecodeError:
        is_text = False
        text = base64.b64encode(body).decode()
    single_headers = _single(headers)
    authorizer: dict[str, Any] | None = {"claims": dict(claims)} if claims is not None else None
    return {
        "resource": route.resource,
        "path": path,
        "httpMethod": method.upper(),
        "headers": single_headers,
        "multiValueHeaders": {k: list(v) for k, v in headers.items()} or None,
        "queryStringParameters": _single(query),
        "multiValueQueryStringParameters": {k: list(v) for k, v in query.items()} or None,
        "pathParameters": dict(path_parameters) or None,
        "stageVariables": None,
        "requestContext": {
            "resourceId": route.resource,
            "resourcePath": route.resource,
            "httpMethod": method.upper(),
            "extendedRequestId": request_id,
            "requestTime": datetime.fromtimestamp(moment, UTC).strftime("%d/%b/%Y:%H:%M:%S +0000"),
            "path": f"/{stage}{path}",
            "accountId": account,
            "protocol": "HTTP/1.1",
            "stage": stage,
            "domainPrefix": "127",
            "requestTimeEpoch": int(moment * 1000),
            "requestId": request_id,
            "identity": {
                "cognitoIdentityPoolId": None,
                "accountId": None,
                "cognitoIdentityId": None,
                "caller": None,
                "sourceIp": source_ip,
                "principalOrgId": None,
                "accessKey": None,
                "cognitoAuthenticationType": None,
                "cognitoAuthenticationProvider": None,
                "userArn": None,
                "userAgent": (single_headers or {}).get("User-Agent")
                or (single_headers or {}).get("user-agent"),
                "user": None,
            },
            "domainName": "127.0.0.1",
            "apiId": api_id,
            "authorizer": authorizer,
        },
        "body": (text if text else None),
        "isBase64Encoded": not is_text,
    }


@dataclass
class ProxyResponse:
    """What a proxy integration answered: status, headers (possibly repeated) and body bytes."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""

    @staticmethod
    def is_proxy_answer(result: Any) -> bool:
        """Whether a function's result is a proxy answer at all (a dict with an integer statusCode)."""
        return isinstance(result, dict) and isinstance(result.get("statusCode"), int)

    @classmethod
    def parse(cls, result: Any) -> ProxyResponse:
        """Read a function's proxy answer; a malformed one is API Gateway's 502."""
        if not cls.is_proxy_answer(result):
            return cls.error(502, "Internal server error")
        headers: list[tuple[str, str]] = []
        for name, values in (result.get("multiValueHeaders") or {}).items():
            headers.extend((name, str(v)) for v in values)
        multi = {name.lower() for name, _ in headers}
        headers.extend(
            (name, str(value))
            for name, value in (result.get("headers") or {}).items()
            if name.lower() not in multi
        )
        raw = result.get("body") or ""
        body = base64.b64decode(raw) if result.get("isBase64Encoded") else str(raw).encode()
        return cls(int(result["statusCode"]), headers, body)

    @classmethod
    def error(cls, status: int, message: str, code: str | None = None) -> ProxyResponse:
        """An error answer with the one error body `{"error": {"code", "message"}}` (DESIGN §4)."""
        body = json.dumps(
            {"error": {"code": code or _CODES.get(status, "ERROR"), "message": message}}
        ).encode()
        return cls(status, [("Content-Type", JSON), ("Cache-Control", "no-store")], body)


# The code of an error answer when none is given, by status.
_CODES: Final = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    413: "REQUEST_TOO_LARGE",
    500: "INTERNAL_ERROR",
    502: "BAD_GATEWAY",
    504: "GATEWAY_TIMEOUT",
}
# API Gateway's status for each response type it answers locally (when the template sets none).
GATEWAY_STATUS: Final = {
    "UNAUTHORIZED": 401,
    "ACCESS_DENIED": 403,
    "MISSING_AUTHENTICATION_TOKEN": 403,
    "BAD_REQUEST_BODY": 400,
    "REQUEST_TOO_LARGE": 413,
    "INTEGRATION_FAILURE": 502,
    "INTEGRATION_TIMEOUT": 504,
}


@dataclass(frozen=True)
class GatewayResponses:
    """The template's `AWS::ApiGateway::GatewayResponse`s, by response type: API Gateway's own answers."""

    specs: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def answer(
        self, kind: str, message: str, request: RequestData, status: int | None = None
    ) -> ProxyResponse:
        """The answer for response type `kind` (falling back to DEFAULT_4XX/5XX as API Gateway does)."""
        status = status or GATEWAY_STATUS.get(kind, 500)
        spec = self.specs.get(kind) or self.specs.get("DEFAULT_5XX" if status >= 500 else "DEFAULT_4XX")
        if spec is None:
            return ProxyResponse.error(status, message, kind)
        if spec.get("StatusCode"):
            status = int(spec["StatusCode"])
        headers = _static_headers(spec.get("ResponseParameters") or {}, "gatewayresponse.header.")
        template = (spec.get("ResponseTemplates") or {}).get(JSON)
        if template is None:
            return ProxyResponse(
                status, [("Content-Type", JSON), *headers], json.dumps({"message": message}).encode()
            )
        context = {"error": {"message": message, "messageString": json.dumps(message), "responseType": kind}}
        body, overrides = render(str(template), request, context)
        headers = [(k, v) for k, v in headers if k not in overrides] + list(overrides.items())
        return ProxyResponse(status, [("Content-Type", JSON), *headers], body.strip().encode())


def gateway_responses_from_template(template: Template) -> GatewayResponses:
    """Every gateway response of the template whose condition holds, resolved."""
    specs: dict[str, Mapping[str, Any]] = {}
    for logical_id, resource in template.of_type("AWS::ApiGateway::GatewayResponse").items():
        if "Condition" in resource and not template.condition(resource["Condition"]):
            continue
        props = template.properties(logical_id)
        specs[str(props["ResponseType"])] = props
    return GatewayResponses(specs)
