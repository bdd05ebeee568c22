"""A DynamoDB Streams event source for the local stack: feeds a function as Lambda's mapping would.

For one table stream (moto's: DescribeStream, GetShardIterator, GetRecords): each shard is read
in order, records are kept to those the mapping's `FilterCriteria` match, and handed over in
batches of at most `BatchSize` in Lambda's event shape. A batch's `batchItemFailures` make it
retried from its first failed record (the records before it are done); a function error bisects
the batch (`BisectBatchOnFunctionError`); after `MaximumRetryAttempts` retries the records left go
to `on_failure` (the on-failure destination) and the shard moves on. One shard is never read
past a batch that is still being retried, so each shard stays ordered.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

log = logging.getLogger("jobstatus.local.streams")

DEFAULT_BATCH_SIZE: Final = 100
DEFAULT_RETRIES: Final = 5  # bounded here; Lambda's default (-1) retries until the record expires
GET_RECORDS_LIMIT: Final = 1000
SHARD_REFRESH_SECONDS: Final = 5.0  # how often new shards are looked for (DescribeStream)

Record = dict[str, Any]
Invoke = Callable[[dict[str, Any]], Any]


def matches(pattern: Mapping[str, Any], value: Any) -> bool:
    """Whether `value` matches an event filter pattern (the subset the template uses).

    A key's pattern is either a nested pattern (an object) or a list of alternatives: literal
    values, `{"exists": true|false}`, `{"prefix": "..."}`.
    """
    if not isinstance(value, Mapping):
        return False
    for key, wanted in pattern.items():
        if isinstance(wanted, Mapping):
            if not matches(wanted, value.get(key)):
                return False
            continue
        if not any(_matches_one(alternative, key, value) for alternative in wanted):
            return False
    return True


def _matches_one(alternative: Any, key: str, value: Mapping[str, Any]) -> bool:
    if isinstance(alternative, Mapping):
        if "exists" in alternative:
            return (key in value) is bool(alternative["exists"])
        if "prefix" in alternative:
            found = value.get(key)
            return isinstance(found, str) and found.startswith(str(alternative["prefix"]))
        raise ValueError(f"filter operator not supported locally: {alternative}")
    return key in value and value[key] == alternative


def filters_of(criteria: Mapping[str, Any] | None) -> list[dict[str, Any]]:
    """The patterns of a mapping's `FilterCriteria` (each a JSON string in the template)."""
    patterns = []
    for entry in (criteria or {}).get("Filters", []):
        pattern = entry.get("Pattern")
        patterns.append(json.loads(pattern) if isinstance(pattern, str) else dict(pattern))
    return patterns


def lambda_record(record: Mapping[str, Any], stream_arn: str, region: str) -> Record:
    """A GetRecords record in the shape Lambda hands it to a function (times as epoch seconds)."""
    dynamodb = dict(record.get("dynamodb", {}))
    created = dynamodb.get("ApproximateCreationDateTime")
    if isinstance(created, datetime):
        dynamodb["ApproximateCreationDateTime"] = created.timestamp()
    return {
        "eventID": record.get("eventID"),
        "eventName": record.get("eventName"),
        "eventVersion": record.get("eventVersion", "1.1"),
        "eventSource": "aws:dynamodb",
        "awsRegion": record.get("awsRegion", region),
        "dynamodb": dynamodb,
        "eventSourceARN": stream_arn,
    }


@dataclass
class StreamSource:
    """One stream mapping: the stream, the function and the mapping's settings."""

    stream_arn: str
    invoke: Invoke
    batch_size: int = DEFAULT_BATCH_SIZE
    max_retries: int = DEFAULT_RETRIES
    bisect_on_error: bool = True
    report_batch_item_failures: bool = True
    patterns: list[dict[str, Any]] = field(default_factory=list)
    starting_position: str = "LATEST"
    on_failure: Callable[[list[Record]], None] | None = None


@dataclass
class SourceStats:
    """What a source did: invocations, records handed over, and records given up on."""

    invocations: int = 0
    delivered: int = 0
    filtered: int = 0
    given_up: int = 0


