"""Forms generated from a model: what each field's input is, and reading a posted form back.

A field's input follows its annotation: text, numbers, a checkbox, a select for an enum, a
``datetime-local`` for a datetime (taken as UTC), a text input for a Decimal (kept exact), a
select over the target model for a reference, a fieldset for an embedded model and one per row
for a list of them, one line per item for a list of scalars, and JSON for anything else, read
as the aiohttp integration's ``json_body`` reads a body (``strict_loads``: no ``NaN``, no key
twice).
Input names are the field paths (``address.city``, ``lines.0.qty``), so that pydantic's error
locations name the input they belong to. A posted name that is not such a path, or names a
read-only field, is refused (:class:`FormError`): no field outside the model can be written.
"""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import json
import re
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import bson
from pydantic import BaseModel
from pydantic_core import PydanticUndefined

from odm.models.fields import Reference, reference_target

from ..aiohttp.strict_json import strict_loads
from .options import strip_optional

PICK = "_pick"
"""The name of a reference picker's buttons (see :mod:`.picker`)."""

SEARCH = "_search."
"""The prefix of a reference picker's search box, followed by the field's name."""

SEARCHED = "_searched."
"""The prefix of the hidden input holding the search a picker shows."""

CONTROL_KEYS = frozenset({"csrf_token", "_version", PICK})
"""Posted names that are the form's own, not fields."""

DELETE_ROW = "_delete"
"""The checkbox of a row of an embedded list that removes the row, and of an optional embedded
model that sets it to ``None``."""

SHOWN_MARK = "_shown"
"""The hidden input of each row of an embedded list and of each optional embedded model:
:data:`SHOWN` when the form showed a value there, empty for a row offered for adding or a
model shown as ``None``. A browser posts nothing for an unticked checkbox, so a row (a model)
whose inputs are all checkboxes, all unticked, is in the POST by its mark alone."""

SHOWN = "yes"
"""The value of :data:`SHOWN_MARK` where the form showed a value: it is kept even when nothing
of it but the mark is posted, or every input is left empty (only its removal box removes
it)."""

TICKED = "on"
"""What a browser posts for a ticked checkbox without a ``value`` (the form's are): a checkbox
is read by its presence, so any other value is no answer of the form's and is refused (a
script's ``_delete=no`` would otherwise remove a row, ``active=false`` tick a box)."""

SELECT_ANSWERS: dict[str, bool | None] = {"": None, "true": True, "false": False}
"""The options of an ``Optional[bool]``'s select (—, yes, no) and what each stands for; any
other text (``yes``, ``1``, which pydantic would take) is no option of the form's."""

NOT_AN_ANSWER = "Input should be a valid boolean: one of \u2014, yes or no ('', 'true', 'false')"
"""What an ``Optional[bool]``'s select posted with another text is told, at the input."""

BLANK_ROWS = 1
"""Empty rows offered under an embedded list, to add one."""

_OFFSET = re.compile(r"(Z|[+-][0-9]{2}:?[0-9]{2})$")
_INDEX = re.compile(r"^(0|[1-9][0-9]{0,3})$")


@dataclass(frozen=True)
class Unparsed:
    """The posted text of a JSON input that is not valid JSON: shown again as it was typed
    (so that the user can fix it), and never a value for the model."""

    text: str


def unparsed_paths(data: Any, prefix: str = "") -> set[str]:
    """The input names of the :class:`Unparsed` values in ``data`` (as :func:`read_form` gives
    it: dicts by field name, lists of row dicts), whose reading error is the one to show."""
    found: set[str] = set()
    if isinstance(data, Unparsed):
        found.add(prefix.removesuffix("."))
    elif isinstance(data, dict):
        for name, value in data.items():
            found |= unparsed_paths(value, f"{prefix}{name}.")
    elif isinstance(data, list):
        for index, row in enumerate(data):
            found |= unparsed_paths(row, f"{prefix}{index}.")
    return found


NAME_SHOWN = 80
"""How many characters of a refused name its message quotes (a name may be a megabyte)."""


class FormError(ValueError):
    """A posted form names something that is not a writable input of the model's form."""

    def __init__(self, name: str, message: str) -> None:
        super().__init__(f"{quoted_name(name)}: {message}")
        self.name = name


