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

Its DynamoDB (the local stack's `MotoProcess`, one request at a time) then spent ~7 ms of CPU in
each of ProjectorFn's conditional UpdateItems (docs/performance.md), much of it on the request's
expressions, whose text repeats from write to write while the values change:

- the UpdateExpression was tokenised and parsed twice per request (once to list the names and
  values it uses, once to apply it): ~0.5 ms each;
- its tree's structural checks (one clause of each kind, no overlapping paths, no key attribute
  updated), each a walk of the tree that lists the clauses under every node (quadratic): ~1.6 ms;
- the validator deep-copied the parsed tree with `copy.deepcopy` (its memo, `__reduce_ex__`):
  ~0.55 ms;
- the ConditionExpression was lexed and parsed twice per request with the same names and values:
  ~0.4 ms each.

`install()` replaces those pieces with equivalents: JSONPath expressions parsed once per path
(a parsed expression is an immutable tree), the same clock read without `datetime` (moto's
epoch seconds are `time.time()` to the microsecond) and once per scan of a queue, the retention
period read from the queue directly, and the folder listed once per process. A queue's scans stay
linear in its depth, as moto's are, at a fraction of the cost. Semantics, ordering and duplication
stay moto's own: the same code decides which messages are visible, delayed, expired or redelivered.
For DynamoDB: an UpdateExpression's text is parsed once (moto only reads the parsed
tree: its validator transforms a deep copy, made here by a direct copy of the tree's nodes, as
`copy.deepcopy` would make it); the structural checks, which read only the tree, the request's
attribute names and the table's key attributes and change nothing, run once per such triple that
passed them (one that failed is checked again, and fails again); and a ConditionExpression's parse
is reused once, by the next parse of the same text with the very same names and values objects
(moto parses it in its response handler for the names and values it uses, then again to evaluate
it). Every step that reads the values or the item (substituting values, `if_not_exists`,
`list_append`, arithmetic, type checks, the condition's evaluation) runs on every request.

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


def install(*, dynamodb: bool = True) -> None:
    """Put the equivalents in place in this process (once; later calls do nothing).

    `dynamodb=False` leaves moto's DynamoDB as shipped (`bench.local_engines` compares the two).
    """
    with _lock:
        _once("jsonpath_ng.ext", "parse", _cached_parse)
        _once("moto.backends", "list_of_moto_modules", _listed_once)
        _once("moto.sqs.models", "unix_time", _fast_unix_time)
        _once("moto.sqs.models", "unix_time_millis", _fast_unix_time_millis)
        sqs = importlib.import_module("moto.sqs.models")
        _once(sqs.SQSBackend, "is_message_valid_based_on_retention_period", _retention_from_queue)
        _once(sqs.Queue, "messages", _visible_now, property)
        _once(sqs.Queue, "approximate_number_of_messages_delayed", _delayed_now, property)
        _once(sqs.Queue, "approximate_number_of_messages_not_visible", _not_visible_now, property)
        if not dynamodb:
            return
        expressions = importlib.import_module("moto.dynamodb.parsing.expressions")
        _once(expressions.UpdateExpressionParser, "make", _update_expression_parsed_once, classmethod)
        validators = importlib.import_module("moto.dynamodb.parsing.validators")
        _once(validators.__name__, "deepcopy", _trees_copied_directly)
        _once(validators.UpdateExpressionValidator, "__init__", _validator_knows_its_source)
        _once(validators.UpdateExpressionValidator, "validate", _structure_checked_once)
        comparisons = importlib.import_module("moto.dynamodb.comparisons")
        _once(comparisons.ConditionExpressionParser, "parse", _condition_parsed_once_per_request)


def installed() -> bool:
    """Whether `install()` has run in this process."""
    return bool(getattr(importlib.import_module("jsonpath_ng.ext").parse, MARK, False))


def _once(owner: Any, name: str, make: Callable[[Any], Any], wrap: Any = None) -> None:
    """Put `make(original)` in place of `owner.name` (a module, by name or itself, or a class),
    once; `wrap` (`classmethod`, `property`) for a descriptor, whose function `make` is given."""
    if isinstance(owner, str):
        owner = importlib.import_module(owner)
    attribute = getattr(owner, name)
    original = (
        attribute.__func__ if wrap is classmethod else attribute.fget if wrap is property else attribute
    )
    if getattr(original, MARK, False):
        return
    replacement = make(original)
    setattr(replacement, MARK, True)
    setattr(owner, name, replacement if wrap is None else wrap(replacement))


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


# --- DynamoDB expressions ----------------------------------------------------------------------

_MAX_EXPRESSIONS: Final = 4096  # distinct UpdateExpression texts kept; beyond it, parsed every time
_trees: dict[str, Any] = {}  # UpdateExpression text -> its parsed tree (never evicted)
_source_of: dict[int, str] = {}  # id of a tree in `_trees` -> its text (the tree stays alive)
_plain_trees: set[int] = set()  # ids of trees in `_trees` that `_copy_tree` copies as deepcopy does
_structure_passed: set[tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]] = set()
_last_condition: list[Any] = [None]  # (text, names, values, op, names found, values found)


