"""The durable fallback of the status publisher: the SQS outbox `RepublisherFn` drains."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final, Protocol

from producers.publishing.putevents import Entry, entry_json

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

SQS_MAX_BATCH: Final = 10
SQS_MAX_BATCH_BYTES: Final = 256 * 1024


class OutboxPort(Protocol):
    """The durable fallback for entries that could not be put on the bus."""

    def send(self, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
        """Store the entries; return those it could not store, each with the reason."""
        ...


class SqsOutbox:
    """The outbox on SQS: one message per entry, its body the entry as JSON."""

    def __init__(self, client: SQSClient, queue_url: str) -> None:
        self._client = client
        self._queue_url = queue_url

    def send(self, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
        """SendMessageBatch in batches of 10 (and 256 KiB); never raises."""
        if not self._queue_url:
            return [(entry, "no outbox queue configured (OUTBOX_QUEUE_URL)") for entry in entries]
        refused: list[tuple[Entry, str]] = []
        for batch in _sqs_batches(entries):
            try:
                response = self._client.send_message_batch(
                    QueueUrl=self._queue_url,
                    Entries=[{"Id": str(i), "MessageBody": body} for i, (_, body) in enumerate(batch)],
                )
            except Exception as error:  # the outbox is a fallback: its failure is reported, not raised
                refused.extend((entry, f"{type(error).__name__}: {error}") for entry, _ in batch)
                continue
            for failed in response.get("Failed", []):
                entry, _ = batch[int(failed["Id"])]
                refused.append((entry, f"{failed.get('Code')}: {failed.get('Message', '')}"))
        return refused


def _sqs_batches(entries: Sequence[Entry]) -> list[list[tuple[Entry, str]]]:
    batches: list[list[tuple[Entry, str]]] = []
    batch: list[tuple[Entry, str]] = []
    size = 0
    for entry in entries:
        body = entry_json(entry)
        this = len(body.encode())
        if batch and (len(batch) == SQS_MAX_BATCH or size + this > SQS_MAX_BATCH_BYTES):
            batches.append(batch)
            batch, size = [], 0
        batch.append((entry, body))
        size += this
    if batch:
        batches.append(batch)
    return batches