def quoted_name(name: str) -> str:
    """``name`` quoted as a message names it: its ``repr`` (a NUL or a line break shown as
    such), cut after :data:`NAME_SHOWN` characters with its length said."""
    if len(name) <= NAME_SHOWN:
        return repr(name)
    return f"{name[:NAME_SHOWN]!r}... ({len(name)} characters)"


@dataclass(frozen=True)
class FieldSpec:
    """One input of a generated form."""

    name: str
    kind: str
    required: bool
    nullable: bool
    readonly: bool = False
    choices: tuple[str, ...] = ()
    target: type[Any] | None = None
    children: tuple[FieldSpec, ...] = ()
    item: type[Any] | None = None

    @property
    def label(self) -> str:
        """The name as shown."""
        return self.name.replace("_", " ")


OMITTED = object()
"""What an input left empty stands for when its field's default applies, or when pydantic is
to say that the field is required: the field is left out of the values read."""


def _kind(annotation: Any) -> tuple[str, dict[str, Any]]:
    # The order matters: bool is an int, a datetime is a date.
    if annotation is Any:
        return "json", {}
    if reference_target(annotation) is not None and typing.get_origin(annotation) is Reference:
        return "reference", {"target": reference_target(annotation)}
    if isinstance(annotation, type):
        if issubclass(annotation, bson.ObjectId):
            return "text", {}
        if issubclass(annotation, enum.Enum):
            return "enum", {"choices": tuple(str(m.value) for m in annotation)}
        if issubclass(annotation, bool):
            return "bool", {}
        if issubclass(annotation, int):
            return "int", {}
        if issubclass(annotation, float):
            return "float", {}
        if issubclass(annotation, decimal.Decimal):
            return "decimal", {}
        if issubclass(annotation, dt.datetime):
            return "datetime", {}
        if issubclass(annotation, dt.date):
            return "date", {}
        if issubclass(annotation, str):
            return "text", {}
        if issubclass(annotation, BaseModel) and not hasattr(annotation, "_meta"):
            return "embedded", {"children": describe(annotation)}
    if typing.get_origin(annotation) is list:
        (item,) = typing.get_args(annotation) or (Any,)
        item, _ = strip_optional(item)
        if isinstance(item, type) and issubclass(item, BaseModel) and not hasattr(item, "_meta"):
            return "embedded_list", {"children": describe(item), "item": item}
        if isinstance(item, type) and issubclass(item, str | int | float):
            return "lines", {"item": item}
    return "json", {}


def describe(model: type[BaseModel], readonly: Iterable[str] = ()) -> tuple[FieldSpec, ...]:
    """Return the inputs of ``model``'s form, in declaration order."""
    frozen = frozenset(readonly)
    specs = []
    for name, info in model.model_fields.items():
        annotation, nullable = strip_optional(info.annotation)
        kind, extra = _kind(annotation)
        specs.append(
            FieldSpec(
                name=name,
                kind=kind,
                required=info.is_required(),
                nullable=nullable,
                readonly=name in frozen,
                **extra,
            )
        )
    return tuple(specs)


# -- showing values ----------------------------------------------------------------------------


def shown(spec: FieldSpec, value: Any) -> Any:
    """The value as an input shows it (a string; a list of row dicts for an embedded list)."""
    if isinstance(value, Unparsed):
        return value.text
    if value is None:
        return ""
    kind = spec.kind
    if kind == "embedded":
        return {c.name: shown(c, _part(value, c.name)) for c in spec.children}
    if kind == "embedded_list":
        return [{c.name: shown(c, _part(row, c.name)) for c in spec.children} for row in value]
    if kind == "lines":
        return "\n".join(str(v) for v in value)
    if kind == "json":
        return json.dumps(_plain(value), indent=1, default=str)
    if kind == "reference":
        return str(value.id if isinstance(value, Reference) else getattr(value, "id", value))
    if kind == "enum":
        return str(value.value if isinstance(value, enum.Enum) else value)
    if kind == "datetime" and isinstance(value, str):
        return value.removesuffix("Z")  # as read back from a form: shown as it was typed
    if kind == "datetime" and isinstance(value, dt.datetime):
        if value.tzinfo is not None:
            value = value.astimezone(dt.UTC).replace(tzinfo=None)
        return value.isoformat(timespec="seconds")
    if kind == "bool":
        return _shown_bool(spec, value)
    return str(value)


