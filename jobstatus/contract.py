"""The contract's constants, in their one home: the jobId pattern, statuses, ranks, setting defaults.

Pure and import-free: GetJobFn reads it on its cold-start path, where pydantic must not load.
"""

from __future__ import annotations

from typing import Final

JOB_ID_PATTERN: Final = r"^[A-Za-z0-9][A-Za-z0-9_-]{0,127}$"
STATUSES: Final = ("QUEUED", "PROCESSING", "COMPLETED", "FAILED")
# The second part of a version (DESIGN §3): a later rank wins within one attempt.
STATUS_RANK: Final = {"QUEUED": 1, "PROCESSING": 2, "COMPLETED": 3, "FAILED": 3}
TERMINAL_STATUSES: Final = frozenset({"COMPLETED", "FAILED"})

# Setting defaults (DESIGN §5), the same for every function that reads them.
DEFAULT_STAGE: Final = "dev"
DEFAULT_JOBS_TABLE_NAME: Final = "Jobs-dev"
DEFAULT_EVENT_BUS_NAME: Final = "jobs-dev"
DEFAULT_JOB_TTL_DAYS: Final = 30
JOB_TTL_DAYS_RANGE: Final = (1, 3650)
DEFAULT_ALLOWED_ORIGINS: Final = ("https://admin.deepfoundai.com", "https://video.deepfoundai.com")
