"""A finished Fal request's result as the fields of a COMPLETED event: the video URL and `result`.

Fal's result is outside data: it is made storable (DESIGN §2) before anything is read from it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from aws_lambda_powertools import Logger

from jobstatus.events import MAX_RESULT_BYTES
from jobstatus.storable import FIELD_LEVEL
from producers.invoker.fal import FalError
from producers.outside import changes_for_log, fit_for_event

logger = Logger(child=True)

FAL_RESULT_INVALID: Final = "FAL_RESULT_INVALID"
# Room left in `result` for the request id and the list of dropped keys.
RESULT_RESERVE_BYTES: Final = 1024


@dataclass(frozen=True, slots=True)
class VideoOutput:
    """What a COMPLETED event says of Fal's result: the video's URL and the trimmed metadata."""

    output_url: str
    result: dict[str, Any]


def video_output(result: Mapping[str, Any], request_id: str, job_id: str) -> VideoOutput:
    """The COMPLETED fields of `result`; a `FalError` (FAL_RESULT_INVALID) when it holds no video URL."""
    fitted, changes = fit_for_event(result, FIELD_LEVEL)
    if changes:
        logger.warning(
            "Fal result made storable",
            extra={"jobId": job_id, "falRequestId": request_id, **changes_for_log(changes)},
        )
    url = output_url_of(fitted)
    if url is None:
        raise FalError(FAL_RESULT_INVALID, "the Fal result holds no video URL", retryable=False)
    return VideoOutput(output_url=url, result=trim_result(fitted, request_id))


def output_url_of(result: Mapping[str, Any]) -> str | None:
    """The video URL in a Fal result (`video.url`, else the first of `videos`)."""
    video = result.get("video")
    if isinstance(video, dict) and isinstance(video.get("url"), str):
        return str(video["url"])
    videos = result.get("videos")
    if (
        isinstance(videos, list)
        and videos
        and isinstance(videos[0], dict)
        and isinstance(videos[0].get("url"), str)
    ):
        return str(videos[0]["url"])
    return None


def _json_size(value: Any) -> int | None:
    try:
        return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())
    except (TypeError, ValueError):
        return None


def trim_result(result: Mapping[str, Any], request_id: str, limit: int = MAX_RESULT_BYTES) -> dict[str, Any]:
    """The Fal result as event metadata within `limit` bytes: smallest fields first, the rest named."""
    trimmed: dict[str, Any] = {"falRequestId": request_id}
    budget = limit - RESULT_RESERVE_BYTES - (_json_size(trimmed) or 0)
    dropped: list[str] = []
    sized = [(key, _json_size({key: value})) for key, value in result.items() if key != "falRequestId"]
    for key, size in sorted(sized, key=lambda pair: (pair[1] is None, pair[1] or 0, pair[0])):
        if size is not None and size + 1 <= budget:
            trimmed[key] = result[key]
            budget -= size + 1
        else:
            dropped.append(key)
    if dropped:
        names = sorted(dropped)
        while names and (_json_size(names) or 0) > RESULT_RESERVE_BYTES - 64:
            names.pop()
        trimmed["droppedKeys"] = names
    return trimmed