def _shown_bool(spec: FieldSpec, value: Any) -> str:
    """A checkbox's value (``on`` ticked), or the option of an ``Optional[bool]``'s select
    (``""``, ``true``, ``false``: a checkbox cannot say ``None``). A posted text that is no
    option is :class:`Unparsed`, shown as it was posted by :func:`shown`."""
    if spec.nullable:
        return "true" if value else "false"
    return "on" if value else ""


def _part(value: Any, name: str) -> Any:
    # A stored value is a model; a value read back from a posted form is a dict.
    if isinstance(value, Mapping):
        return value.get(name)
    return getattr(value, name, None)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


def defaults(model: type[BaseModel], specs: tuple[FieldSpec, ...]) -> dict[str, Any]:
    """The values a new document's form starts with: the fields' plain defaults, shown."""
    values = {}
    for spec in specs:
        info = model.model_fields[spec.name]
        if info.default is not PydanticUndefined and info.default_factory is None:
            values[spec.name] = shown(spec, info.default)
    return values


# -- reading a posted form ---------------------------------------------------------------------


def check_names(specs: tuple[FieldSpec, ...], names: Iterable[str]) -> None:
    """Refuse (:class:`FormError`) any posted name that is not a writable input of the form,
    or that is posted more than once (the form has one input of each name: which value would
    be read is not the user's to guess)."""
    by_name = {s.name: s for s in specs}
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise FormError(name, "sent more than once: the form has one input of that name")
        seen.add(name)
        if name in CONTROL_KEYS:
            continue
        if name.startswith((SEARCH, SEARCHED)):
            picked = by_name.get(name.partition(".")[2])
            if picked is None or picked.kind != "reference" or picked.readonly:
                raise FormError(name, "the form has no reference picker of that name")
            continue
        head, _, rest = name.partition(".")
        spec = by_name.get(head)
        if spec is None:
            raise FormError(name, "the model has no such field")
        if spec.readonly:
            raise FormError(name, "the field is read-only")
        _check_rest(spec, name, rest)


def _check_rest(spec: FieldSpec, name: str, rest: str) -> None:
    if spec.kind == "embedded":
        if spec.nullable and rest in (DELETE_ROW, SHOWN_MARK):
            return
        head, _, deeper = rest.partition(".")
        child = {c.name: c for c in spec.children}.get(head)
        if child is None:
            raise FormError(name, "the embedded model has no such field")
        _check_rest(child, name, deeper)
    elif spec.kind == "embedded_list":
        index, _, deeper = rest.partition(".")
        if not _INDEX.match(index):
            raise FormError(name, "expected a row number")
        if deeper in (DELETE_ROW, SHOWN_MARK):
            return
        head, _, deepest = deeper.partition(".")
        child = {c.name: c for c in spec.children}.get(head)
        if child is None:
            raise FormError(name, "the embedded model has no such field")
        _check_rest(child, name, deepest)
    elif rest:
        raise FormError(name, "the field has no parts")


def check_values(specs: tuple[FieldSpec, ...], form: Mapping[str, str]) -> None:
    """Refuse (:class:`FormError`) a posted value that no input of the form posts: a row's or
    an optional model's mark other than :data:`SHOWN` or empty, and a checkbox (a field's, or a
    removal box) other than :data:`TICKED`. The names are those :func:`check_names` accepted;
    every one is checked, also inside a row that is being removed."""
    for name, value in form.items():
        refusal = _refused_value(specs, name, value)
        if refusal is not None:
            raise FormError(name, refusal)


def _refused_value(specs: tuple[FieldSpec, ...], name: str, value: str) -> str | None:
    """Why ``value`` is no value the form posts as ``name``; ``None`` when it may be one."""
    last = name.rpartition(".")[2]
    if "." in name and last == SHOWN_MARK:
        return None if value in ("", SHOWN) else f"the form's mark is {SHOWN!r} or empty"
    box = ("." in name and last == DELETE_ROW) or _is_checkbox(_named_spec(specs, name))
    if box and value != TICKED:
        return f"a ticked checkbox posts {TICKED!r} (an unticked one, nothing)"
    return None


