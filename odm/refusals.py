"""An update the server refused for what a matching document holds, in words that quote none
of it.

MongoDB's messages for these refusals quote the stored document: ``Cannot create field 'x' in
element {note: "..."}`` (the value in the way, whole), ``{_id: ...} has the field 'n' of
non-numeric type string`` (its id), ``Cannot apply array updates to non-array element tags:
"..."``. Passed on, they showed stored data to whoever reads the error: a web answer made from
it (:mod:`odm.contrib.aiohttp` answers a ``QueryError``'s text to the client). The
``QueryError`` made here says instead which field of the update could not be written, where,
the BSON type of what the document holds there and what the update needed: the first two from
the update the caller sent, the type as a name from a fixed list; nothing of the server's
message is copied. The server's error stays its ``__cause__``, for logs.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Final, NamedTuple

from .exceptions import QueryError
from .session import current_unit_of_work

__all__ = ["PATH_NOT_VIABLE", "field_path", "outcome", "stored_value_refusal"]

#: The server's code for an update whose path runs through a value that is not a document
#: (``address__city="x"`` where ``address`` is null or a string).
PATH_NOT_VIABLE: Final = 28


class _Kind(NamedTuple):
    """One refusal: its server code, the pattern of its message (groups: ``field``, the
    written path as the server names it; ``type``, the BSON type it found; ``op``, the
    operator; ``parent`` / ``part``, the field that holds no document or list; ``value``,
    the stored value, quoted), the update operators it is about (none: any), what they need,
    and whether the value in the way is the written field's parent rather than the field."""

    code: int
    pattern: re.Pattern[str]
    operators: tuple[str, ...]
    need: str
    inside: bool = False


_ANY: Final = re.DOTALL  # a stored value (quoted in the message) may hold line breaks

_KINDS: Final = (
    _Kind(
        14,
        re.compile(
            r"Cannot apply \$(?P<op>inc|mul) to a value of non-numeric type\. .* has the "
            r"field '(?P<field>.*)' of non-numeric type (?P<type>\w+)\Z",
            _ANY,
        ),
        ("$inc", "$mul"),
        "a number",
    ),
    _Kind(
        2,
        re.compile(
            r"The field '(?P<field>.*?)' must be an array but is of type (?P<type>\w+) in "
            r"document \{",
            _ANY,
        ),
        ("$push", "$addToSet"),
        "a list",
    ),
    _Kind(
        2,
        re.compile(
            r"Cannot apply \$(?P<op>addToSet) to non-array field\. Field named "
            r"'(?P<field>.*)' has non-array type (?P<type>\w+)\Z",
            _ANY,
        ),
        ("$addToSet",),
        "a list",
    ),
    _Kind(2, re.compile(r"Cannot apply \$pull to a non-array value\Z"), ("$pull", "$pullAll"),
          "a list"),
    _Kind(
        14,
        re.compile(r"Path '(?P<field>.*)' contains an element of non-array type "
                   r"'(?P<type>\w+)'\Z", _ANY),
        ("$pop",),
        "a list",
    ),
    _Kind(
        2,
        re.compile(
            r"Cannot apply \$bit to a value of non-integral type\..* has the field "
            r"(?P<field>.*) of non-integer type (?P<type>\w+)\Z",
            _ANY,
        ),
        ("$bit",),
        "an integer",
    ),
    # each() / $[] / $[<id>] on what is not a list
    _Kind(
        2,
        re.compile(r"Cannot apply array updates to non-array element (?P<parent>[^:]*): "
                   r"(?P<value>.*)\Z", _ANY),
        (),
        "a list",
        inside=True,
    ),
    # a field written inside what is not a document
    _Kind(
        PATH_NOT_VIABLE,
        re.compile(r"Cannot create field '(?P<field>.*?)' in element \{(?P<value>.*)\}\Z", _ANY),
        (),
        "a document",
        inside=True,
    ),
    # $rename from inside what is not a document
    _Kind(
        PATH_NOT_VIABLE,
        re.compile(
            r"cannot use the part \((?P<part>.*?) of (?P<path>.*?)\) to traverse the element "
            r"\(\{(?P<value>.*)\}\)\Z",
            _ANY,
        ),
        (),
        "a document",
        inside=True,
    ),
)

#: The codes of :data:`_KINDS`: another error costs one set lookup.
_CODES: Final = frozenset(kind.code for kind in _KINDS)

