"""moto, fast enough for the local stack's traffic, answering exactly as before.

The local stack runs moto's EventBridge and SQS in its own process (`MotoServer`). At 100 status
events/s, profiled with py-spy (docs/performance.md, "Event-to-visible lag"), moto spent the
process's one interpreter lock on work that does not change any answer:

- every PutEvents entry, for every rule target, built a new JSONPath parser (ply's lexer and
  LALR tables) eight times over to render the default input template: ~3 ms per target;
- every SQS message received recomputed all of its queue's attributes three times, each a scan
  of every message in the queue, to read one number (`MessageRetentionPeriod`), and every
  message sent one more scan for `ContentBasedDeduplication`; each scan asks each message twice
  for the time through `datetime` (~3 us a call): quadratic in the queue's depth, so a stack
  that falls behind falls further behind (its bus took fewer events the deeper the queue);
- every HTTP request listed moto's package folder (~250 `stat` calls) under the dispatcher's
  lock to learn which backends exist.

`install()` replaces those pieces with equivalents: JSONPath expressions parsed once per path
(a parsed expression is an immutable tree), the same clock read without `datetime` (moto's
epoch seconds are `time.time()` to the microsecond) and once per scan of a queue, the retention
period read from the queue directly, and the folder listed once per process. A queue's scans stay
linear in its depth, as moto's are, at a fraction of the cost. Semantics, ordering and duplication
stay moto's own: the same code decides which messages are visible, delayed, expired or redelivered.

Written against moto 5.2.5 (pinned in pyproject.toml): on an upgrade, check that each replaced
piece still does what it replaces; tests/local/test_moto_tuning.py checks the behaviour.
"""

from __future__ import annotations

import functools
import importlib
import threading
import time
from collections.abc import Callable
from typing import Any, Final

MARK: Final = "__jobstatus_tuned__"
_lock = threading.Lock()


def install() -> None:
    """Put the equivalents in place in this process (once; later calls do nothing)."""
    with _lock:
        _once("jsonpath_ng.ext", "parse", _cached_parse)
        _once("moto.backends", "list_of_moto_modules", _listed_once)
        _once("moto.sqs.models", "unix_time", _fast_unix_time)
        _once("moto.sqs.models", "unix_time_millis", _fast_unix_time_millis)
        sqs = importlib.import_module("moto.sqs.models")
        _once_method(sqs.SQSBackend, "is_message_valid_based_on_retention_period", _retention_from_queue)
        _once_property(sqs.Queue, "messages", _visible_now)
        _once_property(sqs.Queue, "approximate_number_of_messages_delayed", _delayed_now)
        _once_property(sqs.Queue, "approximate_number_of_messages_not_visible", _not_visible_now)


def installed() -> bool:
    """Whether `install()` has run in this process."""
    return bool(getattr(importlib.import_module("jsonpath_ng.ext").parse, MARK, False))


def _once(module_name: str, name: str, make: Callable[[Any], Any]) -> None:
    module = importlib.import_module(module_name)
    original = getattr(module, name)
    if getattr(original, MARK, False):
        return
    replacement = make(original)
    setattr(replacement, MARK, True)
    setattr(module, name, replacement)


def _once_method(owner: type, name: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, name)
    if getattr(original, MARK, False):
        return
    replacement = make(original)
    setattr(replacement, MARK, True)
    setattr(owner, name, replacement)


def _once_property(owner: type, name: str, make: Callable[[Any], Any]) -> None:
    original = getattr(owner, name)
    if getattr(original.fget, MARK, False):
        return
    replacement = make(original.fget)
    setattr(replacement, MARK, True)
    setattr(owner, name, property(replacement))


def _cached_parse(original: Callable[..., Any]) -> Callable[..., Any]:
    # moto's EventTemplateParser imports `parse` from `jsonpath_ng.ext` on every call, so the
    # module's attribute is what it uses. The parsed expression is only read by `find`.
    cached = functools.lru_cache(maxsize=1024)(original)

    @functools.wraps(original)
    def parse(path: str, debug: bool | None = None) -> Any:
        return cached(path, debug)

    return parse


def _listed_once(original: Callable[[], Any]) -> Callable[[], Any]:
    # The folders of moto's installed package: they do not change while the process runs.
    listed: tuple[str, ...] = tuple(original())

    @functools.wraps(original)
    def list_of_moto_modules() -> tuple[str, ...]:
        return listed

    return list_of_moto_modules


def _fast_unix_time(original: Callable[..., float]) -> Callable[..., float]:
    @functools.wraps(original)
    def unix_time(dt: Any = None) -> float:
        return time.time() if dt is None else original(dt)

    return unix_time


def _fast_unix_time_millis(original: Callable[..., float]) -> Callable[..., float]:
    @functools.wraps(original)
    def unix_time_millis(dt: Any = None) -> float:
        return time.time() * 1000.0 if dt is None else original(dt)

    return unix_time_millis


def _retention_from_queue(original: Callable[..., bool]) -> Callable[..., bool]:
    sqs = importlib.import_module("moto.sqs.models")

    @functools.wraps(original)
    def is_message_valid_based_on_retention_period(self: Any, queue_name: str, message: Any) -> bool:
        # What `get_queue_attributes(queue_name, ["MessageRetentionPeriod"])` returns, without
        # computing every other attribute (three scans of the queue) to get it.
        retention_period = self.get_queue(queue_name).message_retention_period
        return bool(retention_period + message.sent_timestamp / 1000 > sqs.unix_time())

    return is_message_valid_based_on_retention_period


# A queue's scans of its messages: moto's `Message.visible` is `now > visible_at` and
# `Message.delayed` is `now < delayed_until`, each reading the clock again; here one reading
# serves the whole scan (a snapshot of the queue at one instant, as SQS's counts are).


def _now_millis() -> float:
    return time.time() * 1000.0


def _visible_now(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def messages(self: Any) -> list[Any]:
        now = _now_millis()
        return [m for m in self._messages if now > m.visible_at and not now < m.delayed_until]

    return messages


def _delayed_now(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def approximate_number_of_messages_delayed(self: Any) -> int:
        now = _now_millis()
        return sum(1 for m in self._messages if now < m.delayed_until)

    return approximate_number_of_messages_delayed


def _not_visible_now(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def approximate_number_of_messages_not_visible(self: Any) -> int:
        now = _now_millis()
        return sum(1 for m in self._messages if not now > m.visible_at)

    return approximate_number_of_messages_not_visible