def _is_checkbox(spec: FieldSpec | None) -> bool:
    """Tell whether ``spec`` is shown as a checkbox (a ``bool``; an optional one is a select)."""
    return spec is not None and spec.kind == "bool" and not spec.nullable


def _named_spec(specs: tuple[FieldSpec, ...], name: str) -> FieldSpec | None:
    """The input named ``name`` (``rows.0.leaf.on``), ``None`` for a name that is not a
    field's (a control, a picker's, a mark, a removal box)."""
    found: FieldSpec | None = None
    children = specs
    for part in name.split("."):
        if found is not None and found.kind == "embedded_list" and part.isdigit():
            continue  # a row number
        found = {c.name: c for c in children}.get(part)
        if found is None:
            return None
        children = found.children
    return found


NO_ORIGINAL = object()
"""What a form read without a stored document (a new one) compares its JSON inputs with."""


def read_form(
    specs: tuple[FieldSpec, ...],
    form: Mapping[str, str],
    prefix: str = "",
    shown_as: str = "",
    original: Any = NO_ORIGINAL,
) -> tuple[dict[str, Any], dict[str, str]]:
    """Return the values for pydantic (by field name) and the errors found on the way.

    Read-only fields are left out. Values stay strings where pydantic parses them (numbers,
    dates, Decimal, enums), so that its messages name the inputs. ``prefix`` is where the
    inputs read are in the posted form, ``shown_as`` where the form shown again holds them: the
    errors are keyed by the latter, as they differ for a row of an embedded list (see
    :func:`_read_rows`). ``original``: the stored document an edit starts from; a JSON input
    posted as it shows the stored value is that value, not read again (see :func:`_unchanged`).
    """
    data: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in specs:
        if spec.readonly:
            continue
        key = f"{prefix}{spec.name}"
        shown_key = f"{shown_as}{spec.name}"
        stored = _original_part(original, spec.name)
        kind = spec.kind
        if stored is not NO_ORIGINAL and omitted(spec, form, key):
            data[spec.name] = stored  # left out of the POST: the stored value, not a default
        elif kind == "bool" and not spec.nullable:
            data[spec.name] = key in form
        elif kind == "bool":
            data[spec.name] = _chosen_bool(form.get(key, ""), shown_key, errors)
        elif kind == "embedded":
            sub, sub_errors = read_form(spec.children, form, f"{key}.", f"{shown_key}.", stored)
            errors.update(sub_errors)
            data[spec.name] = None if spec.nullable and _cleared(form, key) else sub
        elif kind == "embedded_list":
            data[spec.name] = _read_rows(spec, form, key, shown_key, errors, stored)
        elif kind == "lines":
            text = form.get(key, "")
            data[spec.name] = [line.strip() for line in text.splitlines() if line.strip()]
        elif _unchanged(spec, form.get(key, ""), stored):
            data[spec.name] = stored
        else:
            value = _input_value(spec, form.get(key, ""), shown_key, errors)
            if value is not OMITTED:
                data[spec.name] = value
    return data, errors


def omitted(spec: FieldSpec, form: Mapping[str, str], key: str) -> bool:
    """Tell whether the POST leaves out every input of ``spec`` (named ``key``): a script or a
    page of an older version of the form sent none of them, so the field keeps its stored
    value, as Django's ModelForm leaves a field omitted from the data. An embedded model or a
    list of them is left out when no input under ``key.`` is posted (the form always posts its
    rows' marks, an empty row's too, and an optional model's mark); a field whose inputs are
    all checkboxes is never left out, as a checkbox is not posted when unticked."""
    if not _always_posted(spec):
        return False
    if spec.kind in ("embedded", "embedded_list"):
        return not any(name.startswith(f"{key}.") for name in form)
    return key not in form


def _always_posted(spec: FieldSpec) -> bool:
    """Tell whether the form of ``spec`` posts at least one input whatever is typed: any
    input but a checkbox (not posted unticked), also in an embedded model; a list of rows
    always posts its rows' marks (:data:`SHOWN_MARK`), its empty row's too, and an optional
    embedded model its own."""
    if spec.kind == "bool":
        return spec.nullable  # a select, not a checkbox
    if spec.kind == "embedded_list" or (spec.kind == "embedded" and spec.nullable):
        return True
    if spec.kind == "embedded":
        return any(_always_posted(child) for child in spec.children)
    return True


