"""The AWS clients of the producers, built with short timeouts and no botocore retries.

A dead endpoint must cost milliseconds, not botocore's default 60 s read timeout times its
retries: our own per-entry retry loop (`producers.publishing.putevents`) is the only retry, so a deadline
bounds it. Endpoints come only from botocore's standard `AWS_ENDPOINT_URL*` settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import boto3
from botocore.config import Config

if TYPE_CHECKING:
    from mypy_boto3_events import EventBridgeClient
    from mypy_boto3_sqs import SQSClient

    from producers.settings import ProducerSettings

# `total_max_attempts: 1` is the first attempt and no retry (`max_attempts` would add one retry).
FAST_FAIL: Final = Config(
    connect_timeout=0.2,
    read_timeout=0.5,
    retries={"total_max_attempts": 1, "mode": "standard"},
)


def fast_fail(settings: ProducerSettings) -> Config:
    """`FAST_FAIL` with the timeouts `settings` give (the local stack gives its engines more room)."""
    return FAST_FAIL.merge(
        Config(
            connect_timeout=settings.publish_connect_timeout_seconds,
            read_timeout=settings.publish_read_timeout_seconds,
        )
    )


def events_client(config: Config = FAST_FAIL) -> EventBridgeClient:
    """An EventBridge client that gives up fast."""
    return boto3.client("events", config=config)


def sqs_client(config: Config = FAST_FAIL) -> SQSClient:
    """An SQS client that gives up fast (the outbox is a fallback, not a second wait)."""
    return boto3.client("sqs", config=config)
