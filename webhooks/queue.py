"""The SQS adapter of webhooks: send deliveries, hide one for a while, move one to the DLQ."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Final

from webhooks.model import Delivery
from webhooks.signing import webhook_id

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient

BATCH: Final = 10  # SendMessageBatch's limit


class DeliveryQueue:
    """The delivery queue and its DLQ, through one botocore SQS client."""

    def __init__(self, client: SQSClient, queue_url: str, dlq_url: str = "") -> None:
        self._client = client
        self._queue_url = queue_url
        self._dlq_url = dlq_url

    def send(self, deliveries: Sequence[Delivery]) -> list[int]:
        """Send every delivery; the indexes of those SQS did not take (to retry)."""
        failed: list[int] = []
        for start in range(0, len(deliveries), BATCH):
            chunk = deliveries[start : start + BATCH]
            answer = self._client.send_message_batch(
                QueueUrl=self._queue_url,
                Entries=[
                    {
                        "Id": str(start + offset),
                        "MessageBody": delivery.to_message(),
                        "MessageAttributes": {
                            "webhookId": {
                                "DataType": "String",
                                "StringValue": webhook_id(delivery.job_id, delivery.version),
                            }
                        },
                    }
                    for offset, delivery in enumerate(chunk)
                ],
            )
            failed.extend(int(entry["Id"]) for entry in answer.get("Failed", []))
        return failed

    def hide(self, receipt_handle: str, seconds: int) -> None:
        """Make a received message visible again only after `seconds` (at most 12 h)."""
        self._client.change_message_visibility(
            QueueUrl=self._queue_url, ReceiptHandle=receipt_handle, VisibilityTimeout=seconds
        )

    def dead_letter(self, body: str, reason: str) -> None:
        """Put a message the sender gives up on into the DLQ, with the reason as an attribute."""
        self._client.send_message(
            QueueUrl=self._dlq_url,
            MessageBody=body,
            MessageAttributes={"reason": {"DataType": "String", "StringValue": reason[:1000] or "-"}},
        )
