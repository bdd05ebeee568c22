"""template.yaml through AWS's SAM translator: functions, least-privilege roles, event sources, routes.

Assertions are on the translated CloudFormation, what `sam deploy` would create, not on the SAM source.
"""

from __future__ import annotations

import importlib
import re
import warnings
from pathlib import Path
from typing import Any

import pytest

from tests.template import sam
from tests.template.test_webhooks import (
    WEBHOOK_HANDLERS,
    WEBHOOK_MAPPINGS,
    WEBHOOK_ROUTES,
    WEBHOOK_STATEMENTS,
)

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]


def get_att(logical_id: str, attribute: str = "Arn") -> dict[str, Any]:
    return {"Fn::GetAtt": [logical_id, attribute]}


def statement(
    sid: str, actions: str | list[str], resource: Any, condition: dict[str, Any] | None = None
) -> dict[str, Any]:
    found = {"Sid": sid, "Effect": "Allow", "Action": actions, "Resource": resource}
    return found | ({"Condition": condition} if condition else {})


def sources(*names: str) -> dict[str, Any]:
    # The producer may put only events of these sources (IAM condition key events:source).
    return {"StringEquals": {"events:source": names[0] if len(names) == 1 else list(names)}}


def logs(function: str) -> dict[str, Any]:
    return statement(
        "WriteOwnLogs", ["logs:CreateLogStream", "logs:PutLogEvents"], get_att(f"{function}LogGroup")
    )


def poll(queue: str) -> dict[str, Any]:
    return statement(
        f"Poll{queue}", ["sqs:ReceiveMessage", "sqs:DeleteMessage", "sqs:GetQueueAttributes"], get_att(queue)
    )


IDEMPOTENCY = ["dynamodb:GetItem", "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem"]
PUBLISH = get_att("JobsBus")
OUTBOX = get_att("StatusOutboxQueue")
# A connection id is known only at run time: the one resource with a wildcard, this API's stage only.
MANAGE_CONNECTIONS = {
    "Fn::Sub": "arn:${AWS::Partition}:execute-api:${AWS::Region}:${AWS::AccountId}:${JobStreamApi}/${Stage}"
    "/POST/@connections/*"
}

