"""Which function and job a log line is from, on every thread: Powertools' thread-local keys.

`inject_lambda_context` and `append_keys` change one set of keys for the whole process, so a
long-lived thread (the status publisher's senders) would log with whatever invocation appended
last; in the local stack, where every function shares one process, with another function's name.
Keys that say which function or job a line is from therefore go on the thread that logs it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final, TypeVar

from aws_lambda_powertools import Logger
from aws_lambda_powertools.utilities.typing import LambdaContext

logger = Logger(child=True)

# What `inject_lambda_context` names the function and invocation with.
FUNCTION_KEYS: Final = ("function_name", "function_memory_size", "function_arn", "function_request_id")
# Keys another invocation may have appended process-wide: a background thread's lines never borrow them.
INVOCATION_KEYS: Final = ("jobId", "correlation_id", "cold_start")

R = TypeVar("R")
Handler = Callable[[dict[str, Any], LambdaContext], R]


def function_keys(context: LambdaContext) -> dict[str, Any]:
    """The keys naming `context`'s function and invocation, as `inject_lambda_context` names them."""
    return {
        "function_name": context.function_name,
        "function_memory_size": context.memory_limit_in_mb,
        "function_arn": context.invoked_function_arn,
        "function_request_id": context.aws_request_id,
    }


def names_its_function(handler: Handler[R]) -> Handler[R]:
    """Decorate an entry point (under `inject_lambda_context`): its thread's lines name its function
    with thread-local keys, which `current_function_keys` hands to the threads finishing its work."""

    @functools.wraps(handler)
    def named(event: dict[str, Any], context: LambdaContext) -> R:
        append_thread_keys(**function_keys(context))
        try:
            return handler(event, context)
        finally:
            remove_thread_keys(FUNCTION_KEYS)

    return named


def current_function_keys() -> dict[str, Any]:
    """The function keys this thread's lines carry now: its own (thread-local), else the process's."""
    merged = {**_call(logger.get_current_keys, {}), **_call(logger.thread_safe_get_current_keys, {})}
    return {key: merged[key] for key in FUNCTION_KEYS if merged.get(key) is not None}


def log_this_thread_as(keys: Mapping[str, Any]) -> None:
    """From now on this (background) thread logs as `keys` say, without another invocation's keys."""
    masked = dict.fromkeys((*FUNCTION_KEYS, *INVOCATION_KEYS))  # None: left out of the line
    append_thread_keys(**{**masked, **keys})


def append_thread_keys(**keys: Any) -> None:
    """`keys` on this thread's lines only."""
    _call(lambda: logger.thread_safe_append_keys(**keys), None)


def remove_thread_keys(keys: Iterable[str]) -> None:
    """`keys` off this thread's lines."""
    _call(lambda: logger.thread_safe_remove_keys(keys), None)


def _call(call: Callable[[], Any], otherwise: Any) -> Any:
    # Logging must never fail a job: without a Powertools parent logger (or with a formatter
    # that has no thread-local keys) the keys are simply not there.
    try:
        return call()
    except Exception:
        return otherwise
