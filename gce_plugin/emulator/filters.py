"""The ``filter`` parameter of Compute list calls, parsed into a predicate over a resource's JSON.

Both dialects the real API accepts, but not mixed in one filter (the real API refuses that too):

- AIP-160: ``FIELD OP VALUE`` with OP one of ``= != < > <= >= :``; ``labels.owner:*`` tests presence.
- regular expressions: ``FIELD eq RE`` / ``FIELD ne RE``; RE must match the whole field. Outside
  parentheses the value is the rest of the filter (spaces included), as in the real API.

Expressions may be parenthesised and joined by spaces or ``AND`` (conjunction) and ``OR``; as in
AIP-160, ``OR`` binds tighter than ``AND``. ``FIELD`` is a dotted path (``labels.env``,
``networkInterfaces.networkIP``); through lists, any element may match. Anything else is a
``FilterError``, answered 400 like the real API.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

Predicate = Callable[[Mapping[str, Any]], bool]

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)*")
_AIP_OPS = ("!=", "<=", ">=", "=", "<", ">", ":")
_REGEX_OPS = ("eq", "ne")


class FilterError(ValueError):
    pass


def parse_filter(text: str, known_fields: frozenset[str]) -> Predicate | None:
    """A predicate for ``text`` (None when the filter is empty); ``known_fields`` are the resource's
    top-level fields."""
    if not text.strip():
        return None
    parser = _Parser(text, known_fields)
    predicate = parser.parse()
    if parser.dialects == {"aip", "regex"}:
        raise FilterError("regular expression (eq/ne) and AIP-160 comparisons cannot be mixed")
    return predicate


@dataclass
class _Parser:
    text: str
    known_fields: frozenset[str]
    pos: int = 0
    depth: int = 0

    def __post_init__(self) -> None:
        self.dialects: set[str] = set()

    def parse(self) -> Predicate:
        predicate = self._conjunction()
        self._skip_space()
        if self.pos != len(self.text):
            raise FilterError(f"unexpected {self.text[self.pos :]!r}")
        return predicate

    def _conjunction(self) -> Predicate:
        terms = [self._disjunction()]
        while True:
            self._skip_space()
            if self._at_end() or self._peek(")"):
                break
            self._keyword("AND")
            terms.append(self._disjunction())
        if len(terms) == 1:
            return terms[0]
        return lambda r: all(t(r) for t in terms)

    def _disjunction(self) -> Predicate:
        terms = [self._term()]
        while self._keyword("OR"):
            terms.append(self._term())
        if len(terms) == 1:
            return terms[0]
        return lambda r: any(t(r) for t in terms)

    def _term(self) -> Predicate:
        self._skip_space()
        if self._peek("("):
            self.pos += 1
            self.depth += 1
            inner = self._conjunction()
            self._skip_space()
            if not self._peek(")"):
                raise FilterError("missing ')'")
            self.pos += 1
            self.depth -= 1
            return inner
        return self._comparison()

    def _comparison(self) -> Predicate:
        match = _FIELD.match(self.text, self.pos)
        if not match:
            raise FilterError(f"expected a field name at {self.text[self.pos :]!r}")
        path = match.group().split(".")
        if path[0] not in self.known_fields:
            raise FilterError(f"invalid field name {match.group()!r}")
        self.pos = match.end()
        self._skip_space()
        for op in _REGEX_OPS:
            if self.text.startswith(op, self.pos) and self._boundary(self.pos + len(op)):
                self.pos += len(op)
                self.dialects.add("regex")
                return _regex_comparison(path, op, self._regex_value())
        for op in _AIP_OPS:
            if self.text.startswith(op, self.pos):
                self.pos += len(op)
                self.dialects.add("aip")
                return _aip_comparison(path, op, self._value())
        raise FilterError(f"expected an operator after {match.group()!r}")

    def _value(self) -> str:
        if (quoted := self._quoted_value()) is not None:
            return quoted
        start = self.pos
        while not self._at_end() and not self.text[self.pos].isspace() and self.text[self.pos] not in "()":
            self.pos += 1
        if self.pos == start:
            raise FilterError("missing value")
        return self.text[start : self.pos]

    def _regex_value(self) -> str:
        """A quoted literal, or unquoted: the rest of the filter at top level, else up to the ``)`` that
        closes the enclosing parenthesis (nested, balanced parentheses belong to the regex)."""
        if (quoted := self._quoted_value()) is not None:
            return quoted
        if self.depth == 0:
            value = self.text[self.pos :].strip()
            self.pos = len(self.text)
            return value
        start, nesting = self.pos, 0
        while not self._at_end():
            char = self.text[self.pos]
            if char == "(":
                nesting += 1
            elif char == ")":
                if nesting == 0:
                    break
                nesting -= 1
            self.pos += 1
        value = self.text[start : self.pos].strip()
        if not value:
            raise FilterError("missing value")
        return value

    def _quoted_value(self) -> str | None:
        """A quoted literal at the next non-space; None when the value there is not quoted."""
        self._skip_space()
        if self._at_end():
            raise FilterError("missing value")
        quote = self.text[self.pos]
        if quote not in "\"'":
            return None
        end = self.text.find(quote, self.pos + 1)
        if end < 0:
            raise FilterError(f"unterminated {quote} string")
        value = self.text[self.pos + 1 : end]
        self.pos = end + 1
        return value

    def _keyword(self, word: str) -> bool:
        self._skip_space()
        end = self.pos + len(word)
        if self.text.startswith(word, self.pos) and self._boundary(end):
            self.pos = end
            return True
        return False

    def _boundary(self, index: int) -> bool:
        return index >= len(self.text) or self.text[index].isspace() or self.text[index] in "()\"'"

    def _skip_space(self) -> None:
        while not self._at_end() and self.text[self.pos].isspace():
            self.pos += 1

    def _peek(self, char: str) -> bool:
        return self.text.startswith(char, self.pos)

    def _at_end(self) -> bool:
        return self.pos >= len(self.text)


def _values_at(resource: Mapping[str, Any], path: list[str]) -> list[Any]:
    """The values at a dotted path; lists fan out, so ``networkInterfaces.networkIP`` has one per NIC."""
    current: list[Any] = [resource]
    for key in path:
        found: list[Any] = []
        for value in current:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, Mapping) and key in item:
                    found.append(item[key])
        current = found
    flat: list[Any] = []
    for value in current:
        flat.extend(value if isinstance(value, list) else [value])
    return flat


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _regex_comparison(path: list[str], op: str, pattern: str) -> Predicate:
    try:
        regex = re.compile(pattern)
    except re.error as exc:
        raise FilterError(f"invalid regular expression {pattern!r}: {exc}") from None

    def matches(resource: Mapping[str, Any]) -> bool:
        return any(
            regex.fullmatch(_text(v)) for v in _values_at(resource, path) if not isinstance(v, Mapping)
        )

    if op == "eq":
        return matches
    return lambda r: not matches(r)


_ORDER = {"<": operator.lt, ">": operator.gt, "<=": operator.le, ">=": operator.ge}


def _ordered(op: str, left: str, right: str) -> bool:
    """Numbers compare as numbers, anything else as text."""
    try:
        return bool(_ORDER[op](float(left), float(right)))
    except ValueError:
        return bool(_ORDER[op](left, right))


def _aip_comparison(path: list[str], op: str, value: str) -> Predicate:
    if op == ":":
        if value == "*":
            return lambda r: bool(_values_at(r, path))
        return lambda r: any(
            value in v if isinstance(v, Mapping) else _text(v) == value for v in _values_at(r, path)
        )
    if op == "=":
        return lambda r: any(_text(v) == value for v in _values_at(r, path))
    if op == "!=":
        return lambda r: not any(_text(v) == value for v in _values_at(r, path))
    return lambda r: any(
        _ordered(op, _text(v), value) for v in _values_at(r, path) if not isinstance(v, Mapping)
    )
