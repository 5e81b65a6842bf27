"""How a model class is dumped, field by field: a plan read once per class from its pydantic
core schema.

Both ``to_bson()`` (:mod:`odm.models.dumping`) and ``save()``'s change detection
(:mod:`odm.models.save_plan`) follow the plan, so neither runs pydantic's serializer over the
whole document. Each field of a plan has a kind:

- :data:`PLAIN`: the dump of a value whose type is one of the field's ``types`` (``str``,
  ``int``, ``float``, ``bool``, ``bytes``, ``datetime``, ``date``, ``ObjectId``, an enum, the
  types of a literal, ``None`` if nullable; no serializer of its own) is the value itself;
- :data:`ANY`: the same for a value of one of the :data:`AS_IS` types, in a field of any type;
- :data:`MODEL`: an embedded model of class ``sub.cls`` exactly, dumped by its own plan;
- :data:`MODEL_LIST`: a ``list`` of such models;
- :data:`PLAIN_LIST`: a ``list`` of plain values (``list[str]``...): its dump is a new list
  holding the same values;
- :data:`SET`: a ``set`` or ``frozenset`` (``types``: its elements' plain types, empty when
  pydantic dumps them): its dump is a :class:`~odm.stored_order.StoredSet`, the elements in
  the one order every process stores them in (:func:`~odm.stored_order.stored_set`);
- :data:`OTHER`: anything else (other containers, custom types, serializers, a subclass
  instance...): pydantic dumps it, that field only.

A value that does not fit its kind (an ``int`` in a ``str`` field set with
``model_construct``, a subclass instance for a model field) is dumped by pydantic, that field
only, so the result is always what ``model_dump(by_alias=True)`` returns.

A class the plan cannot describe (a model serializer, computed fields, ``extra="allow"``, an
``exclude_if``, an overridden ``model_dump`` / ``to_bson`` on a Document...) has no plan and is
dumped whole by pydantic.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable, Iterable, Mapping
from operator import itemgetter
from typing import Any, Final

import bson
from bson.tz_util import utc as _bson_utc  # the tzinfo of PyMongo's aware decoding
from pydantic import BaseModel

from .declaration import overrides
from .derived import derived
from .diffing import addressable
from .options import CLASS_KEY

__all__ = [
    "ANY",
    "AS_IS",
    "MODEL",
    "MODEL_LIST",
    "OTHER",
    "PLAIN",
    "PLAIN_LIST",
    "SET",
    "FieldPlan",
    "Group",
    "ModelPlan",
    "document_plan",
    "standard_dump",
]

# Field kinds of a plan (ordered: the kinds compared by value come first).
PLAIN = 0
ANY = 1
MODEL = 2
MODEL_LIST = 3
OTHER = 4
PLAIN_LIST = 5
SET = 6

#: The types that pydantic's serializer returns as they are when it infers (``Any``, or a
#: serializer used in JSON mode only, such as ``odm.ObjectId``'s).
AS_IS: frozenset[type[Any]] = frozenset(
    {str, int, float, bool, bytes, type(None), _dt.datetime, bson.ObjectId}
)
_SCALAR_SCHEMAS: dict[str, type[Any]] = {
    "str": str,
    "int": int,
    "float": float,
    "bool": bool,
    "bytes": bytes,
    "datetime": _dt.datetime,
    "date": _dt.date,
    "none": type(None),
}
#: Core schema wrappers whose serializer is that of the schema they wrap.
_TRANSPARENT = frozenset({"default", "function-before", "function-after"})
#: The keys of a ``model-field`` schema a plan understands (``serialization_exclude_if``,
#: say, decides per value: such a model is dumped whole).
_FIELD_KEYS = frozenset(
    {
        "type",
        "schema",
        "validation_alias",
        "serialization_alias",
        "serialization_exclude",
        "frozen",
        "metadata",
    }
)

#: One field of a plan: (name, stored key, kind, types, plan of the embedded model).
FieldPlan = tuple[str, str, int, frozenset[type[Any]], "ModelPlan | None"]


def _getter(names: tuple[str, ...]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """An ``itemgetter`` that returns a tuple even for one name (or none)."""
    if not names:
        return lambda mapping: ()
    if len(names) == 1:
        (only,) = names
        return lambda mapping: (mapping[only],)
    return itemgetter(*names)


class Group:
    """Fields read all at once (``itemgetter``: C loops) from an instance's ``__dict__`` and
    from the stored sub-document, so that only the ones that may differ are looked at one by
    one."""

    __slots__ = ("fields", "keys_of", "names_of")

    def __init__(self, fields: list[FieldPlan]) -> None:
        self.fields = tuple(fields)
        self.names_of = _getter(tuple(field[0] for field in fields))
        self.keys_of = _getter(tuple(field[1] for field in fields))


class ModelPlan:
    """How one model class is dumped, field by field (see the module docstring)."""

    __slots__ = (
        "cls",
        "complete",
        "dumps_alone",
        "fields",
        "flat",
        "has_sets",
        "keys",
        "keys_addressable",
        "keys_in_order",
        "plain",
        "rest",
        "size",
        "types_in_order",
        "usual_types",
    )

    def __init__(self, cls: type[Any]) -> None:
        self.cls = cls
        self.fields: tuple[FieldPlan, ...] = ()
        self.keys: frozenset[str] = frozenset()
        #: Every field's stored key, in schema order.
        self.keys_in_order: tuple[str, ...] = ()
        self.types_in_order: tuple[frozenset[type[Any]], ...] = ()
        #: The type of each field's value when it has one type only (else ``None``): one
        #: tuple comparison checks a whole instance in the usual case.
        self.usual_types: tuple[type[Any] | None, ...] = ()
        self.size = 0
        #: No field is excluded from dumps: the instance's fields are the dump's keys.
        self.complete = True
        #: No field, here or in an embedded model's plan, is of a kind only pydantic dumps
        #: (:data:`OTHER`): following the plan dumps the whole instance (set by
        #: :func:`document_plan`; a plan with such fields is dumped whole by pydantic, which is
        #: faster than one pydantic call per model for the fields left over).
        self.dumps_alone = False
        #: A field here or in an embedded model's plan is a set (:data:`SET`): a dump of the
        #: instance by pydantic has them put in order (set by :func:`document_plan`).
        self.has_sets = False
        # Every field plain and stored under its own name: an instance is unchanged when its
        # ``__dict__`` equals the stored sub-document (one C-level comparison, which tries
        # identity first) and the values are the stored objects or stored alike
        # (``diffing.same_values``: ``1 == 1.0 == True`` and ``0.0 == -0.0`` are not).
        self.flat = False
        # The plain fields (two at least), compared at once with ``==``, then those that
        # are other objects than the stored ones one by one; and the other fields.
        self.plain: Group | None = None
        self.rest: tuple[FieldPlan, ...] = ()
        #: Every field's stored key can be one segment of an update path
        #: (:func:`odm.models.diffing.addressable`): no alias with a dot, no leading ``$``.
        self.keys_addressable = True

    def finish(self, fields: list[FieldPlan], complete: bool) -> None:
        """Set the derived attributes once every field is known."""
        self.fields = tuple(fields)
        self.keys = frozenset(field[1] for field in fields)
        self.keys_in_order = tuple(field[1] for field in fields)
        self.types_in_order = tuple(field[3] for field in fields)
        self.usual_types = tuple(
            next(iter(field[3])) if len(field[3]) == 1 else None for field in fields
        )
        self.size = len(fields)
        self.complete = complete
        self.flat = all(kind == PLAIN and name == key for name, key, kind, _, _ in fields)
        self.keys_addressable = all(addressable(field[1]) for field in fields)
        plain = [field for field in fields if field[2] == PLAIN]
        if len(plain) >= 2:
            self.plain = Group(plain)
            self.rest = tuple(field for field in fields if field[2] != PLAIN)
        else:
            self.rest = self.fields


def _json_only(serialization: Mapping[str, Any]) -> bool:
    """Tell whether a ``serialization`` schema leaves Python-mode dumps alone."""
    return serialization.get("type") == "function-plain" and (
        serialization.get("when_used") == "json"
    )


def _unwrap(
    schema: Mapping[str, Any], definitions: Mapping[str, Any]
) -> tuple[Mapping[str, Any] | None, bool]:
    """Follow the wrappers that do not change a dump; return the schema that decides it and
    whether ``None`` is allowed, or ``None`` when a serializer of its own is in the way."""
    nullable = False
    while True:
        kind = schema.get("type")
        if "serialization" in schema and not (
            kind == "json-or-python" and _json_only(schema["serialization"])
        ):
            return None, nullable
        if kind in _TRANSPARENT:
            schema = schema["schema"]
        elif kind == "nullable":
            nullable = True
            schema = schema["schema"]
        elif kind == "definition-ref":
            target = definitions.get(schema.get("schema_ref", ""))
            if target is None:
                return None, nullable
            schema = target
        else:
            return schema, nullable


def _instance_classes(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> set[type[Any]]:
    """The classes of the ``is-instance`` checks of a validator (alone or in a union)."""
    target, _ = _unwrap(schema, definitions)
    if target is None:
        return set()
    choices = target.get("choices", ()) if target.get("type") == "union" else (target,)
    return {
        choice["cls"]
        for choice in choices
        if isinstance(choice, Mapping)
        and choice.get("type") == "is-instance"
        and isinstance(choice.get("cls"), type)
    }


def _plain_types(
    target: Mapping[str, Any], nullable: bool, definitions: Mapping[str, Any]
) -> frozenset[type[Any]] | None:
    """The types whose values ``target`` dumps as they are, or ``None`` if it is not plain
    (``ANY`` for an ``Any`` field: see :func:`_field_plan`)."""
    none: set[type[Any]] = {type(None)} if nullable else set()
    kind = target.get("type")
    if kind in _SCALAR_SCHEMAS:
        return frozenset({_SCALAR_SCHEMAS[kind], *none})
    if kind == "json-or-python":  # with a JSON-only serializer (_unwrap): odm.ObjectId
        classes = _instance_classes(target.get("python_schema", {}), definitions)
        if classes:
            return frozenset(classes & AS_IS | none)
        return None
    if kind == "enum" and isinstance(target.get("cls"), type):
        return frozenset({target["cls"], *none})
    if kind == "literal":
        types = {type(value) for value in target.get("expected", ())}
        return frozenset(types | none)
    return None


def _field_plan(
    name: str,
    key: str,
    schema: Mapping[str, Any],
    definitions: Mapping[str, Any],
    plans: dict[int, ModelPlan | None],
) -> FieldPlan:
    other: FieldPlan = (name, key, OTHER, frozenset(), None)
    target, nullable = _unwrap(schema, definitions)
    if target is None:
        return other
    kind = target.get("type")
    if kind == "any" or (
        kind == "json-or-python"
        and not _instance_classes(target.get("python_schema", {}), definitions)
    ):
        return (name, key, ANY, AS_IS, None)
    types = _plain_types(target, nullable, definitions)
    if types is not None:
        return (name, key, PLAIN, types, None)
    if kind == "model":
        sub = _model_plan(target, definitions, plans)
        if sub is not None:
            return (name, key, MODEL, frozenset({type(None)} if nullable else ()), sub)
    if kind == "list" and not nullable and "items_schema" in target:
        items, items_nullable = _unwrap(target["items_schema"], definitions)
        if items is None:
            return other
        if items.get("type") == "model" and not items_nullable:
            sub = _model_plan(items, definitions, plans)
            if sub is not None:
                return (name, key, MODEL_LIST, frozenset(), sub)
        item_types = _plain_types(items, items_nullable, definitions)
        if item_types is not None:
            return (name, key, PLAIN_LIST, item_types, None)
    if kind in ("set", "frozenset"):
        return (name, key, SET, _set_item_types(target, definitions), None)
    return other


def _set_item_types(
    target: Mapping[str, Any], definitions: Mapping[str, Any]
) -> frozenset[type[Any]]:
    """The plain types of the elements of a ``set`` / ``frozenset`` schema (none when
    pydantic must dump them: tuples, models, serializers...)."""
    items, items_nullable = _unwrap(target.get("items_schema", {"type": "any"}), definitions)
    if items is None:
        return frozenset()
    if items.get("type") == "any":
        return AS_IS
    return _plain_types(items, items_nullable, definitions) or frozenset()


def _model_plan(
    schema: Mapping[str, Any],
    definitions: Mapping[str, Any],
    plans: dict[int, ModelPlan | None],
) -> ModelPlan | None:
    """Return the plan of a ``model`` core schema, or ``None`` if it must be dumped whole."""
    if id(schema) in plans:  # seen already (or being built: a recursive model)
        return plans[id(schema)]
    plans[id(schema)] = None
    cls = schema.get("cls")
    fields_schema = schema.get("schema", {})
    config = schema.get("config") or {}
    if (
        not isinstance(cls, type)
        or schema.get("root_model")
        or "serialization" in schema
        or "allow" in (schema.get("extra_behavior"), config.get("extra_fields_behavior"))
        or fields_schema.get("type") != "model-fields"
        or "serialization" in fields_schema
        or fields_schema.get("computed_fields")
        or fields_schema.get("extra_behavior") == "allow"
        or not fields_schema.get("fields")
        or any(not field.keys() <= _FIELD_KEYS for field in fields_schema["fields"].values())
    ):
        return None
    plan = ModelPlan(cls)
    plans[id(schema)] = plan
    fields: list[FieldPlan] = []
    complete = True
    for name, field in fields_schema["fields"].items():
        if field.get("serialization_exclude"):
            complete = False
            continue
        key = field.get("serialization_alias") or name
        fields.append(_field_plan(name, key, field["schema"], definitions, plans))
    plan.finish(fields, complete)
    if not fields:
        plans[id(schema)] = None
        return None
    return plan


#: Entries of a model's derived state (odm.models.derived): (the core schema they were built
#: from, the dump plan / the datetime fix-up). The schema is compared on each use as well, so a
#: plan made while the class was still incomplete is never used once pydantic completes it.
_PLAN: Final = "model_plan.dump"
_FIXER: Final = "model_plan.datetime_fixer"


def document_plan(cls: type[Any]) -> ModelPlan | None:
    """Return the plan of a Document class (built once, again if pydantic rebuilt the
    class), or ``None`` when its documents are dumped whole."""
    plan: ModelPlan | None = _for_schema(cls, _PLAN, _build_document_plan)
    return plan


def _for_schema(cls: type[Any], entry: str, build: Callable[[type[Any], Any], Any]) -> Any:
    """Return ``build(cls, schema)`` for the class's current core schema, kept in its derived
    state under ``entry`` with the schema it was built from (see :data:`_PLAN`)."""
    schema = cls.__pydantic_core_schema__
    state = derived(cls)
    cached = state.get(entry)
    if cached is not None and cached[0] is schema:
        return cached[1]
    built = build(cls, schema)
    state[entry] = (schema, built)
    return built


def standard_dump(cls: type[Any]) -> bool:
    """Tell whether a Document class dumps as every Document does: it overrides neither
    pydantic's ``model_dump`` nor ``Document.to_bson``, and has no set field (then its plan,
    or one pydantic call over a batch, gives what its own methods would; pydantic would dump
    a set as a Python set, in this process's order, where ``to_bson`` puts it in order)."""
    if not _own_dumps(cls):
        return False
    plan = document_plan(cls)
    return plan is None or not plan.has_sets


