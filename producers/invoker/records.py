"""InvokerQueue records of finished jobs: deleted once every status event of the job is settled.

`settle` is FalInvokerFn's post-response work: flush, then delete the finished records only if
no event was lost (neither on the bus nor in the outbox), so a redelivery can re-publish them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aws_lambda_powertools import Logger

from producers.publishing.delivery import FlushReport

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

logger = Logger(child=True)


@dataclass(frozen=True, slots=True)
class FinishedRecord:
    """An InvokerQueue record whose job is done, kept until its status events are settled."""

    message_id: str
    receipt_handle: str
    job_id: str


class FinishedRecords:
    """Deletes InvokerQueue records whose jobs are done (the SQS adapter of the post-response work)."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def delete(self, records: Sequence[FinishedRecord]) -> list[str]:
        """DeleteMessageBatch (10 a call); the messageIds not deleted, which SQS hands out again."""
        left: list[str] = []
        for start in range(0, len(records), 10):
            batch = records[start : start + 10]
            try:
                answer = self._client.delete_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(i), "ReceiptHandle": r.receipt_handle} for i, r in enumerate(batch)],
                )
            except Exception as error:  # post-response work has no caller to raise into
                logger.warning(
                    "finished records not deleted", extra={"error": f"{type(error).__name__}: {error}"}
                )
                left.extend(r.message_id for r in batch)
                continue
            left.extend(batch[int(f["Id"])].message_id for f in answer.get("Failed", []))
        return left


def settle(
    flush: Callable[[], FlushReport], finished: list[FinishedRecord], records: FinishedRecords | None
) -> None:
    """Flush the status events; then delete `finished` if every one is on the bus or in the outbox.

    When some event is in neither (the outbox refused it: its ERROR line is the record), the
    records stay in the queue, and their redelivery re-publishes the job's recorded events.
    """
    report = flush()
    if not finished or records is None:
        return
    jobs = ", ".join(r.job_id for r in finished)
    if report.lost:
        logger.error(
            "status events neither delivered nor in the outbox; the job records are kept for redelivery",
            extra={"jobId": jobs, "lost": report.lost, "messageIds": [r.message_id for r in finished]},
        )
        return
    left = records.delete(finished)
    if left:
        logger.warning(
            "finished records come back after their visibility timeout",
            extra={"jobId": jobs, "messageIds": left},
        )
