"""API Gateway REST API, locally: routes read from the template, requests turned into proxy events.

`routes_from_template` reads the `AWS::ApiGateway::Resource` / `Method` resources (path parts,
HTTP method, the function the integration invokes, whether a Cognito authorizer guards it).
`proxy_event` builds the full REST API (payload 1.0) Lambda proxy event; `ProxyResponse.parse` reads
what the function answered.
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

from local.template import Template

STAGE_NAME: Final = "local"
_PATH_PARAMETER = re.compile(r"^\{([^}+]+)\+?\}$")


@dataclass(frozen=True)
class Route:
    """One API method: `resource` is API Gateway's path template (`/v1/jobs/{id}`)."""

    method: str
    resource: str
    function: str
    authorized: bool = True

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
        function = _function_of(integration.get("Uri"), template)
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

    @classmethod
    def parse(cls, result: Any) -> ProxyResponse:
        """Read a function's proxy answer; a malformed one is API Gateway's 502."""
        if not isinstance(result, dict) or not isinstance(result.get("statusCode"), int):
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
    def error(cls, status: int, message: str) -> ProxyResponse:
        """An answer API Gateway itself gives (401, 403, 404, 502), `{"message": ...}` as AWS does."""
        body = json.dumps({"message": message}).encode()
        return cls(status, [("Content-Type", "application/json")], body)
