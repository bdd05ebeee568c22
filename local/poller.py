"""An SQS event source mapping, locally: a thread that feeds a queue to a function as Lambda does.

Records not in `batchItemFailures` are deleted; the rest come back after the visibility timeout
(then the DLQ). `stop()` lets batches in hand finish; `kill()` abandons them, as a dying container.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

if TYPE_CHECKING:
    from mypy_boto3_sqs import SQSClient
    from mypy_boto3_sqs.type_defs import MessageTypeDef

log = logging.getLogger(__name__)

SQS_MAX_RECEIVE: Final = 10  # ReceiveMessage returns at most 10 messages per call
DELETED_IDS_KEPT: Final = 10_000  # how many deleted message ids a poller remembers (for `kill`)
LONG_POLL_SECONDS: Final = 1  # short, so a stop request is seen within about a second


@dataclass(frozen=True)
class BatchOutcome:
    """What one invocation did: records delivered, deleted and left for redelivery."""

    delivered: int
    deleted: int
    failed: int


@dataclass(frozen=True)
class KillOutcome:
    """What a kill abandoned: the batches (and their messages) that were in hand at that moment."""

    batches: int
    messages: int


class _Hand:
    """The messages one thread has received and not yet deleted (or given back)."""

    def __init__(self) -> None:
        self.messages: list[MessageTypeDef] = []


class _Run:
    """One `start()`: its stop and kill flags and the batches its threads hold."""

    def __init__(self) -> None:
        self.stop = threading.Event()
        self.killed = False
        self.hands: set[_Hand] = set()


def sqs_record(message: MessageTypeDef, queue_arn: str, region: str) -> dict[str, Any]:
    """One SQS message as the record Lambda puts in its event."""
    body = message.get("Body", "")
    attributes = message.get("Attributes", {})
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": body,
        "attributes": {
            "ApproximateReceiveCount": attributes.get("ApproximateReceiveCount", "1"),
            "SentTimestamp": attributes.get("SentTimestamp", str(int(time.time() * 1000))),
            "SenderId": attributes.get("SenderId", "AIDAIENQZJOLO23YVJ4VO"),
            "ApproximateFirstReceiveTimestamp": attributes.get(
                "ApproximateFirstReceiveTimestamp", str(int(time.time() * 1000))
            ),
        },
        "messageAttributes": message.get("MessageAttributes", {}),
        "md5OfBody": message.get("MD5OfBody")
        or hashlib.md5(body.encode(), usedforsecurity=False).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


def failed_ids(response: Any, delivered: list[str]) -> set[str] | None:
    """The message ids a partial-batch response reports failed; None means the whole batch failed.

    As Lambda does: a missing or empty list is success; an id that is not in the batch, or a
    malformed answer, fails the whole batch.
    """
    if not isinstance(response, dict) or "batchItemFailures" not in response:
        return set()
    failures = response["batchItemFailures"] or []
    if not isinstance(failures, list):
        return None
    ids: set[str] = set()
    for failure in failures:
        identifier = failure.get("itemIdentifier") if isinstance(failure, dict) else None
        if not identifier or identifier not in delivered:
            return None
        ids.add(str(identifier))
    return ids


class SqsPoller:
    """Feeds one queue to one function on a background thread, until stopped."""

    def __init__(
        self,
        *,
        name: str,
        sqs: SQSClient,
        queue_url: str,
        queue_arn: str,
        invoke: Callable[[dict[str, Any]], Any],
        batch_size: int,
        batching_window: float,
        report_batch_item_failures: bool,
        region: str = "us-east-1",
        concurrency: int = 1,
    ):
        self.name = name
        self._sqs = sqs
        self._queue_url = queue_url
        self._queue_arn = queue_arn
        self._invoke = invoke
        self._batch_size = max(1, batch_size)
        self._window = max(0.0, batching_window)
        self._partial = report_batch_item_failures
        self._region = region
        self._concurrency = max(1, concurrency)
        self._run_state = _Run()
        self._threads: list[threading.Thread] = []
        # Guards the counters and each run's hands: a batch is either committed (its deletes
        # begin) or abandoned by a kill, never both.
        self._count_lock = threading.Lock()
        self.invocations = 0
        self.errors = 0
        self.kills = 0
        self.abandoned_batches = 0
        self.abandoned_messages = 0
        # The ids of the messages this poller deleted last (a kill leaves out those still in a hand).
        self._deleted: deque[str] = deque(maxlen=DELETED_IDS_KEPT)

    @property
    def in_hand(self) -> int:
        """Messages this poller has received and neither deleted nor given back yet."""
        with self._count_lock:
            return sum(len(hand.messages) for hand in self._run_state.hands)

    @property
    def running(self) -> bool:
        """Whether any polling thread is alive."""
        return any(thread.is_alive() for thread in self._threads)

    def start(self) -> None:
        """Start polling (again, after a stop), with `concurrency` threads as Lambda scales out."""
        if self.running:
            return
        run = self._run_state = _Run()
        self._threads = [
            threading.Thread(target=self._run, args=(run,), name=f"poller-{self.name}-{i}", daemon=True)
            for i in range(self._concurrency)
        ]
        for thread in self._threads:
            thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Stop polling: batches in hand are finished first, as when a mapping is disabled."""
        self._run_state.stop.set()
        for thread in self._threads:
            thread.join(timeout)
        self._threads = []

    def kill(self) -> KillOutcome:
        """Stop polling abruptly: every batch in hand is abandoned, its messages left in flight.

        Nothing is joined: a thread inside an invocation lets it end in the background, throws
        its result away and deletes nothing, so SQS redelivers those messages after the queue's
        visibility timeout, as when a Lambda container dies mid-batch.
        """
        with self._count_lock:
            run, self._run_state = self._run_state, _Run()
            run.killed = True
            run.stop.set()
            held = [hand.messages for hand in run.hands if hand.messages]
            self.kills += 1
            # Distinct messages left in flight: one whose visibility ran out mid-batch may be in two
            # hands at once, and the other may already have been committed and deleted.
            deleted = set(self._deleted)
        self._threads = []
        distinct = {message.get("MessageId") for messages in held for message in messages} - deleted
        outcome = KillOutcome(len(held), len(distinct))
        log.warning(
            "%s KILLED: %d batches (%d messages) in hand abandoned, not deleted; "
            "they come back after the queue's visibility timeout",
            self.name,
            outcome.batches,
            outcome.messages,
        )
        return outcome

    def _receive(self, count: int, wait: int) -> list[MessageTypeDef]:
        answer = self._sqs.receive_message(
            QueueUrl=self._queue_url,
            MaxNumberOfMessages=min(SQS_MAX_RECEIVE, count),
            WaitTimeSeconds=wait,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
        )
        return list(answer.get("Messages", []))

    def gather(self, hand: _Hand | None = None, run: _Run | None = None) -> list[MessageTypeDef]:
        """One batch: up to `batch_size` messages, waiting at most the window after the first.

        The messages are kept in `hand` as they arrive, so a kill meanwhile sees them in hand.
        """
        run = run or self._run_state
        messages = hand.messages if hand is not None else []
        messages.extend(self._receive(self._batch_size, LONG_POLL_SECONDS))
        if not messages:
            return []
        deadline = time.monotonic() + self._window
        while len(messages) < self._batch_size and not run.stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            more = self._receive(self._batch_size - len(messages), min(LONG_POLL_SECONDS, int(remaining)))
            if not more and remaining < 1:
                # Long polls are whole seconds; sleep out the last fraction of the window.
                time.sleep(min(remaining, 0.05))
            messages.extend(more)
        return messages

    def deliver(
        self, messages: list[MessageTypeDef], hand: _Hand | None = None, run: _Run | None = None
    ) -> BatchOutcome:
        """Invoke the function with one batch, then delete what succeeded (unless killed meanwhile)."""
        run = run or self._run_state
        records = [sqs_record(m, self._queue_arn, self._region) for m in messages]
        ids = [r["messageId"] for r in records]
        with self._count_lock:
            self.invocations += 1
        try:
            response = self._invoke({"Records": records})
        except Exception:
            with self._count_lock:
                self.errors += 1
            if not self._commit(run, hand, len(records)):
                return BatchOutcome(len(records), 0, len(records))
            log.exception(
                "%s failed a batch of %d; every record comes back after its visibility timeout",
                self.name,
                len(records),
            )
            return BatchOutcome(len(records), 0, len(records))
        failed = failed_ids(response, ids) if self._partial else set()
        if failed is None:
            self._commit(run, hand, len(records))
            log.warning("%s answered an invalid batchItemFailures; the whole batch is retried", self.name)
            return BatchOutcome(len(records), 0, len(records))
        if not self._commit(run, hand, len(records)):
            return BatchOutcome(len(records), 0, len(records))
        done = [r for r in records if r["messageId"] not in failed]
        with self._count_lock:
            self._deleted.extend(r["messageId"] for r in done)
        for start in range(0, len(done), SQS_MAX_RECEIVE):
            chunk = done[start : start + SQS_MAX_RECEIVE]
            self._sqs.delete_message_batch(
                QueueUrl=self._queue_url,
                Entries=[{"Id": str(i), "ReceiptHandle": r["receiptHandle"]} for i, r in enumerate(chunk)],
            )
        if failed:
            log.info(
                "%s: %d of %d records in batchItemFailures are left in the queue (they come back after "
                "the visibility timeout unless the function deletes them itself)",
                self.name,
                len(failed),
                len(records),
            )
        return BatchOutcome(len(records), len(done), len(failed))

    def _commit(self, run: _Run, hand: _Hand | None, count: int, invoked: bool = True) -> bool:
        """Whether the batch of `count` messages may be deleted: False when a kill abandoned it."""
        with self._count_lock:
            if hand is not None:
                run.hands.discard(hand)
            if not run.killed:
                return True
            self.abandoned_batches += 1
            self.abandoned_messages += count
        log.warning(
            "%s was killed %s: its %d messages are not deleted and come back after the visibility timeout",
            self.name,
            "mid-invocation (its result is discarded)"
            if invoked
            else "while gathering a batch (never invoked)",
            count,
        )
        return False

    def poll_once(self, run: _Run | None = None) -> BatchOutcome | None:
        """Gather and deliver one batch; None when the queue had nothing."""
        run = run or self._run_state
        hand = _Hand()
        with self._count_lock:
            run.hands.add(hand)
        try:
            messages = self.gather(hand, run)
            if not messages:
                return None
            if run.killed:  # killed while the batching window was open: never invoked
                self._commit(run, hand, len(messages), invoked=False)
                return BatchOutcome(len(messages), 0, len(messages))
            return self.deliver(messages, hand, run)
        finally:
            with self._count_lock:
                run.hands.discard(hand)

    def _run(self, run: _Run) -> None:
        while not run.stop.is_set():
            try:
                self.poll_once(run)
            except Exception:
                # The local SQS going away at shutdown, or a transient error: wait and go on.
                if run.stop.is_set():
                    return
                log.exception("%s could not poll %s", self.name, self._queue_url)
                run.stop.wait(1.0)
