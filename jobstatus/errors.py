"""What a botocore `ClientError` or a pydantic `ValidationError` says, in one place.

Pure and import-free (duck-typed on the errors' attributes), so GetJobFn can use it without
importing pydantic.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final, Protocol

ROOT: Final = "(root)"


class ValidationErrorLike(Protocol):
    """The part of pydantic's `ValidationError` read here."""

    def errors(self, *, include_url: bool = ..., include_input: bool = ...) -> Sequence[Any]:
        """pydantic's list of error dicts (`loc`, `msg`, ...)."""
        ...


def client_error_code(error: BaseException) -> str:
    """The AWS error code of a botocore `ClientError` (`ThrottlingException`, ...); "" if none."""
    response = getattr(error, "response", None)
    detail = response.get("Error") if isinstance(response, dict) else None
    code = detail.get("Code") if isinstance(detail, dict) else None
    return str(code) if code else ""


def client_error_message(error: BaseException) -> str:
    """The AWS error message of a botocore `ClientError`, else the exception's text."""
    response = getattr(error, "response", None)
    detail = response.get("Error") if isinstance(response, dict) else None
    message = detail.get("Message") if isinstance(detail, dict) else None
    return str(message) if message else str(error)


def validation_errors(error: ValidationErrorLike, root: str = ROOT) -> list[tuple[str, str]]:
    """pydantic's errors as `(dotted field, message)` pairs; `root` names the whole value."""
    return [
        (".".join(str(part) for part in item["loc"]) or root, str(item["msg"]))
        for item in error.errors(include_url=False, include_input=False)
    ]


def validation_summary(error: ValidationErrorLike, *, fields: bool = True, root: str = ROOT) -> str:
    """pydantic's errors on one line: `field: message; ...` (messages only without `fields`)."""
    pairs = validation_errors(error, root)
    return "; ".join(f"{name}: {message}" if fields else message for name, message in pairs)
