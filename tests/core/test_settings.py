"""Settings read from environment variables: `Settings.from_env` and the producers' model."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from jobstatus.settings import Settings
from producers.settings import ProducerSettings

pytestmark = pytest.mark.unit


def test_no_variables_give_the_documented_defaults() -> None:
    settings = Settings.from_env({})
    assert (settings.stage, settings.jobs_table_name, settings.event_bus_name, settings.job_ttl_days) == (
        "dev",
        "Jobs-dev",
        "jobs-dev",
        30,
    )


def test_names_are_read_in_any_case_and_other_variables_are_ignored() -> None:
    env = {"STAGE": "prod", "jobs_table_name": "Jobs-prod", "Job_Ttl_Days": " 7 ", "PATH": "/bin"}
    settings = Settings.from_env(env)
    assert (settings.stage, settings.jobs_table_name, settings.job_ttl_days) == ("prod", "Jobs-prod", 7)


def test_comma_lists_are_split_blanks_dropped_order_kept() -> None:
    settings = ProducerSettings.from_env(
        {
            "ALLOWED_ORIGINS": " https://b.example ,,https://a.example ",
            "MODEL_ALLOW_LIST": "fal-ai/x,fal-ai/y,",
        }
    )
    assert settings.allowed_origins == ("https://b.example", "https://a.example")
    assert settings.model_allow_list == ("fal-ai/x", "fal-ai/y")


def test_without_an_argument_the_process_environment_is_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVENT_BUS_NAME", "jobs-from-env")
    monkeypatch.setenv("FAL_POLL_SECONDS", "0.25")
    settings = ProducerSettings.from_env()
    assert (settings.event_bus_name, settings.fal_poll_seconds) == ("jobs-from-env", 0.25)


def test_a_secret_is_kept_out_of_the_settings_text() -> None:
    settings = ProducerSettings.from_env({"FAL_KEY": "key-123"})
    assert settings.fal_key is not None and settings.fal_key.get_secret_value() == "key-123"
    assert "key-123" not in repr(settings)


@pytest.mark.parametrize(
    ("env", "named"),
    [
        ({"JOB_TTL_DAYS": "0"}, "job_ttl_days"),
        ({"JOB_TTL_DAYS": "thirty"}, "job_ttl_days"),
        ({"STATUS_FLUSH_SECONDS": "6"}, "status_flush_seconds"),
        ({"FAL_MAX_ATTEMPTS": "11"}, "fal_max_attempts"),
        ({"WEBHOOKS_ALLOW_LOCAL": "maybe"}, "webhooks_allow_local"),
    ],
)
def test_a_wrong_value_is_refused_naming_its_setting(env: dict[str, str], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        ProducerSettings.from_env(env)


def test_local_webhooks_are_refused_outside_the_local_stages() -> None:
    with pytest.raises(ValidationError, match="WEBHOOKS_ALLOW_LOCAL is only allowed in stages"):
        ProducerSettings.from_env({"WEBHOOKS_ALLOW_LOCAL": "true", "STAGE": "prod"})
    assert ProducerSettings.from_env({"WEBHOOKS_ALLOW_LOCAL": "true", "STAGE": "local"}).webhooks_allow_local
