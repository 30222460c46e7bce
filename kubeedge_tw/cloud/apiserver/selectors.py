"""Label and field selectors: parsing the query-string syntax and matching objects.

The grammar is ``k8s.io/apimachinery/pkg/labels`` and ``.../fields``:

* label selectors: comma-separated requirements ``key``, ``!key``, ``key=v``, ``key==v``,
  ``key!=v``, ``key in (a,b)``, ``key notin (a,b)``, ``key>n``, ``key<n``;
* field selectors: comma-separated ``field=v``, ``field==v``, ``field!=v``; ``\\``
  escapes ``,``, ``=`` and ``\\`` in values. Which fields a resource supports is decided
  by its :class:`~kubeedge_tw.cloud.apiserver.resources.ResourceType`; a missing field
  compares as ``""``.

Syntax errors raise :class:`SelectorError` (the HTTP layer answers 400).
"""

import re

__all__ = [
    "SelectorError", "LabelSelector", "FieldSelector", "parse_label_selector",
    "parse_field_selector", "selector_from_label_selector", "label_selector_string",
    "EVERYTHING",
]


class SelectorError(ValueError):
    """A selector that does not parse, or a field selector naming an unsupported field."""


_KEY = re.compile(r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
                  r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
# Tokens of the label selector language, in the order they must be tried.
_TOKEN = re.compile(r"\s*(?:(?P<op>==|!=|=|\(|\)|,|!|>|<)|(?P<word>[^\s=!(),<>]+))")


class LabelSelector:
    """A parsed label selector: a list of ``(key, operator, values)`` requirements, all of
    which must hold (operators: ``exists``, ``!``, ``=``, ``!=``, ``in``, ``notin``, ``>``,
    ``<``)."""

    def __init__(self, requirements=()):
        """Wrap already-parsed requirements."""
        self.requirements = list(requirements)

    def empty(self):
        """True when the selector selects everything."""
        return not self.requirements

    def matches(self, labels):
        """Whether a ``metadata.labels`` mapping (or None) satisfies every requirement."""
        labels = labels or {}
        for key, op, values in self.requirements:
            present = key in labels
            value = labels.get(key)
            if op == "exists":
                ok = present
            elif op == "!":
                ok = not present
            elif op in ("=", "in"):
                ok = present and value in values
            elif op in ("!=", "notin"):
                ok = not present or value not in values
            else:  # > and <: both sides integers, the label must exist
                try:
                    number = int(value) if present else None
                except ValueError:
                    number = None
                if number is None:
                    ok = False
                elif op == ">":
                    ok = number > values[0]
                else:
                    ok = number < values[0]
            if not ok:
                return False
        return True

    def __str__(self):
        parts = []
        for key, op, values in self.requirements:
            if op == "exists":
                parts.append(key)
            elif op == "!":
                parts.append("!" + key)
            elif op in ("in", "notin"):
                parts.append("{} {} ({})".format(key, op, ",".join(sorted(values))))
            elif op in (">", "<"):
                parts.append("{}{}{}".format(key, op, values[0]))
            else:
                parts.append("{}{}{}".format(key, op, next(iter(values))))
        return ",".join(parts)


#: The selector that matches everything.
EVERYTHING = LabelSelector()


def _check_key(key):
    if len(key) > 317 or not _KEY.match(key):
        raise SelectorError("unable to parse requirement: invalid label key \"{}\": name part "
                            "must consist of alphanumeric characters, '-', '_' or '.', and must "
                            "start and end with an alphanumeric character".format(key))


def _check_value(value):
    if len(value) > 63 or not _VALUE.match(value):
        raise SelectorError("unable to parse requirement: invalid label value: \"{}\": a valid "
                            "label must be an empty string or consist of alphanumeric "
                            "characters, '-', '_' or '.', and must start and end with an "
                            "alphanumeric character".format(value))


def _tokens(text):
    pos = 0
    out = []
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            if text[pos:].strip() == "":
                break
            raise SelectorError("unable to parse requirement: unexpected character {!r} "
                                "at position {}".format(text[pos], pos))
        if match.group("op") is not None:
            out.append(("op", match.group("op")))
        else:
            out.append(("word", match.group("word")))
        pos = match.end()
    return out


def parse_label_selector(text):
    """Parse the ``labelSelector`` query parameter; ``""``/None selects everything."""
    if text is None or not text.strip():
        return EVERYTHING
    tokens = _tokens(text)
    requirements = []
    i = 0

    def peek(offset=0):
        return tokens[i + offset] if i + offset < len(tokens) else (None, None)

    while i < len(tokens):
        kind, value = peek()
        if (kind, value) == ("op", "!"):
            i += 1
            kind, key = peek()
            if kind != "word":
                raise SelectorError("unable to parse requirement: found {!r}, expected: "
                                    "identifier after '!'".format(key))
            _check_key(key)
            requirements.append((key, "!", frozenset()))
            i += 1
        elif kind == "word":
            key = value
            _check_key(key)
            i += 1
            kind, value = peek()
            if kind is None or (kind, value) == ("op", ","):
                requirements.append((key, "exists", frozenset()))
            elif kind == "op" and value in ("=", "==", "!="):
                i += 1
                vkind, v = peek()
                if vkind == "word":
                    i += 1
                elif vkind is None or (vkind, v) == ("op", ","):
                    v = ""
                else:
                    raise SelectorError("unable to parse requirement: found {!r}, expected: "
                                        "identifier".format(v))
                _check_value(v)
                requirements.append((key, "!=" if value == "!=" else "=", frozenset([v])))
            elif kind == "op" and value in (">", "<"):
                i += 1
                vkind, v = peek()
                try:
                    number = int(v) if vkind == "word" else None
                except ValueError:
                    number = None
                if number is None:
                    raise SelectorError("unable to parse requirement: for 'Gt', 'Lt' "
                                        "operators, the value must be an integer")
                i += 1
                requirements.append((key, value, (number,)))
            elif kind == "word" and value in ("in", "notin"):
                op = value
                i += 1
                if peek() != ("op", "("):
                    raise SelectorError("unable to parse requirement: found {!r}, expected: "
                                        "'('".format(peek()[1]))
                i += 1
                values = []
                expect_value = True
                while True:
                    vkind, v = peek()
                    if vkind is None:
                        raise SelectorError("unable to parse requirement: found '', "
                                            "expected: ')'")
                    if (vkind, v) == ("op", ")"):
                        if expect_value and values:
                            values.append("")
                        i += 1
                        break
                    if (vkind, v) == ("op", ","):
                        if expect_value:
                            values.append("")
                        expect_value = True
                        i += 1
                        continue
                    if vkind != "word" or not expect_value:
                        raise SelectorError("unable to parse requirement: found {!r}, "
                                            "expected: ',' or ')'".format(v))
                    values.append(v)
                    expect_value = False
                    i += 1
                if not values:
                    raise SelectorError("unable to parse requirement: for 'in', 'notin' "
                                        "operators, values set can't be empty")
                for v in values:
                    _check_value(v)
                requirements.append((key, op, frozenset(values)))
            else:
                raise SelectorError("unable to parse requirement: found {!r}, expected: "
                                    "in, notin, =, ==, !=, gt, lt".format(value))
        else:
            raise SelectorError("unable to parse requirement: found {!r}, expected: "
                                "!, identifier, or 'end of string'".format(value))
        kind, value = peek()
        if kind is None:
            break
        if (kind, value) != ("op", ","):
            raise SelectorError("unable to parse requirement: found {!r}, expected: ','"
                                .format(value))
        i += 1
        if i >= len(tokens):
            raise SelectorError("unable to parse requirement: found '', expected: "
                                "identifier")
    return LabelSelector(requirements)


def selector_from_label_selector(spec):
    """A :class:`LabelSelector` from a ``metav1.LabelSelector`` object (``matchLabels``
    and ``matchExpressions``). None matches nothing (Kubernetes' rule for a nil
    selector), an empty one matches everything. Raises :class:`SelectorError` for an
    unknown operator."""
    if spec is None:
        return None
    requirements = []
    for key, value in sorted((spec.get("matchLabels") or {}).items()):
        requirements.append((key, "=", frozenset([str(value)])))
    for expr in spec.get("matchExpressions") or []:
        key, op = expr.get("key", ""), expr.get("operator", "")
        values = [str(v) for v in expr.get("values") or []]
        mapping = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!"}
        if op not in mapping:
            raise SelectorError('"{}" is not a valid label selector operator'.format(op))
        requirements.append((key, mapping[op], frozenset(values)))
    return LabelSelector(requirements)


def label_selector_string(spec):
    """The ``kubectl``-style string of a ``metav1.LabelSelector`` (``app=x,tier in (a)``),
    ``<none>`` for nil, ``""`` for everything."""
    try:
        selector = selector_from_label_selector(spec)
    except SelectorError:
        return "<error>"
    if selector is None:
        return "<none>"
    return str(selector)


class FieldSelector:
    """A parsed field selector: ``(field, operator, value)`` requirements with operator
    ``=`` or ``!=``; matched against a ``field -> str`` getter."""

    def __init__(self, requirements=()):
        """Wrap already-parsed requirements."""
        self.requirements = list(requirements)

    def empty(self):
        """True when the selector selects everything."""
        return not self.requirements

    def fields(self):
        """The field names the selector uses."""
        return [field for field, _, _ in self.requirements]

    def matches(self, get_field):
        """Whether ``get_field(name) -> str`` satisfies every requirement."""
        for field, op, value in self.requirements:
            actual = get_field(field)
            if (actual == value) != (op == "="):
                return False
        return True

    def exact(self, field):
        """The value an ``=`` requirement on ``field`` pins, or None."""
        for name, op, value in self.requirements:
            if name == field and op == "=":
                return value
        return None

    def __str__(self):
        return ",".join("{}{}{}".format(f, op, v) for f, op, v in self.requirements)


def _split_unescaped(text, separator):
    """Split on ``separator`` characters not preceded by a backslash escape."""
    parts, current, i = [], [], 0
    while i < len(text):
        ch = text[i]
        if ch == "\\" and i + 1 < len(text):
            current.append(text[i:i + 2])
            i += 2
            continue
        if ch == separator:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
        i += 1
    parts.append("".join(current))
    return parts


def _unescape(value):
    out, i = [], 0
    while i < len(value):
        if value[i] == "\\":
            if i + 1 >= len(value) or value[i + 1] not in "\\,=":
                raise SelectorError("invalid field selector: invalid escape sequence in {!r}"
                                    .format(value))
            out.append(value[i + 1])
            i += 2
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


def parse_field_selector(text):
    """Parse the ``fieldSelector`` query parameter; ``""``/None selects everything."""
    if text is None or not text.strip():
        return FieldSelector()
    requirements = []
    for part in _split_unescaped(text, ","):
        if not part:
            continue
        for op in ("!=", "==", "="):
            index = _find_unescaped(part, op)
            if index >= 0:
                field = part[:index].strip()
                value = _unescape(part[index + len(op):])
                if not field:
                    raise SelectorError("invalid field selector: {!r}: empty field name"
                                        .format(part))
                requirements.append((field, "!=" if op == "!=" else "=", value))
                break
        else:
            raise SelectorError("invalid selector: '{}'; can't understand '{}'"
                                .format(text, part))
    return FieldSelector(requirements)


def _find_unescaped(text, needle):
    i = 0
    while i < len(text):
        if text[i] == "\\":
            i += 2
            continue
        if text.startswith(needle, i):
            return i
        i += 1
    return -1