def _own_dumps(cls: type[Any]) -> bool:
    """Tell whether a Document class overrides neither pydantic's ``model_dump`` nor
    ``Document.to_bson``."""
    return cls.model_dump is BaseModel.model_dump and not overrides(cls, "to_bson")


def _build_document_plan(cls: type[Any], schema: Any) -> ModelPlan | None:
    if (
        not getattr(cls, "__pydantic_complete__", False)
        or not isinstance(schema, Mapping)
        or not _own_dumps(cls)
    ):
        return None
    definitions: dict[str, Any] = {}
    if schema.get("type") == "definitions":
        definitions = {d["ref"]: d for d in schema.get("definitions", ()) if "ref" in d}
        schema = schema["schema"]
    while schema.get("type") in _TRANSPARENT and "serialization" not in schema:
        schema = schema["schema"]
    if schema.get("type") != "model" or schema.get("cls") is not cls:
        return None
    plan = _model_plan(schema, definitions, {})
    if plan is not None:
        _mark_dumps_alone(plan, set())
        _mark_sets(plan)
    return plan


def _mark_dumps_alone(plan: ModelPlan, seen: set[int]) -> bool:
    """Set :attr:`ModelPlan.dumps_alone` on ``plan`` and the plans below it; return it (a
    plan met again on the way down, a recursive model, counts as dumping alone)."""
    if id(plan) in seen:
        return True
    seen.add(id(plan))
    alone = True
    for field in plan.fields:
        if field[2] == OTHER or (field[2] == SET and not field[3]):
            alone = False
        sub = field[4]
        if sub is not None and not _mark_dumps_alone(sub, seen):
            alone = False
    plan.dumps_alone = alone
    return alone