# Every permission each function has, exactly: anything more is a least-privilege defect.
EXPECTED_STATEMENTS: dict[str, list[Any]] = {
    "ProjectorFn": [
        logs("ProjectorFn"),
        poll("ProjectorQueue"),
        statement("ProjectJobs", "dynamodb:UpdateItem", get_att("JobsTable")),
    ],
    "SubmitJobFn": [
        logs("SubmitJobFn"),
        statement("PublishJobEvents", "events:PutEvents", PUBLISH, sources("jobs.submit")),
        statement("KeepUndeliveredStatusEvents", "sqs:SendMessage", OUTBOX),
        statement("RememberIdempotencyKeys", IDEMPOTENCY, get_att("IdempotencyTable")),
    ],
    "FalInvokerFn": [
        logs("FalInvokerFn"),
        poll("InvokerQueue"),
        statement("PublishStatusEvents", "events:PutEvents", PUBLISH, sources("jobs.fal-invoker")),
        statement("KeepUndeliveredStatusEvents", "sqs:SendMessage", OUTBOX),
        statement("SubmitEachJobOnce", IDEMPOTENCY, get_att("IdempotencyTable")),
        {
            "Fn::If": [
                "HasFalKeySecret",
                statement("ReadFalKey", "secretsmanager:GetSecretValue", {"Ref": "FalKeySecretArn"}),
                {"Ref": "AWS::NoValue"},
            ]
        },
    ],
    "RepublisherFn": [
        logs("RepublisherFn"),
        poll("StatusOutboxQueue"),
        # The outbox holds entries of both producers, put back with the source they were written with.
        statement(
            "RepublishStatusEvents", "events:PutEvents", PUBLISH, sources("jobs.submit", "jobs.fal-invoker")
        ),
    ],
    "GetJobFn": [
        logs("GetJobFn"),
        statement("ReadJobs", "dynamodb:GetItem", get_att("JobsTable")),
        statement("ListOwnJobs", "dynamodb:Query", {"Fn::Sub": "${JobsTable.Arn}/index/ByUser"}),
        statement("ReadCursorKey", "secretsmanager:GetSecretValue", {"Ref": "CursorSigningKey"}),
    ],
    # Live updates (DESIGN §4b); tests/template/test_live_updates.py checks the rest of their resources.
    "StreamAuthorizerFn": [logs("StreamAuthorizerFn")],
    "StreamFn": [
        logs("StreamFn"),
        statement(
            "KeepConnections",
            ["dynamodb:PutItem", "dynamodb:Query", "dynamodb:BatchWriteItem"],
            get_att("ConnectionsTable"),
        ),
        statement("ReadJobs", "dynamodb:GetItem", get_att("JobsTable")),
        statement("ListOwnJobs", "dynamodb:Query", {"Fn::Sub": "${JobsTable.Arn}/index/ByUser"}),
        statement("PostToConnections", "execute-api:ManageConnections", MANAGE_CONNECTIONS),
    ],
    "NotifierFn": [
        logs("NotifierFn"),
        statement(
            "ReadJobsStream",
            [
                "dynamodb:DescribeStream",
                "dynamodb:GetRecords",
                "dynamodb:GetShardIterator",
                "dynamodb:ListStreams",
            ],
            get_att("JobsTable", "StreamArn"),
        ),
        statement("FindSubscribers", "dynamodb:Query", {"Fn::Sub": "${ConnectionsTable.Arn}/index/ByTopic"}),
        statement(
            "ForgetGoneConnections",
            ["dynamodb:Query", "dynamodb:BatchWriteItem"],
            get_att("ConnectionsTable"),
        ),
        statement("KeepFailedBatches", "sqs:SendMessage", get_att("NotifierDLQ")),
        statement("PostToConnections", "execute-api:ManageConnections", MANAGE_CONNECTIONS),
    ],
}

EXPECTED_HANDLERS = {
    "ProjectorFn": "projector.handler.lambda_handler",
    "SubmitJobFn": "producers.submit.handler.lambda_handler",
    "FalInvokerFn": "producers.invoker.handler.lambda_handler",
    "RepublisherFn": "producers.republisher.handler.lambda_handler",
    "GetJobFn": "api.handler.lambda_handler",
    "StreamAuthorizerFn": "notifier.authorizer.lambda_handler",
    "StreamFn": "notifier.routes.lambda_handler",
    "NotifierFn": "notifier.handler.lambda_handler",
}

# The SQS event source mappings, by function: (queue, properties besides queue and function).
EXPECTED_MAPPINGS = {
    "ProjectorFn": (
        "ProjectorQueue",
        {
            "BatchSize": 10,
            "MaximumBatchingWindowInSeconds": 0,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 10},
        },
    ),
    "FalInvokerFn": (
        "InvokerQueue",
        {
            "BatchSize": 1,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 20},
        },
    ),
    "RepublisherFn": (
        "StatusOutboxQueue",
        {
            "BatchSize": 10,
            "FunctionResponseTypes": ["ReportBatchItemFailures"],
            "ScalingConfig": {"MaximumConcurrency": 2},
        },
    ),
}

# Webhooks (DESIGN §4c): their expectations are kept with their other checks, in test_webhooks.py.
EXPECTED_STATEMENTS |= WEBHOOK_STATEMENTS
EXPECTED_HANDLERS |= WEBHOOK_HANDLERS
EXPECTED_MAPPINGS |= WEBHOOK_MAPPINGS

XRAY = {"Fn::Sub": "arn:${AWS::Partition}:iam::aws:policy/AWSXrayWriteOnlyAccess"}


def of_type(resources: dict[str, Any], kind: str) -> dict[str, Any]:
    return {name: res for name, res in resources.items() if res["Type"] == kind}


