"""One small class per lookup (``age__gte=18``), registered by name.

A lookup validates its value against the field's type when it is built (so a bad value raises
:class:`~odm.exceptions.QueryError` at ``filter()`` time, before anything is sent) and then
renders one MongoDB condition. Every operator in the output is written here; a value only ever
lands in an operand position, converted by pydantic and checked by
:func:`~odm.query.paths.check_literal`.
"""

from __future__ import annotations

import re
import reprlib
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, ClassVar, Final, get_origin

from pydantic import TypeAdapter
from pydantic import ValidationError as PydanticValidationError

from ..exceptions import QueryError
from ..models.derived import expire_all
from ..models.field_types import NOT_VALUES, PLAIN_TYPES, held_operator
from ..nesting import MAX_DEPTH
from .expressions import ArrayUpdate, CombinedExpression, Expression, Extremum
from .paths import (
    FieldType,
    Join,
    Kind,
    ResolvedPath,
    peel,
    target_id_type,
)
from .reading import check_readable, field_reference, read_expression

__all__ = [
    "LITERAL_COMPARISONS",
    "LOOKUPS",
    "MAX_EXPRESSION_LEVELS",
    "Lookup",
    "check_expression_depth",
    "comparison_literal_type",
    "escape_regex",
    "get_lookup",
    "register_lookup",
]

#: Every registered lookup class, by ``lookup_name``.
LOOKUPS: dict[str, type[Lookup]] = {}

#: The entry of a model's derived state (odm.models.derived) mapping each filter key to
#: (resolved path, lookup class, literal type), filled by :func:`odm.query.where.key_plan`: what
#: ``filter(key=...)`` means for a model depends only on the key, so each key is split and
#: resolved once (only the value is validated on every call). The literal type is
#: :func:`exact_literal_type`'s for ``Exact``, :func:`comparison_literal_type`'s for the
#: comparisons of :data:`LITERAL_COMPARISONS` (``None`` for other lookups). Forgotten, with
#: the rest of the derived state, when a lookup is registered.
KEY_PLANS: Final = "lookups.key_plans"

_BOOL: Final = TypeAdapter(bool)

#: Kinds that MongoDB orders meaningfully against a scalar operand.
_ORDERED: Final = frozenset(
    {
        Kind.NUMBER,
        Kind.STRING,
        Kind.DATE,
        Kind.OBJECTID,
        Kind.OTHER,
        Kind.ANY,
        Kind.REFERENCE,
        Kind.BOOL,
    }
)
_TEXT: Final = frozenset({Kind.STRING, Kind.ANY})
#: The longest ``$regex`` pattern the server accepts (longer: "regular expression is too large").
MAX_PATTERN_BYTES: Final = 32761
_ALL_KINDS: Final = frozenset(Kind)


def register_lookup(cls: type[Lookup]) -> type[Lookup]:
    """Register a lookup class under its ``lookup_name`` (a class decorator)."""
    LOOKUPS[cls.lookup_name] = cls
    expire_all()  # a new lookup name may change how filter keys split
    return cls


def get_lookup(name: str) -> type[Lookup] | None:
    """Return the lookup class registered as ``name``, or ``None``."""
    return LOOKUPS.get(name)


def escape_regex(text: str) -> str:
    """Return a PCRE pattern matching ``text`` literally.

    ``re.escape`` backslashes every metacharacter, which PCRE reads as literals too; a NUL is
    written ``\\x00`` because the server refuses a pattern holding a raw NUL byte.
    """
    return re.escape(text).replace("\x00", "\\x00")


def _elements(field: FieldType) -> FieldType:
    """The type a lookup testing a list's elements validates its values as: the elements'
    own, one level only (a ``list[int]`` for a ``list[list[int]]``): MongoDB's filters look
    one level into an array, so ``{"grid": 1}`` matches no ``[[1, 2]]``."""
    if field.kind is Kind.LIST and field.item is not None:
        return field.item
    return field


#: The most levels an ``F()`` expression may nest once rendered: MongoDB's 100 less what
#: wraps it at worst (a ``Sum`` in ``aggregate()``: the command, its pipeline, the
#: ``$group`` stage and spec, the output name, ``$sum``, ``$let``, ``vars`` and ``v``).
MAX_EXPRESSION_LEVELS: Final = MAX_DEPTH - 10