def _mark_sets(plan: ModelPlan) -> None:
    """Set :attr:`ModelPlan.has_sets` on ``plan`` and every plan below it: whether a set
    field is reachable from it (repeated until nothing changes: a recursive model reaches
    itself)."""
    plans: list[ModelPlan] = []
    stack = [plan]
    seen: set[int] = set()
    while stack:
        current = stack.pop()
        if id(current) not in seen:
            seen.add(id(current))
            plans.append(current)
            stack.extend(field[4] for field in current.fields if field[4] is not None)
    changed = True
    while changed:
        changed = False
        for current in plans:
            found = any(
                kind == SET or (sub is not None and sub.has_sets)
                for _, _, kind, _, sub in current.fields
            )
            if found and not current.has_sets:
                current.has_sets = changed = True


# -- reads: where a stored document's datetimes go (decoding naive, then the fix-up) ---------
#
# Decoding datetimes as aware UTC costs PyMongo a ``datetime.replace(tzinfo=...)`` per value.
# A class whose every datetime goes to a place this plan knows (a ``datetime`` field, a list
# of them, an embedded model or a list of models built the same way) can be decoded naive and
# have exactly those places made aware in one generated loop per batch (``EPOCH_AWARE + (d -
# EPOCH_NAIVE)`` is the very datetime the aware decoding gives). Every other field of such a
# class refuses a datetime (``str``, ``int``, an ObjectId...): a datetime stored there fails
# validation, and the loader then decodes the batch aware again (:mod:`odm.models.loading`),
# so errors are those of the aware decoding. A class with any field that could take a
# datetime where the loop does not look (``Any``, ``dict``, a ``date``, unions, validators,
# ``extra="allow"``, aliases by path...) has no fixer: it keeps the aware decoding.