#: The BSON type names the server's messages use (``$type`` aliases): a word of its message
#: is shown only when it is one of them.
_TYPE_NAMES: Final = frozenset({
    "double", "string", "object", "array", "binData", "undefined", "objectId", "bool",
    "date", "null", "regex", "dbPointer", "javascript", "symbol", "javascriptWithScope",
    "int", "timestamp", "long", "decimal", "minKey", "maxKey",
})

#: The type of a value as the server prints it, by how the print starts (a value printed
#: whole, null, a number..., is matched whole by :data:`_PRINTED_WHOLE`).
_PRINTED_START: Final = (
    ('"', "string"),
    ("[", "array"),
    ("ObjectId(", "objectId"),
    ("new Date(", "date"),
    ("BinData(", "binData"),
    ("Timestamp(", "timestamp"),
    ("/", "regex"),
)
_PRINTED_WHOLE: Final = {
    "null": "null", "true": "bool", "false": "bool", "MinKey": "minKey", "MaxKey": "maxKey",
}
_PRINTED_NUMBER: Final = re.compile(r"-?(?:\d[\d.]*(?:[eE][-+]?\d+)?|nan\.0|inf\.0)")


def stored_value_refusal(
    model: type[Any], what: str, payload: Any, code: int | None, message: str
) -> QueryError | None:
    """Return the ``QueryError`` for the update ``what`` on ``model`` that the server refused
    with ``code`` and ``message`` because of what a matching document holds (``payload``:
    the update sent, first of a list, or ``None``); ``None`` for another error.

    The error's ``field`` is the written field as ``update()`` takes it (``meta__note__x``)
    when the update tells it; its message names that field, where the document holds what
    (a BSON type name), and what was needed, and quotes nothing of ``message``.
    """
    if code not in _CODES:
        return None
    for kind in _KINDS:
        if kind.code != code:
            continue
        found = kind.pattern.match(message)
        if found is not None:
            return _refusal(model, what, _update_of(payload), kind, found)
    if code == PATH_NOT_VIABLE:  # another wording: still the path, never the server's text
        return QueryError(
            f"{model.__name__} {what}: the server refused it: a path of the command runs "
            f"through a value that is not a document (PathNotViable); {outcome(what)}"
        )
    return None


def _update_of(payload: Any) -> Mapping[str, Any]:
    """The update document of ``payload`` (a list of one), or an empty one (a pipeline)."""
    first = payload[0] if isinstance(payload, Sequence) and payload else None
    return first if isinstance(first, Mapping) else {}


def _written(update: Mapping[str, Any], operators: tuple[str, ...]) -> Iterator[str]:
    """The paths ``update`` writes with ``operators`` (none: every operator; the targets of
    ``$rename`` too)."""
    for operator, fields in update.items():
        if not (isinstance(operator, str) and operator.startswith("$")):
            continue
        if (operators and operator not in operators) or not isinstance(fields, Mapping):
            continue
        for path, value in fields.items():
            yield str(path)
            if operator == "$rename" and isinstance(value, str):
                yield value


def _positional(segment: str) -> bool:
    """Whether ``segment`` of an update path is ``$``, ``$[]`` or ``$[<id>]``."""
    return segment.startswith("$")


def _ends_with(path: str, name: str) -> bool:
    """Whether the update path ``path`` ends with the server's ``name`` for it (which has
    the position of an element where the path has ``$``, ``$[]``...)."""
    mine, theirs = path.split("."), name.split(".")
    if len(theirs) > len(mine):
        return False
    tail = mine[len(mine) - len(theirs):]
    return all(a == b or _positional(a) for a, b in zip(tail, theirs, strict=True))


def _printed_type(printed: str) -> str | None:
    """The BSON type of a value from how the server printed it (only the type's name is
    kept), or ``None`` when the print does not tell."""
    whole = _PRINTED_WHOLE.get(printed)
    if whole is not None:
        return whole
    for start, name in _PRINTED_START:
        if printed.startswith(start):
            return name
    return "number" if _PRINTED_NUMBER.fullmatch(printed) else None


def _after_key(printed: str, key: str) -> str:
    """``printed`` (``<key>: <value>``) without its key: the value."""
    if _positional(key):  # the server names the element's index
        return printed.partition(": ")[2]
    return printed[len(key) + 2:] if printed.startswith(key + ": ") else ""


