"""In-memory stand-ins with a fake clock: an SQS queue with visibility, receive counts and a DLQ."""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from webhooks.model import Delivery


@dataclass
class Clock:
    """Seconds since the epoch, moved only by the test."""

    now: float = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Message:
    message_id: str
    body: str
    visible_at: float
    receives: int = 0
    receipt: str = ""


@dataclass
class FakeQueue:
    """SQS semantics the webhook functions rely on: send, receive (hides for the queue's visibility
    timeout, counts receives, redrives past maxReceiveCount), change visibility, delete, a DLQ."""

    clock: Clock
    visibility_timeout: int = 180
    max_receive_count: int = 30
    messages: dict[str, Message] = field(default_factory=dict)
    dlq: list[tuple[str, str]] = field(default_factory=list)  # (body, reason)
    refuse_sends: int = 0  # the next N sends fail, as an SQS outage would
    _receipts: itertools.count[int] = field(default_factory=itertools.count)

    # --- the DeliveryQueue interface
    def send(self, deliveries: Sequence[Delivery]) -> list[int]:
        failed = []
        for index, delivery in enumerate(deliveries):
            if self.refuse_sends > 0:
                self.refuse_sends -= 1
                failed.append(index)
                continue
            message_id = str(uuid.uuid4())
            self.messages[message_id] = Message(message_id, delivery.to_message(), self.clock())
        return failed

    def hide(self, receipt_handle: str, seconds: int) -> None:
        assert 0 <= seconds <= 43200, seconds  # SQS refuses more than 12 h
        for message in self.messages.values():
            if message.receipt == receipt_handle:
                message.visible_at = self.clock() + seconds
                return
        raise AssertionError("unknown receipt handle")

    def dead_letter(self, body: str, reason: str) -> None:
        self.dlq.append((body, reason))

    # --- what Lambda's event source mapping does
    def next_visible_at(self) -> float | None:
        return min((m.visible_at for m in self.messages.values()), default=None)

    def receive(self, limit: int = 10) -> list[dict[str, Any]]:
        now = self.clock()
        records: list[dict[str, Any]] = []
        for message in sorted(self.messages.values(), key=lambda m: m.visible_at):
            if len(records) == limit or message.visible_at > now:
                break
            message.receives += 1
            if message.receives > self.max_receive_count:
                del self.messages[message.message_id]
                self.dlq.append((message.body, "redrive: maxReceiveCount"))
                continue
            message.receipt = f"r{next(self._receipts)}"
            message.visible_at = now + self.visibility_timeout
            records.append(
                {
                    "messageId": message.message_id,
                    "receiptHandle": message.receipt,
                    "body": message.body,
                    "attributes": {"ApproximateReceiveCount": str(message.receives)},
                }
            )
        return records

    def settle(self, records: list[dict[str, Any]], answer: dict[str, Any]) -> None:
        """Delete every record the handler did not report as failed (ReportBatchItemFailures)."""
        kept = {failure["itemIdentifier"] for failure in answer["batchItemFailures"]}
        for record in records:
            if record["messageId"] not in kept:
                del self.messages[record["messageId"]]
