"""Fixtures of the template tests: template.yaml as data and its SAM translation (once per session)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.template import sam


@pytest.fixture(scope="session")
def raw() -> dict[str, Any]:
    """template.yaml as written (intrinsics in long form)."""
    return sam.read()


@pytest.fixture(scope="session")
def translated(raw: dict[str, Any]) -> dict[str, Any]:
    """The CloudFormation AWS's SAM translator makes of template.yaml; failing here fails the tests."""
    return sam.translate(raw)


@pytest.fixture(scope="session")
def resources(translated: dict[str, Any]) -> dict[str, Any]:
    """The translated template's resources, by logical id."""
    found: dict[str, Any] = translated["Resources"]
    return found
