"""Jobs items and the DynamoDB stream records (NEW_IMAGE) a projector write makes of them."""

from __future__ import annotations

from typing import Any

from jobstatus.codec import to_item

STATUS_RANK = {"QUEUED": 1, "PROCESSING": 2, "COMPLETED": 3, "FAILED": 3}


def version(status: str, second: int, n: int) -> str:
    """A version as DESIGN §3 makes it (attempt 1), ordered by (rank, second)."""
    moment = f"2026-11-22T07:{second // 60:02d}:{second % 60:02d}.000Z"
    return f"0001#{STATUS_RANK[status]}#{moment}#00000000-0000-4000-8000-{n:012d}"


def job_item(
    job_id: str,
    status: str,
    second: int,
    n: int,
    *,
    webhook: str | None,
    events: list[str] | None = None,
    user_id: str = "user-1",
    progress: int | None = None,
) -> dict[str, Any]:
    """A Jobs item as the projector stores it, with `request` carrying the webhook."""
    item: dict[str, Any] = {
        "jobId": job_id,
        "userId": user_id,
        "createdAt": "2026-11-22T07:00:00.000Z",
        "updatedAt": f"2026-11-22T07:{second // 60:02d}:{second % 60:02d}.000Z",
        "status": status,
        "version": version(status, second, n),
        "attempt": 1,
        "ttl": 1_900_000_000,
        "request": {"model": "fal-ai/kling-video/v2/master/text-to-video", "input": {"prompt": "a cat"}},
    }
    if webhook is not None:
        item["request"]["webhook"] = webhook
    if events is not None:
        item["request"]["webhookEvents"] = events
    if progress is not None:
        item["progress"] = progress
    if status == "COMPLETED":
        item["outputUrl"] = f"https://cdn.example.com/{job_id}.mp4"
    if status == "FAILED":
        item["error"] = {"code": "FAL_ERROR", "message": "boom", "retryable": False}
    return item


def stream_record(item: dict[str, Any] | None, sequence: int, event_name: str = "MODIFY") -> dict[str, Any]:
    """One DynamoDB Streams record of a Jobs table write, as Lambda hands it over."""
    dynamodb: dict[str, Any] = {"SequenceNumber": f"{sequence:021d}", "StreamViewType": "NEW_IMAGE"}
    if item is not None:
        dynamodb["Keys"] = {"jobId": {"S": item["jobId"]}}
        dynamodb["NewImage"] = to_item(item)
    return {
        "eventID": f"e{sequence}",
        "eventName": event_name,
        "eventSource": "aws:dynamodb",
        "dynamodb": dynamodb,
    }
