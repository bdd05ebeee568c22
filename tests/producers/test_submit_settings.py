"""SubmitJobFn's settings read any environment as the producers' pydantic-settings model does."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from producers.settings import ProducerSettings
from producers.submit.settings import SubmitSettings
from tests.examples import examples

pytestmark = pytest.mark.unit

NAMES = [name.upper() for name in SubmitSettings.model_fields]
# What an environment variable may hold: good values, edge values and nonsense.
SAMPLES = (
    "",
    " ",
    "0",
    "1",
    "-1",
    "5",
    "5.0",
    "5.5",
    "10",
    "10.5",
    "0.05",
    "1e-3",
    "1e400",
    "inf",
    "nan",
    "+3",
    " 7 ",
    "3650",
    "3651",
    "1_000",
    "true",
    "True",
    "FALSE",
    "yes",
    "no",
    "on",
    "off",
    "t",
    "f",
    "y",
    "n",
    "2",
    "dev",
    "local",
    "test",
    "prod",
    "a,b",
    " a , ,b ,",
    '["a", "b"]',
    ",",
    "https://sqs.example/q",
    "fal-ai/x, fal-ai/y",
)
VALUES = st.one_of(
    st.sampled_from(SAMPLES),
    # Any text an environment variable can hold (no NUL, no lone surrogate).
    st.text(st.characters(exclude_categories=["Cs"], exclude_characters="\x00"), max_size=12),
)
ENVIRONMENTS = st.fixed_dictionaries({}, optional=dict.fromkeys(NAMES, VALUES))


def producer_settings(env: dict[str, str]) -> ProducerSettings:
    """`ProducerSettings()` as it reads the process's environment, with exactly `env` set."""
    with mock.patch.dict(os.environ, env, clear=True):
        return ProducerSettings()


def outcome(read: Callable[[dict[str, str]], Any], env: dict[str, str]) -> tuple[str, Any]:
    """What `read` makes of `env`: ("ok", the fields SubmitSettings has) or ("refused", the
    settings named as wrong)."""
    try:
        value = read(env)
    except ValidationError as error:
        return "refused", sorted({str(e["loc"][0]) if e["loc"] else "" for e in error.errors()})
    return "ok", {name: getattr(value, name) for name in SubmitSettings.model_fields}


@pytest.mark.parametrize("name", NAMES)
def test_each_setting_is_read_as_producer_settings_read_it(name: str) -> None:
    # Given each variable alone with each sample value; when both read it, then they agree
    for value in SAMPLES:
        env = {name: value}
        assert outcome(SubmitSettings.from_env, env) == outcome(producer_settings, env), env


@settings(max_examples=examples(400), deadline=None)
@given(ENVIRONMENTS)
def test_submit_settings_read_what_producer_settings_read(env: dict[str, str]) -> None:
    # Given any environment of SubmitJobFn's variables; when both read it, then they agree
    assert outcome(SubmitSettings.from_env, env) == outcome(producer_settings, env)


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, {"stage": "dev", "job_ttl_days": 30, "idempotency_table_name": "jobs-dev-idempotency"}),
        (
            {"model_allow_list": "fal-ai/a, fal-ai/b,", "Allowed_Origins": "https://a.example"},
            {"model_allow_list": ("fal-ai/a", "fal-ai/b"), "allowed_origins": ("https://a.example",)},
        ),
        ({"STAGE": "local", "WEBHOOKS_ALLOW_LOCAL": "true"}, {"webhooks_allow_local": True}),
        ({"SUBMIT_PUBLISH_SECONDS": "2.5", "UNRELATED": "x"}, {"submit_publish_seconds": 2.5}),
    ],
)
def test_submit_settings_from_the_environment(env: dict[str, str], expected: dict[str, Any]) -> None:
    read = SubmitSettings.from_env(env)
    assert {name: getattr(read, name) for name in expected} == expected


@pytest.mark.parametrize(
    ("env", "wrong"),
    [
        ({"JOB_TTL_DAYS": "0"}, "job_ttl_days"),
        ({"STATUS_FLUSH_SECONDS": "6"}, "status_flush_seconds"),
        ({"PUBLISH_READ_TIMEOUT_SECONDS": "abc"}, "publish_read_timeout_seconds"),
        ({"WEBHOOKS_ALLOW_LOCAL": "maybe"}, "webhooks_allow_local"),
    ],
)
def test_a_wrong_setting_is_refused_by_name(env: dict[str, str], wrong: str) -> None:
    with pytest.raises(ValidationError, match=wrong):
        SubmitSettings.from_env(env)