#: The naive and aware epochs of the fix-up.
EPOCH_NAIVE = _dt.datetime(1970, 1, 1)
EPOCH_AWARE = _dt.datetime(1970, 1, 1, tzinfo=_bson_utc)

#: Validators that refuse a ``datetime`` input (pydantic's lax mode included).
_REFUSE_DATETIME = frozenset({"str", "int", "float", "bool", "bytes", "none"})
#: Literal and enum values that a datetime never equals.
_NOT_DATETIME_VALUES = (str, int, float, type(None))

# What a field of a read plan holds.
_REFUSES = "refuses"  # no datetime can be valid here
_DATETIME = "datetime"
_DATETIME_LIST = "datetime-list"
_SUB = "model"
_SUB_LIST = "model-list"

#: One fixed place of a read plan: (the stored keys pydantic may read it from, what it holds,
#: the embedded model's plan).
_ReadField = tuple[tuple[str, ...], str, "ReadPlan | None"]


class ReadPlan:
    """Where the datetimes of one model class are, and how to tell that a stored
    (sub-)document has no key the class does not read.

    The keys are counted, not looked up one by one: ``required`` fields read from one key
    each, and the ``optional`` ones (fields with a default, fields read from their alias or
    else their name: each counts once, as pydantic reads one of its keys). A document that
    validates has a key for every required field, so it has a key that nothing reads exactly
    when ``len(doc) > required + (the optional fields it has a key for)``; one that does not
    validate is decoded aware again anyway."""

    __slots__ = ("fixes", "optional", "required")

    def __init__(
        self, required: int, optional: tuple[tuple[str, ...], ...], fixes: tuple[_ReadField, ...]
    ) -> None:
        self.required = required
        self.optional = optional
        self.fixes = fixes


