"""Outside data (Fal's result, a client's `input`) made fit for an event (DESIGN §2 storable values).

`jobstatus.storable.make_storable` repairs numbers, empty keys and depth; text is repaired here
too: a lone surrogate (JSON's `"\\ud800"` escape carries one, but neither UTF-8 nor DynamoDB
can) becomes U+FFFD. Both producers build the `request` field with `request_field`, so the
QUEUED of SubmitJobFn and every FalInvokerFn event carry the same value for one job.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Final

from pydantic import ValidationError

from jobstatus.errors import validation_summary
from jobstatus.events import MAX_INPUT_BYTES, JobRequest
from jobstatus.storable import make_storable

REQUEST_INPUT_LEVEL: Final = 3  # the event is level 1, `request` level 2, its `input` level 3
MAX_MODEL_CHARS: Final = 256
LOGGED_CHANGES: Final = 20  # a log line names at most this many changes, then counts the rest


def json_size(value: Any) -> int:
    """Bytes of `value` as compact UTF-8 JSON, as the event model measures it.

    Raises ValueError for what is not strict JSON (non-finite numbers, lone surrogates).
    """
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode())


def has_lone_surrogate(text: str) -> bool:
    """Whether `text` holds a surrogate code point that UTF-8 cannot encode."""
    if text.isascii():
        return False
    try:
        text.encode()
    except UnicodeEncodeError:
        return True
    return False


def repaired_text(text: str) -> str:
    """`text` with each lone surrogate replaced by U+FFFD (the same object when it has none)."""
    if not has_lone_surrogate(text):
        return text
    # Through UTF-16: a split pair becomes its character again, a lone half becomes U+FFFD.
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace")


def _repair_text(value: Any, path: str, changes: list[str]) -> Any:
    # Recursion is bounded: `make_storable` has already cut everything below level 32.
    if isinstance(value, str):
        repaired = repaired_text(value)
        if repaired is not value:
            changes.append(f"{path or 'value'}: a lone surrogate replaced by U+FFFD")
        return repaired
    if isinstance(value, dict):
        copy: dict[str, Any] = {}
        for key, child in value.items():
            name = repaired_text(key)
            where = f"{path}.{name}" if path else name
            if name is not key:
                changes.append(f"{where}: a lone surrogate in the key replaced by U+FFFD")
                if name in copy or name in value:
                    changes.append(f"{where}: a key made equal to another by the repair, dropped")
                    continue
            copy[name] = _repair_text(child, where, changes)
        return copy
    if isinstance(value, list):
        return [_repair_text(child, f"{path}[{i}]", changes) for i, child in enumerate(value)]
    return value


def fit_for_event(value: Any, level: int) -> tuple[Any, list[str]]:
    """A copy of `value` that an event may hold at `level`, and what was changed (empty: nothing)."""
    storable, changes = make_storable(value, level)
    repaired: list[str] = []
    fitted = _repair_text(storable, "", repaired)
    return fitted, sorted(changes + repaired)


def changes_for_log(changes: list[str]) -> dict[str, Any]:
    """The `extra` of a log line naming `changes`: the first few, and how many in all."""
    return {"changes": changes[:LOGGED_CHANGES], "changeCount": len(changes)}


@dataclass(frozen=True, slots=True)
class RequestField:
    """The event's `request` for a job (None when it cannot have one), and how it was made."""

    value: dict[str, Any] | None
    changes: list[str]
    problem: str | None = None  # why `value` is None
    input_bytes: int = 0  # the fitted input's size as JSON


def request_field(
    model: Any, arguments: Any, webhook: Any = None, webhook_events: Any = None
) -> RequestField:
    """`{model, input}` with `input` fitted at level 3 and within 16 KiB, or why there is none.

    `webhook` and `webhookEvents` (DESIGN §4c) are added as given when not None: SubmitJobFn has
    checked them, and FalInvokerFn passes on what SubmitJobFn sent, so both build the same value.
    """
    if not isinstance(model, str) or not 1 <= len(model) <= MAX_MODEL_CHARS:
        return RequestField(None, [], f"model is not a string of 1 to {MAX_MODEL_CHARS} characters")
    if not isinstance(arguments, dict):
        return RequestField(None, [], "input is not a JSON object")
    fitted, changes = fit_for_event(arguments, REQUEST_INPUT_LEVEL)
    name = repaired_text(model)
    if name is not model:
        changes = sorted([*changes, "model: a lone surrogate replaced by U+FFFD"])
    size = json_size(fitted)
    if size > MAX_INPUT_BYTES:
        return RequestField(
            None, changes, f"input is {size} bytes as JSON; at most {MAX_INPUT_BYTES}", input_bytes=size
        )
    value: dict[str, Any] = {"model": name, "input": fitted}
    if webhook is not None:
        value["webhook"] = webhook
    if webhook_events is not None:
        value["webhookEvents"] = list(webhook_events)
    try:
        JobRequest.model_validate(value)
    except ValidationError as error:  # the model may refuse more than is repaired here
        problem = validation_summary(error, fields=False)
        return RequestField(None, changes, f"request refused by the event model: {problem}", input_bytes=size)
    return RequestField(value, changes, input_bytes=size)