def _update_expression_parsed_once(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def make(cls: type, expression_str: str) -> Any:
        tree = _trees.get(expression_str)
        if tree is not None:
            return tree
        tree = original(cls, expression_str)  # raises for an invalid text, every time
        with _lock:
            if expression_str not in _trees and len(_trees) < _MAX_EXPRESSIONS:
                _trees[expression_str] = tree
                _source_of[id(tree)] = expression_str
                if _is_plain_tree(tree, None, set()):
                    _plain_trees.add(id(tree))
        return _trees.get(expression_str, tree)

    return make


def _is_plain_tree(node: Any, parent: Any, seen: set[int]) -> bool:
    # A parsed tree as moto 5.2.5 builds it: nodes whose only attributes are `type`, `children`
    # (None or a list) and `parent` (the node holding them), leaves str or int, no node twice.
    nodes = importlib.import_module("moto.dynamodb.parsing.ast_nodes")
    if not isinstance(node, nodes.Node):
        return type(node) in (str, int)
    if id(node) in seen or node.parent is not parent or set(vars(node)) != {"type", "children", "parent"}:
        return False
    seen.add(id(node))
    if node.children is None:
        return True
    return type(node.children) is list and all(_is_plain_tree(c, node, seen) for c in node.children)


def _copy_tree(node: Any, parent: Any) -> Any:
    # What `copy.deepcopy` makes of a plain tree (above): new nodes of the same classes, the same
    # `type`, new children lists, each copy's `parent` the copy of its parent; str and int shared.
    if type(node) in (str, int):
        return node
    copied = object.__new__(type(node))
    copied.type = node.type  # the attributes in `Node.__init__`'s order, as the copy's __dict__ has them
    copied.children = None
    copied.parent = parent
    if node.children is not None:
        copied.children = [_copy_tree(c, copied) for c in node.children]
    return copied


def _trees_copied_directly(original: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(original)
    def deepcopy(x: Any, memo: Any = None, _nil: Any = None) -> Any:
        if memo is None and id(x) in _plain_trees:
            return _copy_tree(x, None)
        return original(x, memo) if _nil is None else original(x, memo, _nil)

    return deepcopy


def _validator_knows_its_source(original: Callable[..., None]) -> Callable[..., None]:
    @functools.wraps(original)
    def __init__(self: Any, expression: Any, *args: Any, **kwargs: Any) -> None:
        original(self, expression, *args, **kwargs)  # validates a deep copy of `expression`
        self._jobstatus_source = _source_of.get(id(expression))

    return __init__


def _structure_checked_once(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    validators = importlib.import_module("moto.dynamodb.parsing.validators")
    # The checks that read only the tree, the attribute names and the table's key attributes,
    # and return the node they are given (they raise, or change nothing).
    structural = (
        validators.ActionCountValidator,
        validators.OverlappingPathsValidator,
        validators.UpdateHashRangeKeyValidator,
    )

    @functools.wraps(original)
    def validate(self: Any) -> Any:
        source = getattr(self, "_jobstatus_source", None)
        if source is None:
            return original(self)
        names = self.expression_attribute_names or {}
        key = (source, tuple(sorted(names.items())), tuple(self.table.table_key_attrs))
        passed = key in _structure_passed
        remaining = sum(isinstance(p, structural) for p in self.processors)
        node = self.node_to_validate
        for processor in self.processors:
            if isinstance(processor, structural):
                if passed:
                    continue
                node = processor.traverse(node)
                remaining -= 1
                if remaining == 0:
                    _structure_passed.add(key)
            else:
                node = processor.traverse(node)
        return node

    return validate


def _condition_parsed_once_per_request(original: Callable[[Any], Any]) -> Callable[[Any], Any]:
    @functools.wraps(original)
    def parse(self: Any) -> Any:
        text = self.condition_expression
        names, values = self.expression_attribute_names, self.expression_attribute_values
        last = _last_condition[0]
        # The same text with the very same dicts: the request's second parse (moto parses the
        # condition in its response handler for the names it uses, then again to evaluate it).
        if last is not None and last[0] == text and last[1] is names and last[2] is values:
            _last_condition[0] = None
            self.expr_attr_names_found.extend(last[4])
            self.expr_attr_values_found.extend(last[5])
            return last[3]
        op = original(self)
        _last_condition[0] = (
            text,
            names,
            values,
            op,
            list(self.expr_attr_names_found),
            list(self.expr_attr_values_found),
        )
        return op

    return parse