class _NoPlan(Exception):
    """A schema the read plan cannot vouch for."""


def _refuses_datetime(schema: Mapping[str, Any], definitions: Mapping[str, Any]) -> bool:
    """Tell whether the validator of ``schema`` refuses every ``datetime`` input (so a stored
    datetime there fails validation, whichever way it was decoded)."""
    kind = schema.get("type")
    if kind in _REFUSE_DATETIME:
        return True
    if kind in ("nullable", "default"):
        return _refuses_datetime(schema["schema"], definitions)
    if kind == "definition-ref":
        target = definitions.get(schema.get("schema_ref", ""))
        return target is not None and _refuses_datetime(target, definitions)
    if kind == "is-instance":
        cls = schema.get("cls")
        return isinstance(cls, type) and not issubclass(_dt.datetime, cls)
    if kind == "chain":
        steps: list[Any] = list(schema.get("steps") or ())
        return bool(steps) and _refuses_datetime(steps[0], definitions)
    if kind == "union":
        # A choice is a schema, or (schema, label) in a union with labels.
        choices: list[Any] = [
            choice[0] if type(choice) is tuple else choice for choice in schema.get("choices", ())
        ]
        return bool(choices) and all(_refuses_datetime(c, definitions) for c in choices)
    if kind == "json-or-python":
        return _refuses_datetime(schema.get("python_schema", {}), definitions)
    if kind == "literal":
        return all(type(v) in _NOT_DATETIME_VALUES for v in schema.get("expected", ()))
    if kind == "enum":
        members = schema.get("members", ())
        return bool(members) and all(
            type(m.value) in _NOT_DATETIME_VALUES or type(m.value) is bool for m in members
        )
    return False


