"""cfn-lint (pinned below 1.54, which still applies the SAM transform: DESIGN §8) on template.yaml.

The negative tests prove the check bites: broken SQS `Events` must fail it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

TEMPLATE = Path(__file__).resolve().parents[2] / "template.yaml"


def lint(text: str, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """cfn-lint's findings on `text` as (rule id, message), errors and warnings alike."""
    from cfnlint.api import ManualArgs
    from cfnlint.api import lint as cfn_lint

    # cfn-lint's SAM transform sets AWS_DEFAULT_REGION for the translator: keep it to this test.
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    return [(m.rule.id, m.message) for m in cfn_lint(text, config=ManualArgs(regions=["us-east-1"]))]


def test_cfn_lint_version_still_applies_the_sam_transform():
    from cfnlint.version import __version__

    major, minor = (int(part) for part in __version__.split(".")[:2])
    assert (1, 52) <= (major, minor) < (1, 54), __version__


def test_template_passes_cfn_lint(monkeypatch):
    assert lint(TEMPLATE.read_text(), monkeypatch) == []


def test_cfn_lint_fails_broken_sqs_events(monkeypatch):
    # One copy, two breakages (each one is enough to fail): a lint costs seconds on this machine.
    text = TEMPLATE.read_text()
    breakages = {
        "E3034": (
            "BatchSize: 10\n            MaximumBatchingWindowInSeconds: 0\n",
            "BatchSize: 100000\n            MaximumBatchingWindowInSeconds: 0\n",
        ),
        "E1010": ("Queue: !GetAtt ProjectorQueue.Arn", "Queue: !GetAtt ProjectorQueu.Arn"),
    }
    for original, broken in breakages.values():
        assert text.count(original) == 1, "the template changed: update the broken copy"
        text = text.replace(original, broken)
    findings = lint(text, monkeypatch)
    assert set(breakages) <= {rule_id for rule_id, _ in findings}, findings
    assert all(rule_id.startswith("E") for rule_id, _ in findings), findings
