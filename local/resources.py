"""Create the template's resources on the local engines: tables, queues, bus, archive, rules, secrets.

Everything comes from `template.yaml` through `ops.template.Template` (keys, GSIs, TTL, queue
attributes, redrive policies, event patterns, rule targets with their retry and dead-letter
settings); nothing here is a second copy. Creation is idempotent: a user's own DynamoDB engine
(`AWS_ENDPOINT_URL_DYNAMODB`) may keep its tables across restarts, and moto starts empty each time.
"""

from __future__ import annotations

import json
import logging
import os
import secrets as secret_tokens
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from botocore.exceptions import ClientError

from jobstatus.errors import client_error_code
from ops.template import Template

if TYPE_CHECKING:
    from mypy_boto3_dynamodb import DynamoDBClient
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

log = logging.getLogger(__name__)

# Queue properties that are SQS attributes of the same name (CreateQueue takes them as strings).
QUEUE_ATTRIBUTES: Final = (
    "VisibilityTimeout",
    "MessageRetentionPeriod",
    "DelaySeconds",
    "MaximumMessageSize",
    "ReceiveMessageWaitTimeSeconds",
    "FifoQueue",
    "ContentBasedDeduplication",
    "SqsManagedSseEnabled",
)
DEFAULT_VISIBILITY_TIMEOUT: Final = 30
# The webhook master secret (DESIGN §4c) is kept in the data folder, so that users' whsec_ secrets,
# derived from it, stay the same across restarts of the local stack (moto starts empty each time).
WEBHOOK_MASTER_SECRET_ID: Final = "WebhookMasterSecret"  # noqa: S105 - a logical id, not a secret
WEBHOOK_MASTER_SECRET_FILE: Final = "webhook-master-secret"  # noqa: S105 - a file name


@dataclass(frozen=True)
class QueueInfo:
    """A queue made on the local SQS."""

    logical_id: str
    name: str
    url: str
    arn: str
    visibility_timeout: int
    max_receive_count: int | None = None
    dead_letter_queue: str | None = None  # logical id


@dataclass
class StackResources:
    """What `provision` made, by logical id."""

    tables: dict[str, str] = field(default_factory=dict)
    queues: dict[str, QueueInfo] = field(default_factory=dict)
    buses: dict[str, str] = field(default_factory=dict)
    archives: dict[str, str] = field(default_factory=dict)
    rules: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)  # ARN by logical id


def active(template: Template, kind: str) -> list[str]:
    """Logical ids of the resources of `kind` whose `Condition` (if any) holds."""
    return [
        logical_id
        for logical_id, resource in template.of_type(kind).items()
        if "Condition" not in resource or template.condition(resource["Condition"])
    ]


def _error_code(error: ClientError) -> str:
    return client_error_code(error)


def create_tables(template: Template, dynamodb: DynamoDBClient) -> dict[str, str]:
    """Each table of the template with its keys, GSIs and TTL; a table already there is kept."""
    made: dict[str, str] = {}
    for logical_id in active(template, "AWS::DynamoDB::Table"):
        definition = template.table_definition(logical_id)
        name = str(definition["TableName"])
        try:
            dynamodb.create_table(**definition)
        except ClientError as error:
            if _error_code(error) != "ResourceInUseException":
                raise
            log.info("table %s already exists (kept from the last run)", name)
        dynamodb.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
        if attribute := template.ttl_attribute(logical_id):
            try:
                current = dynamodb.describe_time_to_live(TableName=name)["TimeToLiveDescription"]
                if current.get("TimeToLiveStatus") not in {"ENABLED", "ENABLING"}:
                    dynamodb.update_time_to_live(
                        TableName=name, TimeToLiveSpecification={"AttributeName": attribute, "Enabled": True}
                    )
            except ClientError as error:
                if _error_code(error) != "UnknownOperationException":
                    raise
                log.warning("table %s: the engine has no TTL (dynalite); expired items stay", name)
        made[logical_id] = name
    return made