def _read_kind(
    schema: Mapping[str, Any], definitions: Mapping[str, Any], seen: set[int]
) -> tuple[str, ReadPlan | None]:
    """What a field of ``schema`` holds for the fix-up; raise :class:`_NoPlan` if unknown."""
    while True:
        kind = schema.get("type")
        if kind in ("nullable", "default"):
            schema = schema["schema"]
        elif kind == "definition-ref":
            target = definitions.get(schema.get("schema_ref", ""))
            if target is None:
                raise _NoPlan
            schema = target
        else:
            break
    if kind == "datetime":
        return _DATETIME, None
    if kind == "model":
        return _SUB, _read_plan(schema, definitions, seen)
    if kind == "list" and "items_schema" in schema:
        item, sub = _read_kind(schema["items_schema"], definitions, seen)
        if item == _DATETIME:
            return _DATETIME_LIST, None
        if item == _SUB:
            return _SUB_LIST, sub
        if item == _REFUSES:
            return _REFUSES, None
        raise _NoPlan
    if _refuses_datetime(schema, definitions):
        return _REFUSES, None
    raise _NoPlan


def _read_plan(
    schema: Mapping[str, Any], definitions: Mapping[str, Any], seen: set[int]
) -> ReadPlan:
    """The read plan of a ``model`` core schema (raise :class:`_NoPlan` if it has none)."""
    if id(schema) in seen:  # a recursive model: its datetimes could be at any depth
        raise _NoPlan
    seen = seen | {id(schema)}
    config = schema.get("config") or {}
    fields_schema = schema.get("schema", {})
    if (
        schema.get("root_model")
        or schema.get("custom_init")
        or schema.get("post_init")
        or config.get("from_attributes")
        or "allow" in (schema.get("extra_behavior"), config.get("extra_fields_behavior"))
        or fields_schema.get("type") != "model-fields"
        or fields_schema.get("extra_behavior") == "allow"
        or fields_schema.get("extras_schema") is not None
    ):
        raise _NoPlan
    required = 0
    optional: list[tuple[str, ...]] = []
    fixes: list[_ReadField] = []
    for name, field in fields_schema.get("fields", {}).items():
        alias = field.get("validation_alias")
        if alias is not None and not isinstance(alias, str):
            raise _NoPlan  # AliasPath / AliasChoices: read from places the loop does not see
        names = (name,) if alias is None or alias == name else (alias, name)
        if len(names) > 1 and not (
            config.get("validate_by_name", False) and config.get("validate_by_alias", True)
        ):
            raise _NoPlan  # one of its keys is not read: what it holds is vouched for by none
        if len(names) == 1 and field["schema"].get("type") != "default":
            required += 1
        else:
            optional.append(names)
        what, sub = _read_kind(field["schema"], definitions, seen)
        if what != _REFUSES:
            fixes.append((names, what, sub))
    return ReadPlan(required, tuple(optional), tuple(fixes))


