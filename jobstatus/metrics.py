"""`MetricsSink`: what a function's code needs of Powertools `Metrics`, so tests can pass a fake.

Pure: Powertools is imported for type checking only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from aws_lambda_powertools.metrics import MetricUnit


class MetricsSink(Protocol):
    """Takes data points; Powertools `Metrics` is one."""

    def add_metric(self, name: str, unit: MetricUnit, value: float) -> None:
        """Add one data point."""
        ...