def _original_part(original: Any, name: str) -> Any:
    """The part ``name`` of a stored model (or row), :data:`NO_ORIGINAL` when there is none."""
    if original is NO_ORIGINAL or original is None:
        return NO_ORIGINAL
    return getattr(original, name, NO_ORIGINAL)


def _unchanged(spec: FieldSpec, text: str, stored: Any) -> bool:
    """Tell whether ``text``, posted for the JSON input of ``spec``, is the stored value's text
    as the form showed it: the user did not change it.

    That value is then kept as stored rather than read back from its text, which may not say
    it: a NaN or an infinity (shown as ``NaN``, ``Infinity``, which no JSON reader takes, so the
    document could not be saved at all), a date (shown as its text). A browser posts a
    textarea's line breaks as CRLF.
    """
    if spec.kind != "json" or stored is NO_ORIGINAL or stored is None:
        return False
    typed = text.replace("\r\n", "\n").strip()
    return bool(typed) and typed == shown(spec, stored).strip()


def _chosen_bool(text: str, shown_key: str, errors: dict[str, str]) -> Any:
    """The answer of an ``Optional[bool]``'s select: one of :data:`SELECT_ANSWERS`; any other
    text is an error at ``shown_key``, kept as :class:`Unparsed` (shown again with no option
    chosen, and not read by pydantic, which would take ``yes`` or ``1``)."""
    if text in SELECT_ANSWERS:
        return SELECT_ANSWERS[text]
    errors[shown_key] = NOT_AN_ANSWER
    return Unparsed(text)


def _input_value(spec: FieldSpec, text: str, shown_key: str, errors: dict[str, str]) -> Any:
    """The value of the one input of ``spec`` (JSON or a scalar), :data:`OMITTED` when the
    field is to be left out; JSON that does not parse is kept as :class:`Unparsed`, with its
    error in ``errors`` at ``shown_key``."""
    if spec.kind != "json":
        return _scalar_value(spec, text)
    try:
        return _json_value(spec, text.strip())
    except json.JSONDecodeError as exc:
        errors[shown_key] = f"not valid JSON: {exc}"
        return Unparsed(text.strip())


def _json_value(spec: FieldSpec, text: str) -> Any:
    """The value of a JSON input: left empty, ``None`` for a nullable field, :data:`OMITTED`
    for a field with a default, else ``None`` (which pydantic refuses at the input)."""
    if text:
        return strict_loads(text)
    if spec.required or spec.nullable:
        return None
    return OMITTED


def _scalar_value(spec: FieldSpec, text: str) -> Any:
    """The value of a text, number, date, enum or reference input (a string for pydantic to
    parse). Left empty: ``None`` for a nullable field; the empty text of a text field (a
    value); :data:`OMITTED` for a field with a default, and for an id to give (``id: str``,
    never empty: pydantic says it is required); else the empty text, which pydantic refuses
    at the input."""
    if text == "":
        if spec.nullable:
            return None
        if spec.name == "id" or (spec.kind != "text" and not spec.required):
            return OMITTED
        return text
    if spec.kind == "datetime" and not _OFFSET.search(text):
        return f"{text}Z"  # the form's times are UTC, as shown
    return text


def _blank(form: Mapping[str, str], key: str) -> bool:
    """Tell whether every input posted under ``key`` (an embedded model, a row) is empty."""
    return all(value == "" for name, value in form.items() if name.startswith(f"{key}."))


