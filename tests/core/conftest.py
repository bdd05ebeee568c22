"""Fixtures of the core tests."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from moto import mock_aws

from ops.template import Template
from tests.conftest import create_jobs_table


@pytest.fixture
def client(template: Template) -> Iterator[Any]:
    """DynamoDB in moto, in-process, holding the template's Jobs table as `Jobs-unit`."""
    with mock_aws():
        ddb = boto3.client("dynamodb", region_name="us-east-1")
        create_jobs_table(ddb, template, "Jobs-unit")
        yield ddb