class StreamPoller:
    """Reads a table stream and drives one function with it, shard by shard, in order."""

    def __init__(self, streams: Any, source: StreamSource, region: str = "us-east-1") -> None:
        self._streams = streams
        self._source = source
        self._region = region
        self._iterators: dict[str, str | None] = {}
        self._shards_seen_at: float | None = None
        self.stats = SourceStats()

    def _shards(self) -> list[str]:
        description = self._streams.describe_stream(StreamArn=self._source.stream_arn)["StreamDescription"]
        return [shard["ShardId"] for shard in description.get("Shards", [])]

    def start(self) -> None:
        """Place an iterator on every shard at the starting position (call before writes to see them)."""
        self._shards_seen_at = time.monotonic()
        for shard in self._shards():
            if shard not in self._iterators:
                self._iterators[shard] = self._streams.get_shard_iterator(
                    StreamArn=self._source.stream_arn,
                    ShardId=shard,
                    ShardIteratorType=self._source.starting_position,
                )["ShardIterator"]

    def poll_once(self) -> int:
        """Read every shard once and hand over what it holds; how many records were read."""
        # Not a DescribeStream every poll: the engine (moto) serves one request at a time.
        if self._shards_seen_at is None or time.monotonic() - self._shards_seen_at >= SHARD_REFRESH_SECONDS:
            self.start()
        read = 0
        for shard, iterator in list(self._iterators.items()):
            if iterator is None:
                continue
            page = self._streams.get_records(ShardIterator=iterator, Limit=GET_RECORDS_LIMIT)
            self._iterators[shard] = page.get("NextShardIterator")
            records = [
                lambda_record(r, self._source.stream_arn, self._region) for r in page.get("Records", [])
            ]
            read += len(records)
            kept = [r for r in records if self._wanted(r)]
            self.stats.filtered += len(records) - len(kept)
            for start in range(0, len(kept), self._source.batch_size):
                self._deliver(kept[start : start + self._source.batch_size], self._source.max_retries)
        return read

    def _wanted(self, record: Record) -> bool:
        patterns = self._source.patterns
        return not patterns or any(matches(pattern, record) for pattern in patterns)

    def _deliver(self, batch: list[Record], retries: int) -> int:
        """Hand a batch over until it is done or its retries are spent; the retries left."""
        while batch:
            self.stats.invocations += 1
            try:
                answer = self._source.invoke({"Records": batch})
            except Exception:
                log.warning("stream function failed on a batch of %d records", len(batch), exc_info=True)
                if retries <= 0:
                    self._give_up(batch)
                    return 0
                retries -= 1
                if self._source.bisect_on_error and len(batch) > 1:
                    half = len(batch) // 2
                    retries = self._deliver(batch[:half], retries)
                    return self._deliver(batch[half:], retries)
                continue
            first = self._first_failed(batch, answer)
            self.stats.delivered += first
            if first == len(batch):
                return retries
            if retries <= 0:
                self._give_up(batch[first:])
                return 0
            retries -= 1
            batch = batch[first:]
        return retries

    def _first_failed(self, batch: Sequence[Record], answer: Any) -> int:
        """The index of the first failed record (`len(batch)`: none failed), per Lambda's rules."""
        if not self._source.report_batch_item_failures or not isinstance(answer, Mapping):
            return len(batch)
        failures = answer.get("batchItemFailures") or []
        failed = {str(f.get("itemIdentifier")) for f in failures if isinstance(f, Mapping)}
        for index, record in enumerate(batch):
            if str(record["dynamodb"].get("SequenceNumber")) in failed:
                return index
        if failed:  # an identifier that names no record of the batch: Lambda retries the whole batch
            return 0
        return len(batch)

    def _give_up(self, records: list[Record]) -> None:
        self.stats.given_up += len(records)
        log.error("stream records given up on after retries: %d", len(records))
        if self._source.on_failure is not None:
            self._source.on_failure(records)

    def run(self, stop: threading.Event, interval: float = 0.05) -> None:
        """Poll until `stop` is set (a thread's target); errors are logged and polling goes on."""
        while not stop.is_set():
            try:
                read = self.poll_once()
            except Exception:
                log.exception("stream poll failed")
                read = 0
            if not read:
                stop.wait(interval)


@dataclass(frozen=True)
class StreamMapping:
    """A function's DynamoDB stream event source, as the template declares it."""

    function: str
    table: str  # the table's logical id
    batch_size: int
    max_retries: int
    bisect_on_error: bool
    report_batch_item_failures: bool
    patterns: list[dict[str, Any]]
    starting_position: str

    def source(
        self, stream_arn: str, invoke: Invoke, on_failure: Callable[[list[Record]], None] | None = None
    ) -> StreamSource:
        """The poller's source for this mapping on a live stream."""
        return StreamSource(
            stream_arn=stream_arn,
            invoke=invoke,
            batch_size=self.batch_size,
            max_retries=self.max_retries,
            bisect_on_error=self.bisect_on_error,
            report_batch_item_failures=self.report_batch_item_failures,
            patterns=self.patterns,
            starting_position=self.starting_position,
            on_failure=on_failure,
        )


def stream_mappings(template: Any) -> list[StreamMapping]:
    """Every `Type: DynamoDB` event of the template's functions (`Stream: !GetAtt Table.StreamArn`)."""
    found = []
    for function, resource in template.of_type("AWS::Serverless::Function").items():
        for event in resource.get("Properties", {}).get("Events", {}).values():
            if event.get("Type") != "DynamoDB":
                continue
            spec = event.get("Properties", {})
            target = spec.get("Stream", {}).get("Fn::GetAtt")
            if target is None:
                continue
            table = target.split(".", 1)[0] if isinstance(target, str) else target[0]
            resolved = template.resolve({k: v for k, v in spec.items() if k != "Stream"})
            retries = int(resolved.get("MaximumRetryAttempts", DEFAULT_RETRIES))
            found.append(
                StreamMapping(
                    function=function,
                    table=table,
                    batch_size=int(resolved.get("BatchSize", DEFAULT_BATCH_SIZE)),
                    max_retries=DEFAULT_RETRIES if retries < 0 else retries,
                    bisect_on_error=bool(resolved.get("BisectBatchOnFunctionError", False)),
                    report_batch_item_failures="ReportBatchItemFailures"
                    in resolved.get("FunctionResponseTypes", []),
                    patterns=filters_of(resolved.get("FilterCriteria")),
                    starting_position=str(resolved.get("StartingPosition", "LATEST")),
                )
            )
    return found