def _attribute_text(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def create_queues(template: Template, sqs: SQSClient) -> dict[str, QueueInfo]:
    """Each queue with its attributes, then the redrive policies (DLQs must exist first).

    Sets `template.refs` so `Ref` to a queue resolves to its URL, as CloudFormation does.
    """
    queues: dict[str, QueueInfo] = {}
    redrives: dict[str, dict[str, Any]] = {}
    for logical_id in active(template, "AWS::SQS::Queue"):
        props = template.properties(logical_id)
        name = template.physical_name(logical_id)
        attributes: dict[Any, str] = {
            key: _attribute_text(props[key]) for key in QUEUE_ATTRIBUTES if key in props
        }
        url = sqs.create_queue(QueueName=name, Attributes=attributes)["QueueUrl"]
        arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
        template.refs[logical_id] = url
        if redrive := props.get("RedrivePolicy"):
            redrives[logical_id] = redrive
        queues[logical_id] = QueueInfo(
            logical_id=logical_id,
            name=name,
            url=url,
            arn=arn,
            visibility_timeout=int(props.get("VisibilityTimeout", DEFAULT_VISIBILITY_TIMEOUT)),
        )
    by_arn = {info.arn: logical_id for logical_id, info in queues.items()}
    for logical_id, redrive in redrives.items():
        info = queues[logical_id]
        policy = {
            "deadLetterTargetArn": redrive["deadLetterTargetArn"],
            "maxReceiveCount": int(redrive["maxReceiveCount"]),
        }
        sqs.set_queue_attributes(QueueUrl=info.url, Attributes={"RedrivePolicy": json.dumps(policy)})
        queues[logical_id] = QueueInfo(
            logical_id=info.logical_id,
            name=info.name,
            url=info.url,
            arn=info.arn,
            visibility_timeout=info.visibility_timeout,
            max_receive_count=policy["maxReceiveCount"],
            dead_letter_queue=by_arn.get(str(policy["deadLetterTargetArn"])),
        )
    return queues


def create_buses(template: Template, events: EventBridgeClient) -> dict[str, str]:
    """Each event bus of the template; its ARN by logical id."""
    buses = {}
    for logical_id in active(template, "AWS::Events::EventBus"):
        name = template.physical_name(logical_id)
        try:
            arn = events.create_event_bus(Name=name)["EventBusArn"]
        except ClientError as error:
            if _error_code(error) != "ResourceAlreadyExistsException":
                raise
            arn = events.describe_event_bus(Name=name)["Arn"]
        buses[logical_id] = arn
    return buses


def create_archives(template: Template, events: EventBridgeClient) -> dict[str, str]:
    """Each archive with its source bus, event pattern and retention; its ARN by logical id."""
    archives = {}
    for logical_id in active(template, "AWS::Events::Archive"):
        props = template.properties(logical_id)
        arguments: dict[str, Any] = {
            "ArchiveName": props["ArchiveName"],
            "EventSourceArn": props["SourceArn"],
            "RetentionDays": int(props.get("RetentionDays", 0)),
        }
        if pattern := props.get("EventPattern"):
            arguments["EventPattern"] = json.dumps(pattern)
        if description := props.get("Description"):
            arguments["Description"] = description
        try:
            archives[logical_id] = events.create_archive(**arguments)["ArchiveArn"]
        except ClientError as error:
            if _error_code(error) != "ResourceAlreadyExistsException":
                raise
            archives[logical_id] = events.describe_archive(ArchiveName=arguments["ArchiveName"])["ArchiveArn"]
    return archives


def create_rules(template: Template, events: EventBridgeClient) -> dict[str, str]:
    """Each rule with its pattern and targets (retry policy and dead-letter config included)."""
    rules = {}
    for logical_id in active(template, "AWS::Events::Rule"):
        props = template.properties(logical_id)
        bus = str(props.get("EventBusName", "default"))
        arguments: dict[str, Any] = {
            "Name": props.get("Name", template.physical_name(logical_id)),
            "EventBusName": bus,
            "State": props.get("State", "ENABLED"),
        }
        if pattern := props.get("EventPattern"):
            arguments["EventPattern"] = json.dumps(pattern)
        if description := props.get("Description"):
            arguments["Description"] = description
        rules[logical_id] = events.put_rule(**arguments)["RuleArn"]
        if targets := props.get("Targets"):
            events.put_targets(Rule=arguments["Name"], EventBusName=bus, Targets=targets)
    return rules


# What CloudFormation's GenerateSecretString takes that GetRandomPassword takes under the same name.
_PASSWORD_OPTIONS: Final = (
    "PasswordLength",
    "ExcludeCharacters",
    "ExcludeNumbers",
    "ExcludePunctuation",
    "ExcludeUppercase",
    "ExcludeLowercase",
    "IncludeSpace",
    "RequireEachIncludedType",
)


def kept_secret_values(template: Template, data_dir: Path) -> dict[str, str]:
    """The secrets whose value the local stack keeps in `data_dir`, by logical id.

    The webhook master secret: `data_dir/webhook-master-secret`, made on first start (64
    alphanumeric characters, as the template's GenerateSecretString asks), readable by the user only.
    """
    if WEBHOOK_MASTER_SECRET_ID not in active(template, "AWS::SecretsManager::Secret"):
        return {}
    path = data_dir / WEBHOOK_MASTER_SECRET_FILE
    if not path.exists():
        value = "".join(secret_tokens.choice(_ALPHANUMERIC) for _ in range(64))
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(value + "\n")
    return {WEBHOOK_MASTER_SECRET_ID: path.read_text().strip()}


_ALPHANUMERIC: Final = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"


def create_secrets(
    template: Template, secrets: Any, values: Mapping[str, str] | None = None
) -> dict[str, str]:
    """Each Secrets Manager secret, its value made as GenerateSecretString says; its ARN by logical id.

    Sets `template.refs` so `Ref` to a secret resolves to its ARN, as CloudFormation does (a
    function's environment gets the ARN and reads the value from the same Secrets Manager).
    `values` gives the value of a secret by logical id instead (one the stack keeps); a secret
    already there is kept with its value, or set to the given one.
    """
    values = values or {}
    made: dict[str, str] = {}
    for logical_id in active(template, "AWS::SecretsManager::Secret"):
        props = template.properties(logical_id)
        name = str(props.get("Name", template.physical_name(logical_id)))
        try:
            arn = str(secrets.describe_secret(SecretId=name)["ARN"])
            if logical_id in values:
                secrets.put_secret_value(SecretId=arn, SecretString=values[logical_id])
        except ClientError as error:
            if _error_code(error) != "ResourceNotFoundException":
                raise
            if logical_id in values:
                value = values[logical_id]
            elif "SecretString" in props:
                value = str(props["SecretString"])
            else:
                options = props.get("GenerateSecretString", {})
                arguments = {key: options[key] for key in _PASSWORD_OPTIONS if key in options}
                value = str(secrets.get_random_password(**arguments)["RandomPassword"])
            arn = str(secrets.create_secret(Name=name, SecretString=value)["ARN"])
        template.refs[logical_id] = arn
        made[logical_id] = arn
    return made


def provision(
    template: Template,
    dynamodb: DynamoDBClient,
    sqs: SQSClient,
    events: EventBridgeClient,
    secrets: Any = None,
    *,
    secret_values: Mapping[str, str] | None = None,
) -> StackResources:
    """Every resource the local stack needs, made from the template.

    `secrets` is a Secrets Manager client; by default one from botocore's defaults (the local
    stack's `AWS_ENDPOINT_URL`, the moto server its functions read secrets from).
    `secret_values` are the values of the secrets the stack keeps (`kept_secret_values`).
    """
    resources = StackResources()
    if secrets is None and active(template, "AWS::SecretsManager::Secret"):
        import boto3

        secrets = boto3.client("secretsmanager", region_name=events.meta.region_name)
    if secrets is not None:
        resources.secrets = create_secrets(template, secrets, secret_values)
    resources.tables = create_tables(template, dynamodb)
    resources.queues = create_queues(template, sqs)
    resources.buses = create_buses(template, events)
    resources.archives = create_archives(template, events)
    resources.rules = create_rules(template, events)
    return resources
