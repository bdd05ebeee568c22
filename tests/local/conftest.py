"""Fixtures of the local stack's unit tests."""

from __future__ import annotations

import pytest

from ops.template import Template


@pytest.fixture(scope="session")
def local_template() -> Template:
    """template.yaml with the parameters the local stack uses (its own REST API and authorizer)."""
    return Template.read(
        Stage="test",
        CreateRestApi="true",
        CognitoUserPoolArn="arn:aws:cognito-idp:us-east-1:123456789012:userpool/us-east-1_local",
    )