def _read_rows(
    spec: FieldSpec,
    form: Mapping[str, str],
    key: str,
    shown_as: str,
    errors: dict[str, str],
    stored: Any = NO_ORIGINAL,
) -> list[dict[str, Any]]:
    """The rows posted under ``key``, in the order of their numbers, without the removed ones
    and the empty ones offered for adding; their errors go into ``errors``.

    A row marked as shown (:data:`SHOWN_MARK`) is kept even when nothing else of it is posted:
    its checkboxes are all unticked. A row without the mark (a script, a page of an older
    version of the form) is taken as before the marks: left out when its inputs are empty.

    A row is what its place in the list read is: the form shown again numbers the rows so,
    as pydantic's locations and :func:`unparsed_paths` do, so its errors are keyed by that
    place under ``shown_as``, never by the number it was posted with (rows posted with gaps, as
    after a row above was removed, would put them on another row). A row's JSON inputs are
    compared with the stored row of the number it was posted with (``stored``: the stored list),
    the row the form showed there.
    """
    indexes = sorted(
        {int(name[len(key) + 1 :].split(".", 1)[0]) for name in form if name.startswith(f"{key}.")}
    )
    rows: list[dict[str, Any]] = []
    for index in indexes:
        row_key = f"{key}.{index}"
        if _cleared(form, row_key):
            continue  # an empty row offered for adding, left empty
        row, row_errors = read_form(
            spec.children, form, f"{row_key}.", f"{shown_as}.{len(rows)}.", _row(stored, index)
        )
        errors.update(row_errors)
        rows.append(row)
    return rows


def _cleared(form: Mapping[str, str], key: str) -> bool:
    """Tell whether the row or optional embedded model ``key`` is none: its removal box is
    ticked, or it was not shown with a value (:data:`SHOWN_MARK`: a row offered for adding, a
    model shown as ``None``, or no mark: a script, a page of an older version of the form) and
    every input posted under it is empty (what was typed decides: the values read hold
    defaults)."""
    shown = _shown(form, key)
    return f"{key}.{DELETE_ROW}" in form or (not shown and _blank(form, key))


def _shown(form: Mapping[str, str], key: str) -> bool:
    """Tell whether ``key`` is marked as shown with a value; a mark of another value than the
    form's is refused (:class:`FormError`)."""
    name = f"{key}.{SHOWN_MARK}"
    mark = form.get(name)
    if mark not in (None, "", SHOWN):
        raise FormError(name, f"the form's mark is {SHOWN!r} or empty")
    return mark == SHOWN


def _row(stored: Any, index: int) -> Any:
    """The stored row ``index`` of a list, :data:`NO_ORIGINAL` when there is none."""
    if isinstance(stored, list) and index < len(stored):
        return stored[index]
    return NO_ORIGINAL


def error_place(
    loc: tuple[int | str, ...], message: str, specs: tuple[FieldSpec, ...]
) -> tuple[str, str]:
    """Where the form shows a pydantic error at ``loc``, and what it says there.

    The error goes to the input holding its location: the longest prefix of ``loc`` that is
    an input's name. A JSON or one-per-line input holds everything inside its value, so its
    message says where inside (``at a.b: ...``, ``item 2: ...``). A location that no input
    holds (an embedded model's or a list's own error, a read-only field, the document's)
    gives ``""``: the message is one of the form's general errors, led by the location so that
    it still names its culprit.
    """
    parts = tuple(str(p) for p in loc)
    name, inner, kind = _holder(parts, specs, "")
    if not name:
        return "", f"{'.'.join(parts)}: {message}" if parts else message
    if kind == "lines" and inner and inner[0].isdigit():
        return name, f"item {int(inner[0]) + 1}: {message}"
    if kind == "json" and inner:
        return name, f"at {'.'.join(inner)}: {message}"
    return name, message


def _holder(
    parts: tuple[str, ...], specs: tuple[FieldSpec, ...], prefix: str
) -> tuple[str, tuple[str, ...], str]:
    """The input (under ``prefix``) holding the location ``parts``, the rest of the location
    inside it and the input's kind; ``""`` when no input holds it."""
    spec = {s.name: s for s in specs}.get(parts[0]) if parts else None
    if spec is None or spec.readonly:
        return "", parts, ""
    name = f"{prefix}{spec.name}"
    if spec.kind == "embedded":
        return _holder(parts[1:], spec.children, f"{name}.")
    if spec.kind == "embedded_list":
        if len(parts) < 2 or not _INDEX.match(parts[1]):
            return "", parts, ""  # the list's own error: no one input holds it
        return _holder(parts[2:], spec.children, f"{name}.{parts[1]}.")
    return name, parts[1:], spec.kind


def renumbered(rows: list[Any]) -> list[Any]:
    """``rows`` plus :data:`BLANK_ROWS` empty rows (``None``) for adding."""
    return [*rows, *([None] * BLANK_ROWS)]
