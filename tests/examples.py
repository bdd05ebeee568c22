"""How many examples a hypothesis property runs.

In full under `make test`; a tenth (at least 10) in the edit-test loop, `make test-unit`, which
sets `JOBSTATUS_QUICK_PROPERTIES=1`. The properties are the same; only the search is shorter.
"""

from __future__ import annotations

import os
from typing import Final

QUICK: Final = os.environ.get("JOBSTATUS_QUICK_PROPERTIES", "") not in ("", "0")


def examples(full: int) -> int:
    """`full`, or a tenth of it (at least 10) when the quick loop asked for it."""
    return max(10, full // 10) if QUICK else full