def _refusal(
    model: type[Any],
    what: str,
    update: Mapping[str, Any],
    kind: _Kind,
    found: re.Match[str],
) -> QueryError:
    groups = found.groupdict()
    operators = kind.operators
    if groups.get("op"):
        operators = (f"${groups['op']}",)
    paths: list[str] = []
    parent: list[str] | None = None
    held: str | None = None
    if not kind.inside:
        candidates = list(dict.fromkeys(_written(update, operators)))
        name = groups.get("field")
        named = [p for p in candidates if name is not None and _ends_with(p, name)]
        paths = named or candidates
        shown = groups.get("type")
        held = shown if shown in _TYPE_NAMES else None
    else:
        for path in dict.fromkeys(_written(update, operators)):
            segments = path.split(".")
            at = _parent_at(segments, groups)
            if at is None:
                continue
            paths.append(path)
            if parent is None:
                parent = segments[:at + 1]
                key = parent[-1] if "part" not in groups else groups["part"]
                value = groups["value"]
                if "parent" not in groups:  # printed as a document: {<key>: <value>}
                    value = _after_key(value, key)
                held = _printed_type(value)
    return QueryError(
        _message(model, what, paths, parent, held, kind.need), field=_shown(model, paths)
    )


def _parent_at(segments: list[str], groups: Mapping[str, str | None]) -> int | None:
    """The index in ``segments`` (an update path) of the field that the server found
    holding no document or list (as ``groups`` of its message tell it), or ``None`` when
    the path is not the one refused."""
    if groups.get("path") is not None:  # $rename: the server quotes the whole path
        part = groups["part"]
        if ".".join(segments) != groups["path"] or part not in segments:
            return None
        return segments.index(part)
    if groups.get("parent") is not None:  # $[]: the list's last name, then its value
        for at in range(1, len(segments)):
            before = segments[at - 1]
            if segments[at].startswith("$[") and (before == groups["parent"]
                                                  or _positional(before)):
                return at - 1
        return None
    value = groups.get("value") or ""
    for at in range(len(segments) - 1):  # the field to create, inside {<key>: <value>}
        key = segments[at]
        if segments[at + 1] == groups.get("field") and (
            _positional(key) or value.startswith(key + ": ")
        ):
            return at
    return None


def _shown(model: type[Any], paths: list[str]) -> str | None:
    """The error's ``field``: the first path written, as ``update()`` takes it."""
    return update_field(model, paths[0]) if paths else None


def update_field(model: type[Any], path: str) -> str:
    """The ``update()`` spelling of the stored path of an update: its positional operators
    (``$``, ``$[]``, ``$[<id>]``) left out, as ``each()`` / ``matched()`` name their fields
    (``lines__qty``)."""
    return field_path(model, ".".join(s for s in path.split(".") if not _positional(s)))


def _message(
    model: type[Any],
    what: str,
    paths: list[str],
    parent: list[str] | None,
    held: str | None,
    need: str,
) -> str:
    """The refusal's message: only names from the update, a type's name and fixed words."""
    if not paths:  # the update does not tell which of its fields
        holds = f"holds {held}" if held else f"does not hold {need}"
        return (
            f"{model.__name__} {what}: the server refused the update: a matching document "
            f"{holds} where the update needs {need}; {outcome(what)}"
        )
    fields = ", ".join(repr(update_field(model, p)) for p in paths)
    label = update_field(model, ".".join(parent)) if parent else None
    where = "there" if label is None else f"at {label!r}"
    holds = f"holds {held} {where}, not {need}" if held else f"does not hold {need} {where}"
    leave = ""
    if held == "null":
        # isnull=False leaves out a missing value as well as a null one.
        leave = (
            f"leave such documents out (filter({label or update_field(model, paths[0])}"
            "__isnull=False)) or "
        )
    return (
        f"{model.__name__} {what}: cannot write {fields}: a matching document {holds}, so "
        f"the update cannot apply; {outcome(what)}; {leave}store {need} {where} first"
    )


def field_path(model: type[Any], stored: str) -> str:
    """Return the ``filter()`` spelling of a stored dotted key: ``_id`` is ``id``, a
    top-level alias is its field's name, dots become ``__``."""
    head, dot, rest = stored.partition(".")
    if head == "_id":  # the stored name of every id field
        head = "id"
    else:
        for name, info in model.model_fields.items():
            if info.alias == head:
                head = name
                break
    return head + ("__" + rest.replace(".", "__") if dot else "")


def outcome(what: str) -> str:
    """Say what a refused update left behind: in a transaction the server aborted it; an
    ``update_many`` keeps what it wrote before the refused document."""
    if current_unit_of_work() is not None:
        return "the server aborted the transaction"
    if what == "update_many":
        return (
            "the documents it updated before that one keep the change (MongoDB does not "
            "undo an update_many part-way)"
        )
    return "nothing was written"