def check_expression_depth(expression: Expression, what: str, field: str | None = None) -> None:
    """Raise QueryError (naming ``what``, and ``field`` if given) when ``expression`` would
    nest deeper than :data:`MAX_EXPRESSION_LEVELS` once rendered: each arithmetic step and
    each ``Greatest``/``Least`` is an operator document holding a list (two levels), a number
    a ``{"$literal": ...}`` (one). Iterative, and run before the expression is walked by
    anything recursive: a chain built in a loop over a request's values may be thousands
    of steps long (the server refused past ~100 steps, untyped; Python's recursion limit
    came soon after)."""
    stack: list[tuple[Any, int]] = [(expression, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, CombinedExpression):
            children: tuple[Any, ...] = (node.lhs, node.rhs)
        elif isinstance(node, Extremum):
            children = node.arguments
        else:
            children = ()
            depth += 0 if isinstance(node, Expression) else 1  # {"$literal": n}
        if children:
            depth += 2
        if depth > MAX_EXPRESSION_LEVELS:
            raise QueryError(
                f"{what}: the F() expression nests deeper than MongoDB allows once written "
                f"out (at most {MAX_EXPRESSION_LEVELS} levels: about "
                f"{MAX_EXPRESSION_LEVELS // 2} arithmetic steps)",
                field=field,
            )
        stack.extend((child, depth) for child in children)


class Lookup:
    """Base of lookups: validate a value for a resolved path and render one condition."""

    lookup_name: ClassVar[str]
    #: Kinds of field (of its elements, for ``element_wise`` lookups on lists) accepted.
    kinds: ClassVar[frozenset[Kind]] = _ALL_KINDS
    #: On a list field, test the elements (MongoDB's own array semantics) rather than the list.
    element_wise: ClassVar[bool] = True
    #: Accept an ``F()`` expression as the value (compiled to ``$expr``).
    accepts_expressions: ClassVar[bool] = False
    #: The aggregation operator for ``$expr`` comparisons.
    expr_operator: ClassVar[str] = ""
    #: An ``F()`` comparison with a null or missing side is unknown (never matches), as in SQL.
    null_is_unknown: ClassVar[bool] = True

    __slots__ = ("expression_paths", "path", "subject", "target", "value")

    def __init__(
        self,
        target: ResolvedPath,
        value: Any,
        *,
        resolve_f: Callable[[str], ResolvedPath] | None = None,
    ) -> None:
        self.target = target
        self.path = target.path
        self.subject = _elements(target.field) if self.element_wise else target.field
        self.expression_paths: tuple[ResolvedPath, ...] = ()
        self.value: Any
        if isinstance(value, Expression):
            self.value = self._prepare_expression(value, resolve_f)
            return
        if isinstance(value, ArrayUpdate):
            raise QueryError(
                f"{self.path!r}: push/pull/add_to_set belong in update(), not in a filter",
                field=self.path,
            )
        self._check_kind()
        self.value = self.prepare(value)

    # -- validation --------------------------------------------------------------------------

    def _check_kind(self) -> None:
        if self.subject.kind not in self.kinds:
            raise QueryError(
                f"lookup {self.lookup_name!r} does not apply to {self.path!r} "
                f"({self.target.field.label})",
                field=self.path,
            )

    def convert(self, value: Any, field: FieldType | None = None) -> Any:
        """Validate one value as the field's (element) type; return its BSON-ready form."""
        expected = field or self.subject
        try:
            converted = expected.convert(value, self.path)
        except QueryError:
            if expected.kind is Kind.OTHER and _whole_collection(expected, value):
                raise self._not_a_whole_value(expected, value) from None
            if expected.kind is Kind.LIST and not isinstance(value, list | tuple):
                raise self._not_an_element(expected, value) from None
            raise
        # After the type's own refusal, whose message says what the field takes: here only
        # what the type took by dropping or reading it as something else.
        if type(value) not in PLAIN_TYPES:  # the usual value skips the walk
            self.refuse_operators(value)
        return converted

    def _not_an_element(self, element: FieldType, value: Any) -> QueryError:
        """The error of a single value tested against the elements of a list of lists
        (``grid=1`` on a ``list[list[int]]``): MongoDB would compare it with each inner list
        and match nothing."""
        return QueryError(
            f"{self.path}__{self.lookup_name}: the elements of {self.path!r} "
            f"({self.target.field.label}) are lists ({element.label}), so it takes one of them "
            f"or the whole list, not the {type(value).__name__} {reprlib.repr(value)}; name "
            f"a position ({self.path}__0) to test the elements of an inner list",
            field=self.path,
        )

    def _not_a_whole_value(self, field: FieldType, value: Any) -> QueryError:
        """The error of a single value given for a collection odm compares as a whole."""
        return QueryError(
            f"{self.path}__{self.lookup_name}: {self.path!r} ({field.label}) is compared as a "
            f"whole, so it takes a whole value, not the {type(value).__name__} "
            f"{reprlib.repr(value)}; declare the field as a list (list[...]) to test its "
            "elements",
            field=self.path,
        )

    def refuse_operators(self, value: Any) -> None:
        """Raise QueryError, naming the field, when ``value`` holds a document with a key
        starting with ``$`` (``{"$ne": None}``, a ``SON``, a ``RawBSONDocument``) or holding
        ``.`` or NUL, or a regex or JavaScript object, at any depth
        (:func:`~odm.models.field_types.held_operator`, which an update value's check shares):
        a request body's operator is refused here, never dropped as a key the field's model
        does not declare (``lines={"$ne": None}`` was a line of default values) nor read as
        the text it holds (``Code("1")`` was ``1``)."""
        held = held_operator(value)
        if held is not None:
            raise self._not_a_value(held)

    def _not_a_value(self, what: str) -> QueryError:
        """The error of a value holding ``what``, which is no value to compare with."""
        return QueryError(
            f"{self.path}__{self.lookup_name}: the value holds {what}, which no filter value "
            "may hold (a lookup is named in the key, not in the value)",
            field=self.path,
        )

    def convert_text(self, value: Any) -> str:
        """Return ``value`` if it is a string, else raise QueryError."""
        if type(value) is not str and isinstance(value, NOT_VALUES):
            raise self._not_a_value(f"a {type(value).__name__} object")
        if not isinstance(value, str):
            raise QueryError(
                f"lookup {self.lookup_name!r} on {self.path!r} takes a string, "
                f"not {type(value).__name__}",
                field=self.path,
            )
        return value

    def convert_many(self, value: Any) -> list[Any]:
        """Validate a list of values (for ``in``, ``nin``, ``all``) one by one."""
        if isinstance(value, str | bytes | Mapping) or not isinstance(value, Iterable):
            raise QueryError(
                f"lookup {self.lookup_name!r} on {self.path!r} takes a list of values, "
                f"not {type(value).__name__}",
                field=self.path,
            )
        return [self.convert_or_none(v) for v in value]

    def convert_or_none(self, value: Any) -> Any:
        """Convert ``value``; ``None`` always passes (it matches null and missing fields)."""
        return None if value is None else self.convert(value)

    def convert_bool(self, value: Any) -> bool:
        """Validate a boolean switch (``isnull=True``)."""
        if type(value) not in PLAIN_TYPES:
            self.refuse_operators(value)
        try:
            return _BOOL.validate_python(value)
        except PydanticValidationError:
            raise QueryError(
                f"lookup {self.lookup_name!r} on {self.path!r} takes True or False",
                field=self.path,
            ) from None

    def prepare(self, value: Any) -> Any:
        """Validate and convert the user's value; return what :meth:`operand` renders."""
        return self.convert(value)

    def _prepare_expression(
        self, value: Expression, resolve_f: Callable[[str], ResolvedPath] | None
    ) -> Expression:
        if not self.accepts_expressions or resolve_f is None:
            raise QueryError(
                f"lookup {self.lookup_name!r} on {self.path!r} does not take an F() expression",
                field=self.path,
            )
        check_expression_depth(value, f"{self.path}__{self.lookup_name}", self.path)
        paths = tuple(resolve_f(name) for name in value.fields())
        arithmetic = isinstance(value, CombinedExpression | Extremum)
        for resolved in (self.target, *paths):
            listy = resolved.through_list or resolved.field.kind is Kind.LIST
            if listy or any(j.many for j in resolved.joins):
                raise QueryError(
                    f"F() comparisons need single values; {resolved.path!r} goes through a list",
                    field=resolved.path,
                )
            check_readable(resolved, f"{self.path}__{self.lookup_name}")
        for resolved in paths:
            if arithmetic and resolved.field.kind not in (Kind.NUMBER, Kind.ANY):
                raise QueryError(
                    f"F() arithmetic needs number fields; {resolved.path!r} is "
                    f"{resolved.field.label}",
                    field=resolved.path,
                )
        self.expression_paths = paths
        return value

    # -- rendering ---------------------------------------------------------------------------

    @property
    def joins(self) -> tuple[Join, ...]:
        """Return the joins this condition needs (its path's and its F() paths')."""
        if not self.expression_paths:
            return self.target.joins
        found = list(self.target.joins)
        for resolved in self.expression_paths:
            found.extend(j for j in resolved.joins if j not in found)
        return tuple(found)

    def operand(self) -> Any:
        """Return the condition on the field: a value, or a dict of our own operators."""
        raise NotImplementedError

    def as_mql(self) -> dict[str, Any]:
        """Return the MongoDB filter for this lookup."""
        if isinstance(self.value, Expression):
            by_name = {p.path: field_reference(p) for p in self.expression_paths}
            rhs = self.value.as_expr(by_name.__getitem__)
            compare = {self.expr_operator: [read_expression(self.target), rhs]}
            if not self.null_is_unknown:
                return {"$expr": compare}
            return self._known(compare)
        if self.target.element_parts:  # rare: tested first, so other paths pay no call
            return self.element_mql()
        return {self.target.db_path: self.operand()}

    def element_mql(self) -> dict[str, Any]:
        """Return the filter on a path picking a list element (``tags__0``,
        ``items__0__city``, ``grid__0``): null tests read that element alone (see
        :func:`_held`), and a list reached at a position has its elements tested (see
        :meth:`list_operand`)."""
        null = self.null_test()
        if null is not None:
            return _null_condition(self.target, null)
        if lands_on_list(self.target):
            return {self.target.db_path: self.list_operand()}
        return {self.target.db_path: self.operand()}

    def list_operand(self) -> Any:
        """Return the condition on a list reached at a position (``grid__0`` of a
        ``list[list[int]]``) for this lookup: :meth:`operand`, unless the lookup tests the
        list's elements (see :func:`_each_element`)."""
        return self.operand()

    def null_test(self) -> bool | None:
        """Return whether this condition is "null or missing" (``True``) or "holds a value"
        (``False``); ``None`` for any other condition."""
        return None

    def _known(self, compare: dict[str, Any]) -> dict[str, Any]:
        """Return the filter matching where the ``$expr`` comparison ``compare`` holds and
        neither side is null or missing.

        As in SQL (and Django): a comparison with NULL is unknown, so it never matches.
        Inside $expr a null or missing field sorts below every number and two missing fields
        are equal; so both sides, and every field the right side reads, must hold a value.
        Plain conditions (index-friendly) ahead of $expr; exclude() is the $nor of the whole,
        so it keeps the rows where either side is null."""
        mql: dict[str, Any] = {}
        for resolved in (self.target, *self.expression_paths):
            mql[resolved.db_path] = _held() if resolved.element_parts else {"$ne": None}
        mql["$expr"] = compare
        return mql




#: The collections that are not stored as an array (a ``MutableSequence`` or a ``NamedTuple``
#: is).
_NOT_ARRAYS: Final = (str, bytes, bytearray, Mapping)


def _whole_collection(field: FieldType, value: Any) -> bool:
    """Tell whether ``value``, refused by ``field`` (a type odm does not read as a list), is a
    single value given for a collection stored as an array (``seq=3`` on a
    ``MutableSequence[int]``): compared as a whole, such a field has no element to test."""
    if isinstance(value, list | tuple):
        return False
    peeled = peel(field.annotation)
    if peeled is None:
        return False
    collection = get_origin(peeled[0]) or peeled[0]
    return (
        isinstance(collection, type)
        and issubclass(collection, Collection)
        and not issubclass(collection, _NOT_ARRAYS)
    )


def _held() -> dict[str, Any]:
    """The condition of a path picking a list element (``tags.0``, ``items.0.price``) that
    holds a value, neither null nor missing.

    MongoDB's filters also read such a path's position as a field of each element: for
    ``items.0.price`` that field is missing, so null: ``{"$ne": None}`` would keep no
    document whose list has elements, and ``{"items.0.price": None}`` would keep every one;
    on an empty list ``{"tags.0": {"$ne": None}}`` holds. A missing value has no type, so
    this condition reads the element alone."""
    return {"$exists": True, "$not": {"$type": "null"}}


def lands_on_list(target: ResolvedPath) -> bool:
    """Tell whether ``target`` (a path picking a list element) ends at a position holding a
    declared list (``grid__0`` of a ``list[list[int]]``, ``pair__0`` of a
    ``tuple[list[int], int]``).

    MongoDB's filters search the elements of a list they reach by a field's name
    (``{"tags": "x"}``), never those of a list they reach by a position: ``{"grid.0": 1}``
    matches no ``[[1, 2]]``. A lookup testing elements takes ``$elemMatch`` there."""
    return target.field.kind is Kind.LIST and target.element_parts[-1] == target.db_path.count(".")


def _each_element(operators: dict[str, Any]) -> dict[str, Any]:
    """The condition that an element of a list reached at a position meets ``operators``
    (our own, such as ``{"$gt": 1}``)."""
    return {"$elemMatch": operators}


def _no_element(values: list[Any]) -> dict[str, Any]:
    """The condition that no element of a list reached at a position is one of ``values``."""
    return {"$not": {"$elemMatch": {"$in": values}}}


def _unordered(field: FieldType) -> bool:
    """Tell whether the list field ``field`` is a set or a frozenset (stored as an array in
    whatever order Python iterated it)."""
    peeled = peel(field.annotation)
    container = peeled[0] if peeled is not None else None
    return container in (set, frozenset) or get_origin(container) in (set, frozenset)


def _is_or_holds(path: str, holds: dict[str, Any], values: list[Any]) -> dict[str, Any]:
    """The filter that the list at ``path`` (reached at a position, on a list of lists) meets
    ``holds`` (a condition on its elements), or, when ``[]`` is among ``values``, is itself
    empty: ``[]`` is both an empty list and an empty element, as MongoDB's equality reads it
    on a list of lists without a position (``{"grid": {"$in": [[]]}}`` matches ``[]``)."""
    if [] not in values:
        return {path: holds}
    return {"$or": [{path: {"$eq": []}}, {path: holds}]}


def _none_of(condition: dict[str, Any]) -> dict[str, Any]:
    """The filter that ``condition`` does not hold (an ``$or`` becomes a ``$nor``)."""
    if list(condition) == ["$or"]:
        return {"$nor": condition["$or"]}
    return {"$nor": [condition]}


def _null_condition(target: ResolvedPath, null: bool) -> dict[str, Any]:
    """The filter on ``target`` (a path picking a list element) of ``null`` (null or missing)
    or, with ``null`` False, of a value (see :func:`_held`)."""
    held = {target.db_path: _held()}
    return {"$nor": [held]} if null else held


def _literal(value: Any) -> Any:
    # A dict or list operand is wrapped in $eq so that it is plainly an equality on a literal
    # document/array, never a bag of operators (its keys are checked anyway).
    return {"$eq": value} if isinstance(value, dict | list) else value


@register_lookup
class Exact(Lookup):
    """``field=value``: equality; on a list field an element, or the whole list if a list."""

    lookup_name = "exact"
    element_wise = False
    accepts_expressions = True
    expr_operator = "$eq"
    #: The value is one element of a list of lists (``grid=[1, 2]``), not the whole list.
    is_element: bool = False
    #: The value (``[]``) is both the whole list and an element of a list of lists.
    either: bool = False
    #: What joins the two readings of such a value at a position (see :meth:`element_mql`).
    either_operator: ClassVar[str] = "$or"

    def prepare(self, value: Any) -> Any:
        """Validate the value as the list (for a list value) or as its element type."""
        if value is None:
            return None
        field = self.subject
        if field.kind is Kind.LIST:
            if isinstance(value, list | tuple):
                return self.convert_list(value, field)
            if isinstance(value, set | frozenset) and _unordered(field):
                return self.convert(value)  # the whole set, as it is stored
            return self.convert(value, _elements(field))
        return self.convert(value)

    def convert_list(self, value: list[Any] | tuple[Any, ...], field: FieldType) -> Any:
        """Validate a list value as the whole list, else (on a list of lists, ``grid=[1,
        2]``) as one of its elements, noted in :attr:`is_element`: MongoDB's equality
        matches either, as ``tags="x"`` matches an element."""
        element = _elements(field)
        try:
            whole = self.convert(value)
        except QueryError:
            if element.kind is not Kind.LIST:
                raise
            converted = self.convert(value, element)
            self.is_element = True
            return converted
        if element.kind is Kind.LIST and not value:
            self.either = True  # [] is an empty list and an empty element
        return whole

    def element_mql(self) -> dict[str, Any]:
        """Return the filter on a path picking a list element; on a list of lists at a
        position, ``[]`` is the empty list or an empty element, as it is without one."""
        if self.either and lands_on_list(self.target):
            either = _is_or_holds(self.target.db_path, _each_element({"$eq": []}), [[]])
            return {self.either_operator: either["$or"]}
        return super().element_mql()

    def operand(self) -> Any:
        """Return the literal value (dicts and lists wrapped in ``$eq``)."""
        return _literal(self.value)

    def null_test(self) -> bool | None:
        """``field=None``: null or missing."""
        return True if self.value is None else None

    def list_operand(self) -> Any:
        """A list value is the whole list; another value (an inner list included, see
        :meth:`convert_list`) one of its elements."""
        if isinstance(self.value, list) and not self.is_element:
            return self.operand()
        return _each_element({"$eq": self.value})


def exact_literal_type(target: ResolvedPath) -> type | None:
    """Return the one type whose values ``Exact`` on ``target`` validates to themselves (only
    :func:`~odm.query.paths.check_literal` can refuse them), or ``None``.

    For such a value ``Exact(target, value).as_mql()`` is ``{target.db_path: value}``: the
    field's type (its elements' for a list, the target's id type for a reference) passes a
    value of exactly its plain type through unchanged (see ``FieldType.convert``), and a plain
    scalar is never wrapped in ``$eq``. Anything else (a subclass, a list, None) takes the
    lookup.
    """
    if target.element_parts and lands_on_list(target):
        return None  # its elements are matched by $elemMatch
    field = _elements(target.field)  # a single value on a list field matches an element
    if field.kind is Kind.REFERENCE:
        # A bare id: _convert_reference hands it to the target's id type.
        id_type = target_id_type(field.target)
        if id_type is None:
            return None
        field = id_type
    if field.kind in (Kind.ANY, Kind.REFERENCE, Kind.LIST):
        return None
    return field.as_is


@register_lookup
class NotEqual(Exact):
    """``field__ne=value``: not equal (missing fields match, as in MongoDB)."""

    lookup_name = "ne"
    expr_operator = "$ne"
    either_operator = "$nor"
    null_is_unknown = False  # MongoDB's $ne: a null or missing side differs from a value

    def operand(self) -> Any:
        """Return ``{"$ne": value}``."""
        return {"$ne": self.value}

    def null_test(self) -> bool | None:
        """``field__ne=None``: a value."""
        return False if self.value is None else None

    def list_operand(self) -> Any:
        """Not the whole list (a list value), or no element equal to the value."""
        if isinstance(self.value, list) and not self.is_element:
            return self.operand()
        return _no_element([self.value])


class _Comparison(Lookup):
    kinds = _ORDERED
    accepts_expressions = True
    operator: ClassVar[str]
    #: The value is a whole list, compared with the whole list (see :meth:`prepare`).
    whole: bool = False

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls.expr_operator = cls.operator

    def prepare(self, value: Any) -> Any:
        """Validate the value as the field's (element) type; on a list field, a list value
        as the whole list, which MongoDB compares with the whole stored list: element by
        element, the first that differs deciding, a shorter list first when it is the
        start of the other (as Python compares lists; in BSON's order of types)."""
        if isinstance(value, list | tuple) and self.target.field.kind is Kind.LIST:
            if _unordered(self.target.field):
                raise self._no_order(value)
            self.whole = True
            return self.convert(value, self.target.field)
        return self.convert(value)

    def _no_order(self, value: Any) -> QueryError:
        """The error of a whole list compared with a set, which is stored in the order the
        writing process happened to iterate it: no order a list could be compared with."""
        return QueryError(
            f"{self.path}__{self.lookup_name}: {self.path!r} ({self.target.field.label}) is a "
            f"set, whose elements have no order to compare the list {reprlib.repr(value)} with; "
            f"compare its elements ({self.path}__{self.lookup_name}=1) or test them "
            f"({self.path}__all=[...], {self.path}__size=2)",
            field=self.path,
        )

    def operand(self) -> Any:
        return {self.operator: self.value}

    def list_operand(self) -> Any:
        """An element compares so (see :func:`lands_on_list`); a whole list value, the
        list at the position."""
        return self.operand() if self.whole else _each_element(self.operand())


@register_lookup
class GreaterThan(_Comparison):
    """``field__gt=value``."""

    lookup_name = "gt"
    operator = "$gt"


@register_lookup
class GreaterThanOrEqual(_Comparison):
    """``field__gte=value``."""

    lookup_name = "gte"
    operator = "$gte"


@register_lookup
class LessThan(_Comparison):
    """``field__lt=value``."""

    lookup_name = "lt"
    operator = "$lt"


@register_lookup
class LessThanOrEqual(_Comparison):
    """``field__lte=value``."""

    lookup_name = "lte"
    operator = "$lte"


#: The comparison lookups whose condition, for a value of exactly the field's literal type, is
#: ``{db_path: {operator: value}}`` (see :func:`comparison_literal_type`), with their operators.
#: Only these classes: a lookup registered under one of their names (or a subclass) may
#: prepare its value otherwise, and takes the lookup.
LITERAL_COMPARISONS: Final[dict[type[Lookup], str]] = {
    GreaterThan: GreaterThan.operator,
    GreaterThanOrEqual: GreaterThanOrEqual.operator,
    LessThan: LessThan.operator,
    LessThanOrEqual: LessThanOrEqual.operator,
}


def comparison_literal_type(target: ResolvedPath) -> type | None:
    """Return the one type whose values the comparisons of :data:`LITERAL_COMPARISONS` on
    ``target`` validate to themselves (only :func:`~odm.query.paths.check_literal` can refuse
    them), or ``None``.

    A comparison tests the elements of a list field, as MongoDB does; its value is converted
    as that element type, which passes a value of exactly its plain type through unchanged
    (see ``FieldType.convert``). A kind the comparisons refuse, a reference (its id is
    looked up) and ``Any`` take the lookup.
    """
    if target.element_parts and lands_on_list(target):
        return None  # its elements are compared by $elemMatch
    field = _elements(target.field)
    if field.kind not in _ORDERED or field.kind in (Kind.ANY, Kind.REFERENCE, Kind.LIST):
        return None
    return field.as_is


@register_lookup
class Range(Lookup):
    """``field__range=(low, high)``: both ends included; through a list, one element lies
    within both (see :meth:`as_mql`)."""

    lookup_name = "range"
    kinds = _ORDERED

    def prepare(self, value: Any) -> Any:
        """Validate a pair of bounds."""
        if not isinstance(value, list | tuple) or len(value) != 2:
            raise QueryError(f"{self.path}__range takes a (low, high) pair", field=self.path)
        return [self.convert(value[0]), self.convert(value[1])]

    def bounds(self) -> dict[str, Any]:
        """Return ``{"$gte": low, "$lte": high}``."""
        return {"$gte": self.value[0], "$lte": self.value[1]}

    def operand(self) -> Any:
        """Return the bounds; on a list, an element within both (``$elemMatch``): MongoDB
        meets each operator of ``{"nums": {"$gte": 1, "$lte": 3}}`` with any element, so
        ``[0, 5]`` would lie "within" 1 and 3."""
        if self.target.field.kind is Kind.LIST:
            return _each_element(self.bounds())
        return self.bounds()

    def as_mql(self) -> dict[str, Any]:
        """Return the filter; through a declared list (``lines__qty``, ``orders__lines__qty``)
        one element of the last such list holds a value within both ends, for the reason
        :meth:`operand` gives. (Through a list of references the list is joined: there
        :func:`odm.query.where.one_target` puts one target's conditions in ``$elemMatch``.)"""
        mql = super().as_mql()
        ends = self.target.list_parts
        if not ends or self.target.field.kind is Kind.LIST:
            return mql
        db_path = self.target.db_path
        parts = db_path.split(".")
        if ends[-1] == len(parts):
            # The path ends at the list's elements themselves (``authors__id``: the stored
            # ids of a list of references): they are met whole, with no field inside them.
            return {db_path: _each_element(mql[db_path])}
        within, rest = ".".join(parts[: ends[-1]]), ".".join(parts[ends[-1] :])
        return {within: _each_element({rest: mql[db_path]})}


@register_lookup
class In(Lookup):
    """``field__in=[...]``: the field (an element, on a list field) is one of the values."""

    lookup_name = "in"
    operator: ClassVar[str] = "$in"

    def prepare(self, value: Any) -> Any:
        """Validate every value as the field's (element) type."""
        return self.convert_many(value)

    def operand(self) -> Any:
        """Return ``{"$in": [...]}``."""
        return {self.operator: self.value}

    def element_mql(self) -> dict[str, Any]:
        """Return the filter on a path picking a list element: ``None`` among the values is
        tested as :func:`_null_condition` tests it (``$in: [None]`` there has the null
        reading of ``{path: None}``)."""
        if None in self.value:
            return self._with_null([v for v in self.value if v is not None])
        if [] in self.value and lands_on_list(self.target):
            return self._with_empty_list()
        return super().element_mql()

    def _with_empty_list(self) -> dict[str, Any]:
        """The filter at a list of lists reached at a position, ``[]`` among the values
        (see :func:`_is_or_holds`)."""
        return self._one_of(self.value)

    def list_operand(self) -> Any:
        """An element is one of the values (see :func:`lands_on_list`)."""
        return _each_element({"$in": self.value})

    def _one_of(self, values: list[Any]) -> dict[str, Any]:
        """The filter that the list at this position (see :func:`lands_on_list`) holds one
        of ``values``, or is one (``[]``, see :func:`_is_or_holds`)."""
        return _is_or_holds(self.target.db_path, _each_element({"$in": values}), values)

    def _with_null(self, others: list[Any]) -> dict[str, Any]:
        """The element is null, missing or one of ``others``."""
        null = _null_condition(self.target, True)
        if not others:
            return null
        if lands_on_list(self.target):
            return {"$or": [self._one_of(others), null]}
        return {"$or": [{self.target.db_path: {"$in": others}}, null]}


@register_lookup
class NotIn(In):
    """``field__nin=[...]``: the field is none of the values."""

    lookup_name = "nin"
    operator = "$nin"

    def _with_empty_list(self) -> dict[str, Any]:
        """What ``in`` keeps, left out (``[]`` is the empty list too, see
        :func:`_is_or_holds`)."""
        return _none_of(self._one_of(self.value))

    def list_operand(self) -> Any:
        """No element is one of the values (see :func:`lands_on_list`)."""
        return _no_element(self.value)

    def _with_null(self, others: list[Any]) -> dict[str, Any]:
        """The element holds a value, none of ``others``."""
        held = _held()
        if not others:
            return {self.target.db_path: held}
        if lands_on_list(self.target):
            path = self.target.db_path
            return {"$and": [{path: held}, _none_of(self._one_of(others))]}
        held["$nin"] = others
        return {self.target.db_path: held}


@register_lookup
class All(Lookup):
    """``tags__all=[...]``: the list holds every one of the values."""

    lookup_name = "all"
    element_wise = False
    kinds = frozenset({Kind.LIST, Kind.ANY})

    def prepare(self, value: Any) -> Any:
        """Validate every value as the list's element type."""
        self.subject = _elements(self.subject)
        return self.convert_many(value)

    def operand(self) -> Any:
        """Return ``{"$all": [...]}``."""
        return {"$all": self.value}

    def list_operand(self) -> Any:
        """Each value is an element (see :func:`lands_on_list`)."""
        return {"$all": [_each_element({"$eq": value}) for value in self.value]}

    def element_mql(self) -> dict[str, Any]:
        """Return the filter on a path picking a list element: at a list of lists, ``[]``
        among the values is an empty element or the empty list itself (as
        ``{"grid": {"$all": [[]]}}`` reads it, see :func:`_is_or_holds`)."""
        if [] not in self.value or not lands_on_list(self.target):
            return super().element_mql()
        path = self.target.db_path
        empty = _is_or_holds(path, _each_element({"$eq": []}), [[]])
        others = [value for value in self.value if value != []]
        if not others:
            return empty
        return {"$and": [{path: {"$all": [_each_element({"$eq": v}) for v in others]}}, empty]}


@register_lookup
class Size(Lookup):
    """``tags__size=3``: the list has exactly that many elements."""

    lookup_name = "size"
    element_wise = False
    kinds = frozenset({Kind.LIST, Kind.ANY})

    def prepare(self, value: Any) -> Any:
        """Validate a non-negative int."""
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2**31:
            # The server parses $size as a 32-bit int: a larger one is a server error.
            raise QueryError(f"{self.path}__size takes an int >= 0 (and < 2**31)", field=self.path)
        return value

    def operand(self) -> Any:
        """Return ``{"$size": n}``."""
        return {"$size": self.value}


@register_lookup
class IsNull(Lookup):
    """``field__isnull=True``: the field is null or missing (``False``: it has a value)."""

    lookup_name = "isnull"
    element_wise = False

    def prepare(self, value: Any) -> Any:
        """Validate the boolean switch."""
        return self.convert_bool(value)

    def operand(self) -> Any:
        """Return ``None`` (null or missing) or ``{"$ne": None}``."""
        return None if self.value else {"$ne": None}

    def null_test(self) -> bool | None:
        """``isnull=True``: null or missing; ``False``: a value."""
        return bool(self.value)


@register_lookup
class Exists(Lookup):
    """``field__exists=True``: the key is present in the stored document (even if null)."""

    lookup_name = "exists"
    element_wise = False

    def prepare(self, value: Any) -> Any:
        """Validate the boolean switch."""
        return self.convert_bool(value)

    def operand(self) -> Any:
        """Return ``{"$exists": bool}``."""
        return {"$exists": self.value}


class _Pattern(Lookup):
    """Base of the text lookups: render a ``$regex`` built from escaped user text."""

    kinds = _TEXT
    insensitive: ClassVar[bool] = False
    template: ClassVar[str] = "{}"

    def prepare(self, value: Any) -> Any:
        return self.checked(self.template.format(escape_regex(self.convert_text(value))))

    def checked(self, pattern: str) -> str:
        """Return ``pattern``, or raise QueryError if it cannot be encoded (a lone surrogate,
        from a JSON ``"\\ud800"`` escape) or the server would refuse its length."""
        try:
            size = len(pattern.encode("utf-8"))
        except UnicodeEncodeError:
            raise QueryError(
                f"{self.path}__{self.lookup_name}: the text holds a lone surrogate, which "
                "cannot be encoded as UTF-8",
                field=self.path,
            ) from None
        if size > MAX_PATTERN_BYTES:
            raise QueryError(
                f"{self.path}__{self.lookup_name}: the text is too long for a pattern "
                f"(MongoDB takes at most {MAX_PATTERN_BYTES} bytes once escaped)",
                field=self.path,
            )
        return pattern

    def operand(self) -> Any:
        if self.insensitive:
            return {"$regex": self.value, "$options": "i"}
        return {"$regex": self.value}

    def list_operand(self) -> Any:
        """An element matches (see :func:`lands_on_list`)."""
        return _each_element(self.operand())


@register_lookup
class IExact(_Pattern):
    """``field__iexact="ann"``: equal ignoring case."""

    lookup_name = "iexact"
    insensitive = True
    # \A and \z, not ^ and $: "$" would also match before a trailing newline.
    template = r"\A{}\z"


@register_lookup
class Contains(_Pattern):
    """``name__contains="nn"``: substring; on a list field, the list holds the value."""

    lookup_name = "contains"
    kinds = _ALL_KINDS

    def prepare(self, value: Any) -> Any:
        """Validate an element value on a list, else the substring text."""
        if self.target.field.kind is Kind.LIST:
            return self.convert(value)
        if self.subject.kind not in _TEXT:
            raise QueryError(
                f"lookup 'contains' does not apply to {self.path!r} ({self.subject.label})",
                field=self.path,
            )
        return super().prepare(value)

    def operand(self) -> Any:
        """Return the element value (list field) or an escaped ``$regex``."""
        if self.target.field.kind is Kind.LIST:
            return _literal(self.value)
        return super().operand()

    def list_operand(self) -> Any:
        """An element is the value (see :func:`lands_on_list`)."""
        return _each_element({"$eq": self.value})

    def element_mql(self) -> dict[str, Any]:
        """Return the filter on a path picking a list element: at a list of lists, ``[]`` is
        an empty element or the empty list itself (see :func:`_is_or_holds`)."""
        if self.value == [] and lands_on_list(self.target):
            return _is_or_holds(self.target.db_path, self.list_operand(), [[]])
        return super().element_mql()


@register_lookup
class IContains(_Pattern):
    """``name__icontains="nn"``: substring ignoring case; on a list, an element ignoring case."""

    lookup_name = "icontains"
    insensitive = True

    def prepare(self, value: Any) -> Any:
        """Escape the text; on a list field the whole element must match."""
        text = escape_regex(self.convert_text(value))
        return self.checked(rf"\A{text}\z" if self.target.field.kind is Kind.LIST else text)


@register_lookup
class StartsWith(_Pattern):
    """``name__startswith="A"``."""

    lookup_name = "startswith"
    template = "^{}"


@register_lookup
class IStartsWith(StartsWith):
    """``name__istartswith="a"``."""

    lookup_name = "istartswith"
    insensitive = True


@register_lookup
class EndsWith(_Pattern):
    """``name__endswith="n"``."""

    lookup_name = "endswith"
    template = r"{}\z"


@register_lookup
class IEndsWith(EndsWith):
    """``name__iendswith="N"``."""

    lookup_name = "iendswith"
    insensitive = True


@register_lookup
class Regex(_Pattern):
    """``name__regex=r"^A.n$"``: a pattern chosen by the developer (the only unescaped text)."""

    lookup_name = "regex"

    def prepare(self, value: Any) -> Any:
        """Validate a string pattern without NUL bytes."""
        pattern = self.convert_text(value)
        if "\x00" in pattern:
            raise QueryError(f"{self.path}__{self.lookup_name}: NUL in a pattern", field=self.path)
        return self.checked(pattern)


@register_lookup
class IRegex(Regex):
    """``name__iregex=r"^a"``: a pattern, ignoring case."""

    lookup_name = "iregex"
    insensitive = True