def _emit(
    plan: ReadPlan, var: str, depth: int, indent: str, lines: list[str], consts: dict[str, Any]
) -> None:
    """Append the fix-up of the stored (sub-)document ``var`` to ``lines``."""
    present = "".join(
        " + (" + " or ".join(f"{key!r} in {var}" for key in names) + ")" for names in plan.optional
    )
    lines.append(f"{indent}if len({var}) > {plan.required}{present}: return False")
    for names, what, sub in plan.fixes:
        for key in names:
            value = f"v{depth}"
            lines.append(f"{indent}{value} = {var}.get({key!r})")
            if what == _DATETIME:
                lines.append(f"{indent}if {value}.__class__ is DT:")
                lines.append(f"{indent}    {var}[{key!r}] = EA + ({value} - EN)")
            elif what == _DATETIME_LIST:
                lines.append(f"{indent}if {value}.__class__ is list:")
                lines.append(
                    f"{indent}    {value}[:] = [EA + (x - EN) if x.__class__ is DT else x "
                    f"for x in {value}]"
                )
            elif what == _SUB and sub is not None:
                lines.append(f"{indent}if {value}.__class__ is dict:")
                _emit(sub, value, depth + 1, indent + "    ", lines, consts)
            elif what == _SUB_LIST and sub is not None:
                item = f"s{depth}"
                lines.append(f"{indent}if {value}.__class__ is list:")
                lines.append(f"{indent}    for {item} in {value}:")
                lines.append(f"{indent}        if {item}.__class__ is dict:")
                _emit(sub, item, depth + 1, indent + "            ", lines, consts)


def _has_datetime(plan: ReadPlan) -> bool:
    return any(
        what in (_DATETIME, _DATETIME_LIST) or (sub is not None and _has_datetime(sub))
        for _, what, sub in plan.fixes
    )


#: ``fix(raws) -> bool``: make the known datetimes of naive-decoded documents aware in place;
#: ``False`` when a document has a key the plan does not know (then nothing is vouched for).
DatetimeFixer = Callable[[Iterable[dict[str, Any]]], bool]



def datetime_fixer(cls: type[Any]) -> DatetimeFixer | None:
    """Return the fix-up of a Document class's naive-decoded documents, or ``None`` when the
    class must be decoded aware (some field could take a datetime the fix-up does not see, or
    the class has no datetime to fix: nothing to gain). Built once per class (again if pydantic
    rebuilt it)."""
    fixer: DatetimeFixer | None = _for_schema(cls, _FIXER, _build_fixer)
    return fixer


def _build_fixer(cls: type[Any], schema: Any) -> DatetimeFixer | None:
    if not getattr(cls, "__pydantic_complete__", False) or not isinstance(schema, Mapping):
        return None
    meta = getattr(cls, "_meta", None)
    if meta is None or len(meta.family) > 1:  # documents of other classes, other fields
        return None
    definitions: dict[str, Any] = {}
    if schema.get("type") == "definitions":
        definitions = {d["ref"]: d for d in schema.get("definitions", ()) if "ref" in d}
        schema = schema["schema"]
    if schema.get("type") != "model" or schema.get("cls") is not cls:
        return None  # a model validator (before, after, wrap) around the class
    try:
        plan = _read_plan(schema, definitions, set())
    except _NoPlan:
        return None
    if not _has_datetime(plan):
        return None  # nothing to gain
    # The polymorphic class key, stored by odm, is a str: anything else there is vouched for
    # by nobody (the class does not read it), so the batch is then decoded aware again.
    plan = ReadPlan(plan.required, (*plan.optional, (CLASS_KEY,)), plan.fixes)
    consts: dict[str, Any] = {"DT": _dt.datetime, "EA": EPOCH_AWARE, "EN": EPOCH_NAIVE}
    lines = ["def fix(raws):", "    for r in raws:"]
    _emit(plan, "r", 0, "        ", lines, consts)
    lines.append(f"        c = r.get({CLASS_KEY!r})")
    lines.append("        if c is not None and c.__class__ is not str: return False")
    lines.append("    return True")
    namespace = dict(consts)
    exec("\n".join(lines), namespace)  # the source names stored keys by their repr() only
    fixer: DatetimeFixer = namespace["fix"]
    fixer.__doc__ = "\n".join(lines)
    return fixer