def test_every_function_is_translated_with_its_packaged_code(resources):
    functions = of_type(resources, "AWS::Lambda::Function")
    assert set(functions) == set(EXPECTED_HANDLERS)
    for name, function in functions.items():
        props = function["Properties"]
        assert props["Handler"] == EXPECTED_HANDLERS[name]
        assert props["Code"] == {"S3Bucket": "jobstatus-artifacts", "S3Key": "0123456789abcdef"}
        assert props["Runtime"] == "python3.12"
        assert props["Role"] == get_att(f"{name}Role")
        assert props["TracingConfig"] == {"Mode": "Active"}


def test_every_function_is_built_by_the_makefile_from_the_repository_root(raw):
    for name, resource in of_type(raw["Resources"], "AWS::Serverless::Function").items():
        assert resource["Metadata"] == {"BuildMethod": "makefile"}, name
        assert resource["Properties"]["CodeUri"] == ".", name
    assert re.search(r"^build-%:", (ROOT / "Makefile").read_text(), re.MULTILINE)


def test_get_job_fn_has_the_seed_runtime_memory_and_timeout(resources):
    props = resources["GetJobFn"]["Properties"]
    assert (props["Runtime"], props["MemorySize"], props["Timeout"]) == ("python3.12", 256, 30)


@pytest.mark.parametrize("function", sorted(EXPECTED_STATEMENTS))
def test_each_role_grants_exactly_what_its_function_needs(resources, function):
    roles = of_type(resources, "AWS::IAM::Role")
    # The translator made no role of its own (it would attach AWS's SQS policy, Resource "*").
    assert set(roles) == {f"{name}Role" for name in EXPECTED_STATEMENTS}
    props = roles[f"{function}Role"]["Properties"]
    assert props["AssumeRolePolicyDocument"]["Statement"] == [
        {"Effect": "Allow", "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}
    ]
    assert props["ManagedPolicyArns"] == [XRAY]
    (policy,) = props["Policies"]
    assert policy["PolicyDocument"]["Statement"] == EXPECTED_STATEMENTS[function]


def _statements(document: Any) -> list[dict[str, Any]]:
    # Conditional statements (`Fn::If`) count with both of their branches.
    found: list[dict[str, Any]] = []
    for item in document:
        if "Fn::If" in item:
            found.extend(branch for branch in item["Fn::If"][1:] if "Ref" not in branch)
        else:
            found.append(item)
    return found


def test_no_statement_has_a_wildcard_action_or_resource(resources):
    for name, role in of_type(resources, "AWS::IAM::Role").items():
        for policy in role["Properties"]["Policies"]:
            for entry in _statements(policy["PolicyDocument"]["Statement"]):
                actions = entry["Action"] if isinstance(entry["Action"], list) else [entry["Action"]]
                assert all("*" not in action for action in actions), (name, entry)
                if entry["Resource"] == MANAGE_CONNECTIONS:  # only ManageConnections, on one stage
                    assert actions == ["execute-api:ManageConnections"], (name, entry)
                    continue
                assert entry["Resource"] != "*" and "*" not in str(entry["Resource"]), (name, entry)
                assert entry["Effect"] == "Allow" and "NotAction" not in entry and "NotResource" not in entry


@pytest.mark.parametrize("function", ["SubmitJobFn", "FalInvokerFn", "RepublisherFn"])
def test_producers_have_nothing_on_the_jobs_table(resources, function):
    assert "JobsTable" not in repr(resources[f"{function}Role"]["Properties"]["Policies"])


def test_only_the_projector_writes_the_jobs_table(resources):
    writers = {
        name
        for name, role in of_type(resources, "AWS::IAM::Role").items()
        for entry in _statements(role["Properties"]["Policies"][0]["PolicyDocument"]["Statement"])
        if entry["Resource"] == get_att("JobsTable")
        and any(a in {"dynamodb:UpdateItem", "dynamodb:PutItem"} for a in [entry["Action"]])
    }
    assert writers == {"ProjectorFnRole"}


def test_sqs_event_source_mappings(resources):
    # SQS ones only: NotifierFn's DynamoDB stream mapping is checked in test_live_updates.py.
    mappings = {
        name: m
        for name, m in of_type(resources, "AWS::Lambda::EventSourceMapping").items()
        if "StartingPosition" not in m["Properties"]
    }
    by_function = {m["Properties"]["FunctionName"]["Ref"]: m["Properties"] for m in mappings.values()}
    assert set(by_function) == set(EXPECTED_MAPPINGS)
    for function, (queue, expected) in EXPECTED_MAPPINGS.items():
        props = dict(by_function[function])
        assert props.pop("EventSourceArn") == get_att(queue)
        assert props.pop("FunctionName") == {"Ref": function}
        assert props == expected, function


def test_handler_modules_present_on_disk_import_and_expose_their_handler(resources):
    absent = []
    for name, function in sorted(of_type(resources, "AWS::Lambda::Function").items()):
        module_name, attribute = function["Properties"]["Handler"].rsplit(".", 1)
        if not (ROOT / (module_name.replace(".", "/") + ".py")).is_file():
            absent.append(f"{name}: {module_name}")
            continue
        assert importlib.util.find_spec(module_name) is not None, module_name
        module = importlib.import_module(module_name)
        assert callable(getattr(module, attribute)), f"{module_name}.{attribute}"
    if absent:
        warnings.warn(f"handler modules not on disk yet (import not checked): {absent}", stacklevel=1)


def _routes(raw: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    # `(METHOD, /v1/...path)` -> the method's properties; the path walks the Resource parents.
    api_resources = of_type(raw["Resources"], "AWS::ApiGateway::Resource")

    def path(logical_id: str) -> str:
        props = api_resources[logical_id]["Properties"]
        parent = props["ParentId"]
        prefix = path(parent["Ref"]) if "Ref" in parent and parent["Ref"] in api_resources else "/v1"
        return f"{prefix}/{props['PathPart']}"

    return {
        (method["Properties"]["HttpMethod"], path(method["Properties"]["ResourceId"]["Ref"])): method[
            "Properties"
        ]
        for method in of_type(raw["Resources"], "AWS::ApiGateway::Method").values()
    }


def _target(props: dict[str, Any]) -> str:
    integration = props["Integration"]
    if integration["Type"] == "MOCK":
        return "MOCK"
    assert (integration["Type"], integration["IntegrationHttpMethod"]) == ("AWS_PROXY", "POST")
    found = re.fullmatch(
        r"arn:\$\{AWS::Partition\}:apigateway:\$\{AWS::Region\}:lambda:path/2015-03-31/functions/"
        r"\$\{(\w+)\.Arn\}/invocations",
        integration["Uri"]["Fn::Sub"],
    )
    assert found, integration["Uri"]
    return found.group(1)


EXPECTED_ROUTES = {
    ("GET", "/v1/jobs"): "GetJobFn",
    ("POST", "/v1/jobs"): "SubmitJobFn",
    ("OPTIONS", "/v1/jobs"): "MOCK",
    ("GET", "/v1/jobs/{id}"): "GetJobFn",
    ("OPTIONS", "/v1/jobs/{id}"): "MOCK",
    **WEBHOOK_ROUTES,
}
AUTHORIZER = {"Fn::If": ["CreatesRestApi", {"Ref": "RestApiAuthorizer"}, {"Ref": "ApiAuthorizerId"}]}
API_ID = {"Fn::If": ["CreatesRestApi", {"Ref": "RestApi"}, {"Ref": "RestApiId"}]}


def test_routes_go_to_the_right_functions_on_the_given_api(resources, raw):
    routes = _routes(raw)
    assert {route: _target(props) for route, props in routes.items()} == EXPECTED_ROUTES
    for props in routes.values():
        assert props["RestApiId"] == API_ID
    # The routes hang under the existing API's /v1 unless this stack made the API.
    jobs = raw["Resources"]["JobsResource"]["Properties"]
    assert jobs["ParentId"] == {
        "Fn::If": ["CreatesRestApi", {"Ref": "RestApiV1Resource"}, {"Ref": "ApiParentResourceId"}]
    }
    assert (
        of_type(resources, "AWS::ApiGateway::Method").keys()
        == of_type(raw["Resources"], "AWS::ApiGateway::Method").keys()
    )


def test_preflight_needs_no_authorization_and_the_rest_need_the_cognito_authorizer(raw):
    for (method, path), props in _routes(raw).items():
        if method == "OPTIONS":
            assert props["AuthorizationType"] == "NONE", path
            assert "AuthorizerId" not in props, path
        else:
            assert props["AuthorizationType"] == "COGNITO_USER_POOLS", (method, path)
            assert props["AuthorizerId"] == AUTHORIZER, (method, path)


def test_only_the_routes_may_invoke_the_functions(resources, raw):
    permissions = of_type(resources, "AWS::Lambda::Permission")
    granted = set()
    # The WebSocket API's permissions are checked in test_live_updates.py.
    rest = [p["Properties"] for p in permissions.values() if "JobStreamApi" not in repr(p["Properties"])]
    for props in rest:
        assert props["Action"] == "lambda:InvokeFunction"
        assert props["Principal"] == "apigateway.amazonaws.com"
        text, variables = props["SourceArn"]["Fn::Sub"]
        assert variables["Api"] == API_ID
        found = re.fullmatch(
            r"arn:\$\{AWS::Partition\}:execute-api:\$\{AWS::Region\}:\$\{AWS::AccountId\}:\$\{Api\}/"
            r"\$\{ApiStage\}/([A-Z]+)(/v1/(?:jobs(?:/\*)?|webhooks/secret))",
            text,
        )
        assert found, text
        method, path = found.groups()
        granted.add((props["FunctionName"]["Fn::GetAtt"][0], method, path.replace("*", "{id}")))
    # The preflights are MOCK integrations: no function may be invoked for them.
    assert granted == {(fn, method, path) for (method, path), fn in EXPECTED_ROUTES.items() if fn != "MOCK"}


def test_the_deployment_is_renamed_whenever_a_route_changes(raw):
    deployments = of_type(raw["Resources"], "AWS::ApiGateway::Deployment")
    assert list(deployments) == [sam.deployment_logical_id(raw)], (
        "run: .venv/bin/python -m tests.template.sam"
    )
    (deployment,) = deployments.values()
    assert set(deployment["DependsOn"]) == set(of_type(raw["Resources"], "AWS::ApiGateway::Method")) | set(
        of_type(raw["Resources"], "AWS::ApiGateway::GatewayResponse")
    )
    assert deployment["Properties"]["RestApiId"] == API_ID
    assert deployment["DeletionPolicy"] == "Retain"  # never take the existing API's stage down

    # A changed method gives another id, and so does a changed gateway response.
    changed = sam.packaged(raw)
    changed["Resources"]["JobsGetMethod"]["Properties"]["HttpMethod"] = "HEAD"
    assert sam.deployment_logical_id(changed) != sam.deployment_logical_id(raw)
    changed = sam.packaged(raw)
    changed["Resources"]["GatewayResponseUnauthorized"]["Properties"]["StatusCode"] = "403"
    assert sam.deployment_logical_id(changed) != sam.deployment_logical_id(raw)


def test_rename_deployment_rewrites_the_logical_id(tmp_path):
    copy = tmp_path / "template.yaml"
    copy.write_text((ROOT / "template.yaml").read_text().replace("PathPart: jobs", "PathPart: tasks"))
    wanted = sam.rename_deployment(copy)
    assert wanted in copy.read_text()
    assert list(of_type(sam.read(copy)["Resources"], "AWS::ApiGateway::Deployment")) == [wanted]


def test_api_creation_only_behind_its_condition(raw):
    created = {name for name, res in raw["Resources"].items() if res.get("Condition") == "CreatesRestApi"}
    assert created == {"RestApi", "RestApiV1Resource", "RestApiAuthorizer"}
    assert raw["Conditions"]["CreatesRestApi"] == {"Fn::Equals": [{"Ref": "CreateRestApi"}, "true"]}
    assert raw["Parameters"]["CreateRestApi"]["Default"] == "false"
    authorizer = raw["Resources"]["RestApiAuthorizer"]["Properties"]
    assert authorizer["Type"] == "COGNITO_USER_POOLS"
    assert authorizer["ProviderARNs"] == [{"Ref": "CognitoUserPoolArn"}]


COMMON_ENV = {
    "STAGE",
    "JOBS_TABLE_NAME",
    "EVENT_BUS_NAME",
    "JOB_TTL_DAYS",
    "ALLOWED_ORIGINS",
    "POWERTOOLS_SERVICE_NAME",
    "POWERTOOLS_METRICS_NAMESPACE",
    "POWERTOOLS_LOG_LEVEL",
}
EXPECTED_ENV = {
    "ProjectorFn": COMMON_ENV,
    "RepublisherFn": COMMON_ENV,
    "SubmitJobFn": COMMON_ENV | {"MODEL_ALLOW_LIST", "OUTBOX_QUEUE_URL", "IDEMPOTENCY_TABLE_NAME"},
    "FalInvokerFn": COMMON_ENV
    | {
        "MODEL_ALLOW_LIST",
        "OUTBOX_QUEUE_URL",
        "INVOKER_QUEUE_URL",
        "IDEMPOTENCY_TABLE_NAME",
        "FAL_KEY_SECRET_ARN",
    },
    "GetJobFn": COMMON_ENV | {"CURSOR_KEY_SECRET_ARN"},
}


def test_environment_variables_match_the_shared_interfaces(resources):
    for name, expected in EXPECTED_ENV.items():
        variables = resources[name]["Properties"]["Environment"]["Variables"]
        assert set(variables) == expected, name
        assert variables["POWERTOOLS_SERVICE_NAME"] == "jobstatus"
        assert variables["POWERTOOLS_METRICS_NAMESPACE"] == "JobStatus"
        if "OUTBOX_QUEUE_URL" in variables:
            assert variables["OUTBOX_QUEUE_URL"] == {"Ref": "StatusOutboxQueue"}  # Ref of a queue: its URL
            assert variables["IDEMPOTENCY_TABLE_NAME"] == {"Ref": "IdempotencyTable"}
            assert variables["MODEL_ALLOW_LIST"] == {"Ref": "ModelAllowList"}
    invoker = resources["FalInvokerFn"]["Properties"]["Environment"]["Variables"]
    # The queue it deletes finished records from (after its post-response flush) is its own source.
    assert invoker["INVOKER_QUEUE_URL"] == {"Ref": "InvokerQueue"}
    assert invoker["FAL_KEY_SECRET_ARN"] == {
        "Fn::If": ["HasFalKeySecret", {"Ref": "FalKeySecretArn"}, {"Ref": "AWS::NoValue"}]
    }
    # The cursor key is in no variable: GetJobFn gets the generated secret's ARN (Ref of a secret)
    # and reads its value once at cold start (its role may read that one secret, nothing else).
    key = resources["GetJobFn"]["Properties"]["Environment"]["Variables"]["CURSOR_KEY_SECRET_ARN"]
    assert key == {"Ref": "CursorSigningKey"}
    assert "resolve:secretsmanager" not in repr(resources["GetJobFn"])
    secret = resources["CursorSigningKey"]
    assert secret["Type"] == "AWS::SecretsManager::Secret"
    assert secret["Properties"]["GenerateSecretString"]["PasswordLength"] >= 32


def test_log_groups_are_the_functions_own(resources):
    for name in EXPECTED_HANDLERS:
        function_name = resources[name]["Properties"]["FunctionName"]["Fn::Sub"]
        group = resources[f"{name}LogGroup"]["Properties"]
        assert group["LogGroupName"] == {"Fn::Sub": f"/aws/lambda/{function_name}"}
        assert group["RetentionInDays"] == {"Ref": "LogRetentionDays"}
