"""The contract's constants have one home, `jobstatus.contract`, and every module reads them there."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from api.settings import ApiSettings
from jobstatus import contract
from jobstatus.events import RANK, TERMINAL, Status
from jobstatus.settings import Settings
from webhooks.settings import WebhookSettings

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[2]
LAMBDA_PACKAGES = ("jobstatus", "producers", "projector", "api", "notifier", "webhooks")
ORIGINS = ("https://admin.deepfoundai.com", "https://video.deepfoundai.com")


def test_the_contract_says_what_design_says():
    assert contract.JOB_ID_PATTERN == r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
    assert contract.STATUSES == ("QUEUED", "PROCESSING", "COMPLETED", "FAILED")
    assert contract.STATUS_RANK == {"QUEUED": 1, "PROCESSING": 2, "COMPLETED": 3, "FAILED": 3}
    assert {"COMPLETED", "FAILED"} == contract.TERMINAL_STATUSES
    assert contract.DEFAULT_JOB_TTL_DAYS == 30
    assert contract.DEFAULT_ALLOWED_ORIGINS == ORIGINS


def test_the_event_model_and_every_settings_model_carry_the_contract():
    assert [(s.value, RANK[s]) for s in Status] == [
        ("QUEUED", 1),
        ("PROCESSING", 2),
        ("COMPLETED", 3),
        ("FAILED", 3),
    ]
    assert {Status.COMPLETED, Status.FAILED} == TERMINAL
    shared, ours = Settings.from_env({}), ApiSettings.from_env({})
    assert (shared.stage, shared.jobs_table_name, shared.job_ttl_days, shared.allowed_origins) == (
        "dev",
        "Jobs-dev",
        30,
        ORIGINS,
    )
    assert (ours.stage, ours.jobs_table_name, ours.job_ttl_days, ours.allowed_origins) == (
        "dev",
        "Jobs-dev",
        30,
        ORIGINS,
    )
    assert WebhookSettings.from_env({}).allowed_origins == ORIGINS


def module_level_names(path: Path) -> set[str]:
    """The names a module binds at its top level by assignment."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(), str(path)).body:
        targets = (
            node.targets
            if isinstance(node, ast.Assign)
            else [node.target]
            if isinstance(node, ast.AnnAssign)
            else []
        )
        names.update(t.id for t in targets if isinstance(t, ast.Name))
    return names


CONTRACT_NAMES = frozenset(
    {
        "JOB_ID_PATTERN",
        "STATUSES",
        "STATUS_RANK",
        "TERMINAL_STATUSES",
        "DEFAULT_STAGE",
        "DEFAULT_JOBS_TABLE_NAME",
        "DEFAULT_EVENT_BUS_NAME",
        "DEFAULT_JOB_TTL_DAYS",
        "JOB_TTL_DAYS_RANGE",
        "DEFAULT_ALLOWED_ORIGINS",
    }
)


def test_the_walk_finds_plain_and_annotated_bindings(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text(
        'STATUSES: Final = ("QUEUED",)\nJOB_ID_PATTERN = "x"\ndef f():\n    DEFAULT_STAGE = 1\n'
    )
    assert module_level_names(sample) == {"STATUSES", "JOB_ID_PATTERN"}


@pytest.mark.parametrize("package", LAMBDA_PACKAGES)
def test_no_lambda_module_keeps_its_own_copy_of_the_contract(package: str):
    copies = {
        f"{path.relative_to(ROOT)}: {name}"
        for path in sorted((ROOT / package).rglob("*.py"))
        if path != ROOT / "jobstatus" / "contract.py"
        for name in module_level_names(path) & CONTRACT_NAMES
    }
    assert copies == set()
