"""The Fal queue API behind a small port: submit, status, result.

`FalGateway` is what FalInvokerFn needs; `FalClientGateway` is the real one on `fal-client`'s
`SyncClient` (queue API on `queue.fal.run`), and the local stack supplies a simulated one.
Every failure leaves a gateway as a `FalError` saying whether trying again can help.

`fal-client` already retries 408, 409, 429, nginx ingress 502/503/504 and transport errors (up
to 10 attempts, exponential backoff): what reaches us has been retried. A plain 5xx from the
app is not retried by it; the invoker does that (`producers.invoker.falretry`), and
`producers.invoker.falresult` turns a result into the fields of a COMPLETED event.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Final, Protocol

from producers.outside import repaired_text

if TYPE_CHECKING:
    import fal_client

FAL_REJECTED: Final = "FAL_REJECTED"  # a 4xx: the request itself is wrong
FAL_RATE_LIMITED: Final = "FAL_RATE_LIMITED"  # 429, still after fal-client's retries
FAL_UNAVAILABLE: Final = "FAL_UNAVAILABLE"  # 5xx or the network
FAL_BAD_RESPONSE: Final = "FAL_BAD_RESPONSE"  # an answer we cannot read
FAL_NOT_CONFIGURED: Final = "FAL_NOT_CONFIGURED"  # no key: fix the deployment, then run again

MAX_MESSAGE: Final = 1024


class FalState(StrEnum):
    """Where a request stands in Fal's queue."""

    IN_QUEUE = "IN_QUEUE"
    IN_PROGRESS = "IN_PROGRESS"
    COMPLETED = "COMPLETED"


@dataclass(frozen=True, slots=True)
class FalStatus:
    """A status poll's answer; `error` is set when a COMPLETED request ended in an error."""

    state: FalState
    queue_position: int | None = None
    logs: list[dict[str, Any]] | None = None
    error: str | None = None
    error_type: str | None = None
    metrics: dict[str, Any] = field(default_factory=dict)


class FalError(Exception):
    """A Fal call failed; `code` and `retryable` go into the FAILED event."""

    def __init__(self, code: str, message: str, *, retryable: bool, status_code: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        # Fal's text goes into a FAILED event: no lone surrogate (JSON's "\ud800"), which no
        # event may hold, may keep a failed job from being reported.
        self.message = repaired_text(message[:MAX_MESSAGE])
        self.retryable = retryable
        self.status_code = status_code


def error_for_status(status_code: int, message: str) -> FalError:
    """The `FalError` for an HTTP error answer."""
    text = f"Fal answered {status_code}: {message}"
    if status_code == 429:
        return FalError(FAL_RATE_LIMITED, text, retryable=True, status_code=status_code)
    if status_code >= 500 or status_code == 408:
        return FalError(FAL_UNAVAILABLE, text, retryable=True, status_code=status_code)
    return FalError(FAL_REJECTED, text, retryable=False, status_code=status_code)


class FalGateway(Protocol):
    """The Fal queue API as FalInvokerFn uses it."""

    def submit(self, model: str, arguments: Mapping[str, Any]) -> str:
        """Enqueue a request for `model` (a Fal application id); its request id."""
        ...

    def status(self, model: str, request_id: str) -> FalStatus:
        """Where the request stands."""
        ...

    def result(self, model: str, request_id: str) -> dict[str, Any]:
        """The output of a COMPLETED request."""
        ...


class FalClientGateway:
    """`FalGateway` on `fal_client.SyncClient`; the client is made on first use from `key()`."""

    def __init__(self, key: Callable[[], str | None]) -> None:
        self._key = key
        self._client: fal_client.SyncClient | None = None

    def _sync_client(self) -> fal_client.SyncClient:
        if self._client is None:
            import fal_client

            key = self._key()
            if not key:
                raise FalError(
                    FAL_NOT_CONFIGURED, "no Fal key (FAL_KEY or FAL_KEY_SECRET_ARN)", retryable=True
                )
            self._client = fal_client.SyncClient(key=key)
        return self._client

    def submit(self, model: str, arguments: Mapping[str, Any]) -> str:
        """POST to the queue; the request id Fal gives it."""
        handle = self._call(lambda: self._sync_client().submit(model, dict(arguments)))
        return str(handle.request_id)

    def status(self, model: str, request_id: str) -> FalStatus:
        """GET the request's status, with its logs."""
        import fal_client

        answer = self._call(lambda: self._sync_client().status(model, request_id, with_logs=True))
        if isinstance(answer, fal_client.Queued):
            return FalStatus(FalState.IN_QUEUE, queue_position=answer.position)
        if isinstance(answer, fal_client.InProgress):
            return FalStatus(FalState.IN_PROGRESS, logs=answer.logs)
        if isinstance(answer, fal_client.Completed):
            return FalStatus(
                FalState.COMPLETED,
                logs=answer.logs,
                error=answer.error,
                error_type=answer.error_type,
                metrics=dict(answer.metrics or {}),
            )
        raise FalError(FAL_BAD_RESPONSE, f"unknown status {answer!r}", retryable=False)

    def result(self, model: str, request_id: str) -> dict[str, Any]:
        """GET the request's output."""
        answer = self._call(lambda: self._sync_client().result(model, request_id))
        if not isinstance(answer, dict):
            raise FalError(FAL_BAD_RESPONSE, "the result is not a JSON object", retryable=False)
        return answer

    @staticmethod
    def _call(call: Callable[[], Any]) -> Any:
        import fal_client
        import httpx
        from fal_client.auth import MissingCredentialsError

        try:
            return call()
        except FalError:
            raise
        except fal_client.FalClientHTTPError as error:
            raise error_for_status(error.status_code, str(error.message)) from error
        except httpx.HTTPError as error:  # transport errors and timeouts, after fal-client's retries
            raise FalError(FAL_UNAVAILABLE, f"{type(error).__name__}: {error}", retryable=True) from error
        except MissingCredentialsError as error:
            raise FalError(FAL_NOT_CONFIGURED, str(error), retryable=True) from error
        except (ValueError, KeyError, TypeError) as error:  # unreadable JSON, missing fields
            raise FalError(FAL_BAD_RESPONSE, f"{type(error).__name__}: {error}", retryable=False) from error


def key_from_secret(secret: str) -> str:
    """The Fal key in a Secrets Manager secret: the plain string, or `FAL_KEY`/`key` of a JSON one."""
    try:
        data = json.loads(secret)
    except ValueError:
        return secret.strip()
    if isinstance(data, dict):
        for name in ("FAL_KEY", "key", "falKey"):
            if isinstance(data.get(name), str):
                return str(data[name]).strip()
    return secret.strip()
