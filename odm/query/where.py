"""Compile a :class:`~odm.query.q.Q` tree against a model into MongoDB filter fragments.

Runs when a filter is added to a query (so errors surface at ``filter()`` time) and keeps, per
fragment, the joins it needs and whether it filters on annotations (after ``$group``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass
from functools import partial
from typing import Any, ClassVar, Final

from ..exceptions import QueryError
from ..models.derived import table
from ..models.field_types import INT64_MAX, INT64_MIN, PLAIN_SCALARS
from ..nesting import MAX_DEPTH, too_deep
from .expressions import Expression
from .lookups import (
    KEY_PLANS,
    LITERAL_COMPARISONS,
    LOOKUPS,
    Exact,
    In,
    IsNull,
    Lookup,
    NotEqual,
    NotIn,
    comparison_literal_type,
    exact_literal_type,
    get_lookup,
    register_lookup,
)
from .paths import (
    SEP,
    FieldType,
    Join,
    Kind,
    ResolvedPath,
    check_literal,
    check_name,
    remember,
    resolve,
)
from .q import Q

__all__ = [
    "Where",
    "and_mql",
    "compile_q",
    "condition_for",
    "exact_literal",
    "field_condition",
    "id_filter",
    "key_plan",
    "split_lookup",
]


@dataclass(frozen=True, slots=True)
class Where:
    """One compiled filter fragment: its MongoDB form and what it needs to run."""

    mql: dict[str, Any]
    joins: tuple[Join, ...] = ()
    #: Filters on annotations (values().annotate()): applied after ``$group``.
    post: bool = False


def and_mql(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """AND filter dicts: merged into one when their keys differ, else under ``$and``."""
    # Plain loops (no comprehension or generator): one call for the filter of every query.
    kept: list[dict[str, Any]] = []
    for part in parts:
        if part:
            kept.append(part)
    if len(kept) < 2:
        return kept[0] if kept else {}
    merged: dict[str, Any] = {}
    for part in kept:
        for key in part:
            if key in merged:
                return {"$and": kept}
        merged.update(part)
    return merged


def condition_for(
    target: ResolvedPath,
    lookup_name: str,
    value: Any,
    resolve_f: Callable[[str], ResolvedPath] | None = None,
) -> Where:
    """Build one lookup on a resolved path and return its fragment."""
    lookup_cls = LOOKUPS.get(lookup_name)
    if lookup_cls is None:
        raise QueryError(f"unknown lookup {lookup_name!r} on {target.path!r}", field=target.path)
    lookup: Lookup = _relation_lookup(target, lookup_cls)(target, value, resolve_f=resolve_f)
    return Where(lookup.as_mql(), lookup.joins)


def _elements(field: FieldType) -> FieldType:
    while field.kind is Kind.LIST and field.item is not None:
        field = field.item
    return field


def split_lookup(
    model: type[Any], key: str, root: FieldType | None = None
) -> tuple[ResolvedPath, str]:
    """Split ``address__city__in`` into its resolved path and its lookup name (``exact``).

    A declared field wins over a lookup of the same name (an embedded ``size`` field is a
    field; write ``dims__size__size`` for the lookup); in a free-form dict the lookup wins.
    """
    if not isinstance(key, str):
        raise QueryError(f"a filter name must be a string, not {type(key).__name__}")
    head, _, last = key.rpartition(SEP)
    if head and last in LOOKUPS:
        resolved = resolve(model, head, root=root)
        element = _elements(resolved.field)
        declared = element.kind is Kind.MODEL and any(
            last in m.model_fields for m in element.models
        )
        if not declared:
            return resolved, last
    return resolve(model, key, root=root), "exact"


def key_plan(model: type[Any], key: str) -> tuple[ResolvedPath, type[Lookup], type | None]:
    """Return the resolved path, the lookup class and the literal type (see
    :func:`~odm.query.lookups.exact_literal_type`; ``None`` unless the lookup is ``exact``) of
    a filter key (``price__gte``), cached per model (errors are raised, never cached)."""
    per_model = table(model, KEY_PLANS)
    found: tuple[ResolvedPath, type[Lookup], type | None] | None = per_model.get(key)
    if found is None:
        target, lookup_name = split_lookup(model, key)
        lookup_cls = LOOKUPS.get(lookup_name)
        if lookup_cls is None:
            raise QueryError(
                f"unknown lookup {lookup_name!r} on {target.path!r}", field=target.path
            )
        if any(join.many for join in target.joins):
            literal = None  # see one_target: compile_kwargs checks it in its general path
        elif lookup_cls is Exact:
            # also of _RelationExact's: a value of this type is the same condition there
            literal = exact_literal_type(target)
        elif lookup_cls in LITERAL_COMPARISONS:
            literal = comparison_literal_type(target)
        else:
            literal = None
        found = (target, _relation_lookup(target, lookup_cls), literal)
        if not target.via_subclass:  # see paths.resolve: not cached
            remember(per_model, key, found)
    return found


def exact_literal(
    target: ResolvedPath, literal: type | None, value: Any, operator: str | None = None
) -> dict[str, Any] | None:
    """Return ``{db_path: value}`` (``{db_path: {operator: value}}`` for a comparison) when
    ``value`` is of exactly ``literal``, the type that the lookup on ``target`` validates to
    itself (an ObjectId for an ObjectId field, a str for a str field: the lookup would only
    check it as a literal and render just that), else ``None`` (the value takes the lookup,
    and so the field's type)."""
    if type(value) is not literal:
        return None
    check_literal(value, target.path)
    return {target.db_path: value if operator is None else {operator: value}}


def field_condition(model: type[Any], key: str, value: Any) -> Where:
    """Return the ``key=value`` condition on a field path of ``model`` itself: the one entry
    for a keyword condition, from ``filter(**kwargs)``, a ``Q`` and ``get(id=...)`` alike. The
    key's meaning is cached, the value goes through the lookup every time (see
    :func:`exact_literal` for the one short cut, taken by equality and the comparisons)."""
    target, lookup_cls, literal = key_plan(model, key)
    mql = exact_literal(target, literal, value, LITERAL_COMPARISONS.get(lookup_cls))
    if mql is not None:
        return Where(mql, target.joins)
    by_name = partial(resolve, model) if isinstance(value, Expression) else None
    lookup = lookup_cls(target, value, resolve_f=by_name)
    return Where(lookup.as_mql(), lookup.joins)


#: The entry of each model's derived state holding, per id key, what :func:`id_filter` needs.
_ID_PLANS = "where.id_plans"


def id_filter(model: type[Any], key: str, value: Any) -> dict[str, Any]:
    """Return the whole filter of ``get(id=value)`` (``key``: ``id`` or ``id__exact``): the
    condition :func:`field_condition` makes, with the class's ``_cls`` condition.

    A value of exactly the id's literal type (an ``ObjectId`` for the default id), when that
    type can hold nothing :func:`~odm.query.paths.check_literal` refuses, is its own
    condition: the filter then comes from one lookup of a per-class plan. This runs once per
    ``get()``, the read of every one-at-a-time workload, where each function a call passes
    through costs more than its instructions (docs/performance-internals.md, "Warm and cold")."""
    plans = table(model, _ID_PLANS)
    plan: tuple[Any, str, dict[str, Any]] | None = plans.get(key)
    if plan is None:
        target, _lookup, literal = key_plan(model, key)
        class_filter = model._meta.class_filter()
        # A class filter of many classes holds a list: each filter gets a list of its own.
        fast = (
            literal in PLAIN_SCALARS
            and not target.joins
            and all(type(v) is str for v in class_filter.values())
        )
        plan = (literal if fast else None, target.db_path, class_filter)
        if not target.via_subclass:  # as key_plan: a subclass's field is never cached
            plans[key] = plan
    literal, db_path, class_filter = plan
    if literal is not None and type(value) is literal:
        return {db_path: value, **class_filter}
    return {**field_condition(model, key, value).mql, **model._meta.class_filter()}


def _leaf(
    model: type[Any],
    key: Any,
    value: Any,
    root: FieldType | None,
    annotations: Mapping[str, FieldType],
) -> Where:
    if not isinstance(key, str):
        raise QueryError(f"a filter name must be a string, not {type(key).__name__}")
    if root is None and not annotations:
        return field_condition(model, key, value)
    first = key.split(SEP, 1)[0]
    if first in annotations:
        name, _, lookup_name = key.partition(SEP)
        if SEP in lookup_name:
            raise QueryError(f"annotation {name!r} has no sub-fields", field=key)
        check_name(name)
        target = ResolvedPath(name, (name,), name, annotations[name], (), False, False)
        where = condition_for(target, lookup_name or "exact", value)
        return Where(where.mql, (), post=True)
    target, lookup_name = split_lookup(model, key, root)

    def resolve_f(name: str) -> ResolvedPath:
        if name in annotations:
            raise QueryError(f"F({name!r}) on an annotation is not supported", field=name)
        return resolve(model, name, root=root)

    return condition_for(target, lookup_name, value, resolve_f)


#: How deep ``Q`` objects may nest once chains of one connector are flattened (each level is
#: two BSON levels of ``$or``/``$nor``: this keeps the filter within MongoDB's 100).
MAX_Q_DEPTH = 40


def _flat(q: Q) -> list[Q | tuple[str, Any]]:
    """The children of ``q``, with those of every non-negated child of the same connector
    spliced in (``q | a | b`` built in a loop is one ``$or`` of all, not a nest), in order."""
    out: list[Q | tuple[str, Any]] = []
    stack = [iter(q.children)]
    while stack:
        child = next(stack[-1], None)
        if child is None:
            stack.pop()
        elif isinstance(child, Q) and not child.negated and child.connector == q.connector:
            stack.append(iter(child.children))
        else:
            out.append(child)
    return out


#: What :func:`_node` returns for a node holding no lookup: its parent leaves it out.
_EMPTY = Where({})


def _node(
    model: type[Any],
    q: Q,
    root: FieldType | None,
    annotations: Mapping[str, FieldType],
    depth: int = 1,
) -> Where:
    if depth > MAX_Q_DEPTH:
        raise QueryError(f"Q objects nest deeper than {MAX_Q_DEPTH} levels")
    children: list[Where] = []
    for child in _flat(q):
        if isinstance(child, Q):
            node = _node(model, child, root, annotations, depth + 1)
            if node is not _EMPTY:
                children.append(node)
        else:
            children.append(_leaf(model, child[0], child[1], root, annotations))
    if not children:
        # No lookup at all below (Q(), Q(Q()), ~Q(Q())): neutral in any combination, as in
        # Django (an empty node is left out, never "match everything" inside an OR).
        return _EMPTY
    if any(c.joins for c in children):
        children = one_target(children) if q.connector == Q.AND else _each_one_target(children)
    posts = {c.post for c in children if c.mql}
    if len(posts) > 1 and (q.connector == Q.OR or q.negated):
        raise QueryError(
            "a condition mixes fields and annotations under OR/NOT; filter on them separately"
        )
    joins: list[Join] = []
    for c in children:
        joins.extend(j for j in c.joins if j not in joins)
    if q.connector == Q.OR:
        # A lookup that compiled to no condition matches everything, so the whole OR does
        # (empty Q nodes never get here: they were left out above).
        parts = [c.mql for c in children]
        mql = {} if not parts or any(not p for p in parts) else (
            parts[0] if len(parts) == 1 else {"$or": parts}
        )
    else:
        mql = and_mql([c.mql for c in children])
    if q.negated and mql:
        mql = {"$nor": [mql]}
    return Where(mql, tuple(joins), post=posts == {True})


def compile_q(
    model: type[Any],
    q: Q,
    *,
    negate: bool = False,
    root: FieldType | None = None,
    split: bool = True,
    annotations: Mapping[str, FieldType] | None = None,
) -> list[Where]:
    """Compile ``q`` (negated for ``exclude``) into fragments to be ANDed.

    With ``split`` a top-level AND comes back as one fragment per child, so that conditions
    needing no join can be matched before the ``$lookup`` stages, and those on annotations
    after ``$group``.
    """
    annotations = annotations or {}
    if negate:
        q = ~q if q else q
    if split and q.connector == Q.AND and not q.negated:
        out: list[Where] = []
        for child in _flat(q):
            if isinstance(child, Q):
                where = _node(model, child, root, annotations)
                if where.mql:
                    out.append(where)
            else:
                where = _leaf(model, child[0], child[1], root, annotations)
                if where.mql:
                    out.append(where)
        return one_target(out) if any(where.joins for where in out) else out
    where = _node(model, q, root, annotations)
    return [where] if where.mql else []


def compile_kwargs(model: type[Any], kwargs: Mapping[str, Any]) -> list[Where]:
    """Compile ``filter(**kwargs)`` (keyword lookups on the model's fields, ANDed): what
    :func:`compile_q` returns for ``Q(**kwargs)``, without building the Q.

    A value of exactly the key's literal type (see :func:`exact_literal`) that holds nothing
    :func:`~odm.query.paths.check_literal` refuses is its own condition, built here from the
    key's cached :func:`key_plan` without a call per key: this runs for every ``filter()`` of
    the one-at-a-time workloads, where each call a value passes through costs more than its
    instructions (docs/performance-internals.md, "Warm and cold"). Any other value takes
    :func:`field_condition`, the one general entry."""
    plans = table(model, KEY_PLANS)
    out: list[Where] = []
    joined = False
    for key, value in kwargs.items():
        plan = plans.get(key)
        target, lookup_cls, literal = plan if plan is not None else key_plan(model, key)
        kind = type(value)
        # check_literal's own first test, inline: such a value holds nothing it refuses.
        if kind is literal and (
            kind in PLAIN_SCALARS
            or (kind is str and value.isascii())
            or (kind is int and INT64_MIN <= value <= INT64_MAX)
        ):
            operator = LITERAL_COMPARISONS.get(lookup_cls)
            condition = {target.db_path: value if operator is None else {operator: value}}
            out.append(Where(condition, target.joins))
            continue
        where = field_condition(model, key, value)
        if where.mql:
            out.append(where)
            # A key through a list of references has no literal type (see key_plan): it
            # always comes here, so the keys of the model's own fields pay no test.
            joined = joined or bool(where.joins)
    return one_target(out) if joined else out


# -- conditions of one filter() call on a list of references: one target ---------------------
#
# Django's rule for a multi-valued relation: the conditions inside one ``filter()`` call must
# hold for the same related object, while chained ``filter()`` calls may each match another.
# A list of references is joined into an array of documents (``__odm_rel_authors``), and MongoDB
# matches each dotted condition on that array against any of its elements, independently:
# ``{"__odm_rel_authors.name": "a", "__odm_rel_authors.age": 3}`` also matches one author
# named ``a`` beside another aged 3. :func:`one_target` puts the positive conditions of one call
# on one list of references into one ``$elemMatch``, which one element must meet whole.
#
# A negative condition (``exclude()``, ``~Q``, ``__ne``, ``__nin``) is about every target ("no
# author named a"), as Django's subquery for a negated multi-valued condition is, and as the same
# lookup on a list of embedded documents is: it is left as it is. ``isnull`` is a positive
# condition, as in Django, whose join of a multi-valued relation is a LEFT JOIN: a document
# without targets is one row whose target's fields are all null. ``authors__nick__isnull=False``
# asks one author with a nick; ``isnull=True`` (and ``authors__nick=None``) one author without,
# or no author at all: the ``$elemMatch`` of such conditions has the alternative of an empty
# joined list (see :func:`_merged`). ``authors__isnull`` is about the relation: no author.
# A list of embedded documents keeps MongoDB's own reading (each condition any element,
# ``__elemmatch`` for one): it is part of the document, not a relation.
#
# One lookup may itself be several conditions (``authors__age__range=(1, 3)`` is ``$gte`` and
# ``$lte``, ``authors__tags__all=["x", "y"]`` one ``$all`` of two values): MongoDB meets each of
# them with any element too, so such a condition alone, or in a branch of an ``|``, is put in an
# ``$elemMatch`` as well. An ``$elemMatch`` made so for one part of a ``Q`` is opened again when
# the part is merged with the others of its call (``Q(authors__name="a") & (Q(authors__age=3,
# authors__tags="x") | Q(authors__age=4))``: one author meets all of it).

#: The operators whose condition is not met by one element: negations, and ``$expr``, which
#: ``$elemMatch`` refuses.
_NOT_ONE_ELEMENT: Final = frozenset({"$ne", "$nin", "$not", "$nor", "$expr", "$where", "$text"})


def one_target(parts: list[Where]) -> list[Where]:
    """Return ``parts`` (fragments ANDed by one ``filter()`` call, or by one AND of a ``Q``)
    with the positive conditions on each list of references merged into one ``$elemMatch``
    of the joined documents, at the place of the first of them; the others unchanged."""
    groups: dict[str, list[int]] = {}
    for index, part in enumerate(parts):
        key = _one_target_key(part)
        if key is not None:
            groups.setdefault(key, []).append(index)
    merged: dict[int, Where] = {}
    dropped: set[int] = set()
    for key, indexes in groups.items():
        first = parts[indexes[0]].mql
        if len(indexes) > 1 or _several_conditions(first) or _null_row_meets(first, key):
            merged[indexes[0]] = _merged(key, [parts[i] for i in indexes])
            dropped.update(indexes[1:])
    if not merged:
        return parts
    return [merged.get(i, part) for i, part in enumerate(parts) if i not in dropped]


def _each_one_target(branches: list[Where]) -> list[Where]:
    """Return the branches of an ``|``, each one target's conditions (see :func:`one_target`):
    a branch is one ``filter()`` call of its own."""
    return [one_target([branch])[0] for branch in branches]


def _several_conditions(mql: Mapping[str, Any]) -> bool:
    """Tell whether ``mql`` (a part of one list of references, see :func:`_one_target_key`)
    ANDs several conditions, which MongoDB would let different elements meet: several fields,
    several operators on one (``$gte`` and ``$lte``), an ``$all`` of several values."""
    if len(mql) > 1:
        return True
    for key, value in mql.items():
        if key == "$or":
            return any(_several_conditions(branch) for branch in value)
        if key == "$and":
            return True
        if isinstance(value, Mapping) and value and all(str(op).startswith("$") for op in value):
            operators = [op for op in value if op != "$options"]  # a $regex's flags
            all_of = value.get("$all")
            return len(operators) > 1 or (isinstance(all_of, list) and len(all_of) > 1)
    return False


def _one_target_key(part: Where) -> str | None:
    """The joined key of the list of references whose targets ``part`` tests, when it tests
    nothing else and one target can meet it whole (else ``None``)."""
    if part.post:
        return None
    many = _many_join(part.joins)
    if many is None or not _relative(part.mql, many.key):
        return None
    return many.key


def _many_join(joins: tuple[Join, ...]) -> Join | None:
    """The last join of ``joins``, when it joins a list of references (an array of
    documents)."""
    return joins[-1] if joins and joins[-1].many else None


def _relative(mql: Mapping[str, Any], many_key: str) -> bool:
    """Tell whether every field ``mql`` tests is in a document joined at ``many_key`` (or is
    one ``$elemMatch`` of them that :func:`one_target` made) and every operator in it is one
    an element can meet (see :data:`_NOT_ONE_ELEMENT`)."""
    prefix = many_key + "."
    for key, value in mql.items():
        if key == "$or" and _no_target_alternative(value, many_key) is not None:
            continue
        if key in ("$and", "$or"):
            if not isinstance(value, list) or not all(_relative(b, many_key) for b in value):
                return False
        elif key == many_key:
            if not _one_element_match(value):
                return False
        elif key.startswith("$") or not key.startswith(prefix) or _negative(value):
            return False
    return True


def _one_element_match(condition: Any) -> bool:
    """Tell whether ``condition`` on a joined list of references is ``{"$elemMatch": {...}}``
    alone: one target's conditions, already relative to it (see :func:`_merged`)."""
    return (
        isinstance(condition, Mapping)
        and list(condition) == ["$elemMatch"]
        and isinstance(condition["$elemMatch"], Mapping)
    )


def _negative(condition: Any) -> bool:
    """Tell whether a field's condition holds of no element rather than of one (``$ne``,
    ``$nin``, ``$not``, ``$exists: false``), or may not stand in an ``$elemMatch``."""
    if not isinstance(condition, Mapping):
        return False  # a value, or None: null or missing, met by one target (see one_target)
    for operator, operand in condition.items():
        if operator in _NOT_ONE_ELEMENT or (operator == "$exists" and not operand):
            return True
        if operator in ("$eq", "$in") and (operand is None or _holds_none(operand)):
            return True
    return False


def _holds_none(operand: Any) -> bool:
    """Tell whether an ``$in`` operand lists ``None`` (null or missing)."""
    return isinstance(operand, list) and None in operand


def _merged(key: str, parts: list[Where]) -> Where:
    """One fragment: an element of ``key`` (a joined list of references) meets every one of
    ``parts``, each rewritten relative to the element."""
    condition = and_mql([_stripped(part.mql, key) for part in parts])
    joins: list[Join] = []
    for part in parts:
        joins.extend(j for j in part.joins if j not in joins)
    one_target_meets: dict[str, Any] = {key: {"$elemMatch": condition}}
    if not _met_without_target(condition):
        return Where(one_target_meets, tuple(joins))
    # Django's LEFT JOIN: a document without targets is a row whose target is all null.
    return Where({"$or": [one_target_meets, {key: _NO_TARGET}]}, tuple(joins))


#: The condition on a joined list of references that it holds no target (see
#: :func:`_merged`).
_NO_TARGET: Final = {"$size": 0}


def _met_without_target(condition: Mapping[str, Any]) -> bool:
    """Tell whether ``condition``, relative to one target (see :func:`_stripped`), holds of
    the null row that a document without targets is (a SQL LEFT JOIN's): only where each of
    its fields is asked to be null (``isnull=True``, ``=None``), as in SQL, where any other
    comparison with NULL is not true."""
    if not condition:
        return False
    for key, value in condition.items():
        if key == "$or":
            met = any(_met_without_target(branch) for branch in value)
        elif key == "$and":
            met = all(_met_without_target(branch) for branch in value)
        else:
            met = value is None
        if not met:
            return False
    return True


def _null_row_meets(mql: Mapping[str, Any], many_key: str) -> bool:
    """Tell whether ``mql``, a part of one list of references (see
    :func:`_one_target_key`), also holds of a document without targets but does not say so
    yet (``{"__odm_rel_authors.nick": None}``, which MongoDB does not match with an empty
    list)."""
    return _met_without_target(_stripped(mql, many_key)) and not (
        list(mql) == ["$or"] and _no_target_alternative(mql["$or"], many_key) is not None
    )


def _no_target_alternative(branches: Any, many_key: str) -> Mapping[str, Any] | None:
    """The conditions on one target of ``branches``, when they are the ``$or`` that
    :func:`_merged` makes of one target's ``$elemMatch`` and the document without targets;
    else ``None``."""
    if not isinstance(branches, list) or len(branches) != 2:
        return None
    one, none = branches
    if none != {many_key: _NO_TARGET} or not isinstance(one, Mapping) or list(one) != [many_key]:
        return None
    return one[many_key]["$elemMatch"] if _one_element_match(one[many_key]) else None


# -- isnull on a list of references and on its targets (see one_target) ---------------------


class _TargetsIsNull(IsNull):
    """``authors__nick__isnull`` on the targets of a list of references: ``False`` is met by
    one target with a value (``{"$ne": None}`` on the joined list, what ``__ne=None`` is,
    would ask it of every target); ``True`` is ``{path: None}``, which :func:`one_target`
    also meets with a document without targets."""

    def as_mql(self) -> dict[str, Any]:
        """Return ``{joined list: {"$elemMatch": {field: {"$ne": None}}}}`` for ``False``."""
        if self.value:
            return super().as_mql()
        many_key = self.target.joins[-1].key
        field = self.target.db_path[len(many_key) + 1 :]
        return {many_key: {"$elemMatch": {field: {"$ne": None}}}}


def _no_target(no: bool) -> dict[str, Any]:
    """The condition on the stored list of a relation that it holds no target (``no``) or
    one: a list empty, null or missing is no target, as Django's LEFT JOIN row is."""
    no_target: list[Any] = [None, []]
    return {"$in": no_target} if no else {"$nin": no_target}


class _RelationIsNull(IsNull):
    """``authors__isnull`` (and ``authors__id__isnull``) on a list of references itself, as
    Django's on a many-to-many relation: ``True`` keeps the documents without a target (the
    list empty, null or missing), ``False`` those with one. Like Django's, it reads the
    stored ids, not the targets, as ``authors__id`` does: a dangling id is a target."""

    def operand(self) -> Any:
        """Return ``{"$in": [None, []]}`` or ``{"$nin": [None, []]}``."""
        return _no_target(bool(self.value))


class _RelationExact(Exact):
    """``authors=value`` and ``authors__id=value`` on a list of references: the stored ids
    hold the value; ``None`` is Django's ``authors=None``, ``authors__isnull=True``."""

    def operand(self) -> Any:
        """Return the value, or for ``None`` the no-target condition (see :func:`_no_target`)."""
        return _no_target(True) if self.value is None else super().operand()


class _RelationNotEqual(NotEqual):
    """``authors__ne=value`` on a list of references: no stored id is the value; for
    ``None``, the opposite of ``authors=None``: a target (see :class:`_RelationExact`)."""

    def operand(self) -> Any:
        """Return ``{"$ne": value}``, or for ``None`` the condition of holding a target."""
        return _no_target(False) if self.value is None else super().operand()


class _RelationIn(In):
    """``authors__in=[...]`` (``nin``) on a list of references: a stored id is (none is) one
    of the values; ``None`` among them is no target, as ``authors=None`` is."""

    def operand(self) -> Any:
        """Return ``{"$in": values}`` (``$nin``), with ``[]`` beside a ``None``: the empty
        list, which ``None`` does not match as a whole."""
        values = self.value
        return {self.operator: [*values, []] if None in values else values}


class _RelationNotIn(_RelationIn):
    """``authors__nin=[...]``: what ``authors__in`` keeps, left out."""

    lookup_name = "nin"
    operator = "$nin"


#: The lookups that read a list of references as a relation (see :func:`_relation_lookup`).
_ON_RELATION: Final[dict[type[Lookup], type[Lookup]]] = {
    IsNull: _RelationIsNull,
    Exact: _RelationExact,
    NotEqual: _RelationNotEqual,
    In: _RelationIn,
    NotIn: _RelationNotIn,
}


def _relation_lookup(target: ResolvedPath, lookup_cls: type[Lookup]) -> type[Lookup]:
    """Return the class of ``lookup_cls`` on ``target``: the ``isnull``, ``exact``, ``ne``,
    ``in`` or ``nin`` of a list of references (or of its ids, ``authors__id``), or the
    ``isnull`` of a field of its targets, where it is one (see :func:`one_target`)."""
    if lookup_cls not in _ON_RELATION or target.element_parts:
        return lookup_cls
    if _is_relation(target):
        return _ON_RELATION[lookup_cls]
    if lookup_cls is not IsNull:
        return lookup_cls
    many = _many_join(target.joins)
    if many is not None and target.db_path.startswith(many.key + "."):
        return _TargetsIsNull
    return lookup_cls


def _is_relation(target: ResolvedPath) -> bool:
    """Tell whether ``target`` is a list of references (``authors``) or the stored ids of one
    (``authors__id``: a reference read through the list that ends at it)."""
    field = target.field
    if field.kind is Kind.LIST:
        return field.item is not None and field.item.kind is Kind.REFERENCE
    ends = target.list_parts
    return (
        field.kind is Kind.REFERENCE
        and bool(ends)
        and ends[-1] == target.db_path.count(".") + 1
    )


def _stripped(mql: Mapping[str, Any], many_key: str) -> dict[str, Any]:
    """``mql`` relative to one element joined at ``many_key``: each field's name without
    ``many_key``'s prefix, ``$and`` / ``$or`` branches likewise, and an ``$elemMatch`` of
    the element (see :func:`_one_element_match`) its conditions."""
    start = len(many_key) + 1
    out: dict[str, Any] = {}
    opened: list[dict[str, Any]] = []
    for key, value in mql.items():
        alternative = _no_target_alternative(value, many_key) if key == "$or" else None
        if key == many_key:
            opened.append(dict(value["$elemMatch"]))
        elif alternative is not None:
            # made by _merged: its target's conditions, whose null row _merged weighs again
            opened.append(dict(alternative))
        elif key.startswith("$"):
            out[key] = [_stripped(branch, many_key) for branch in value]
        else:
            out[key[start:]] = value
    return and_mql([out, *opened]) if opened else out


# -- the lookup whose value is itself a set of conditions ------------------------------------


@register_lookup
class ElemMatch(Lookup):
    """``items__elemmatch={"sku": "A1", "qty__gte": 2}`` (or a Q): one element matches all.

    On a list of scalars the keys are lookup names: ``scores__elemmatch={"gte": 80, "lt": 90}``.
    """

    lookup_name = "elemmatch"
    element_wise = False
    kinds = frozenset({Kind.LIST, Kind.ANY})

    def prepare(self, value: Any) -> Any:
        """Compile the inner conditions against the list's element type, within the levels
        of nesting MongoDB allows (see :data:`_ELEMMATCH_ROOM`)."""
        enclosing = _ELEMMATCH_ROOM.get()
        levels, key = enclosing if enclosing is not None else (MAX_DEPTH, self.path)
        # The levels the operand {"$elemMatch": {...}} may take, counted as check_literal
        # counts a value's at this path: the document and each part of the path take one.
        room = levels - 1 - self.path.count(SEP)
        if room < 2:  # not even {"$elemMatch": {}}: refused before compiling deeper
            raise self._too_deep(key)
        token = _ELEMMATCH_ROOM.set((room - 1, key))
        try:
            mql = self._compile(value)
        except QueryError as error:
            raise self._through_list(error, key) from None
        finally:
            _ELEMMATCH_ROOM.reset(token)
        if too_deep(mql, room - 1):
            raise self._too_deep(key)
        return mql

    def _through_list(self, error: QueryError, key: str) -> QueryError:
        """Return ``error``, raised by a condition on a field of the list's elements, naming
        that field through the list (``lines__elemmatch={"qty": {...}}``: ``lines__qty``,
        not ``qty``, which may as well be a field of the document); an error naming the list
        itself or the outermost elemmatch (``key``, its depth) is returned as it is."""
        if error.field is None or error.field in (self.path, key):
            return error
        return QueryError(
            f"{self.path}__elemmatch: {error}", field=f"{self.path}{SEP}{error.field}"
        )

    def _too_deep(self, key: str) -> QueryError:
        return QueryError(
            f"{key}__elemmatch: its conditions nest deeper than MongoDB's {MAX_DEPTH} levels "
            "(the document, each part of the path and each nested elemmatch count)",
            field=key,
        )

    def _compile(self, value: Any) -> Any:
        item = self.subject.item if self.subject.kind is Kind.LIST else None
        item = item or FieldType(Kind.ANY, Any)
        if isinstance(value, Mapping):
            if item.kind not in (Kind.MODEL, Kind.DICT, Kind.ANY):
                return self._scalar(item, value, condition_for)
            value = Q(**{_key(k, self.path): v for k, v in value.items()})
        if not isinstance(value, Q):
            raise QueryError(
                f"{self.path}__elemmatch takes a dict of lookups or a Q", field=self.path
            )
        if item.kind not in (Kind.MODEL, Kind.DICT, Kind.ANY):
            raise QueryError(
                f"{self.path}__elemmatch on a list of {item.label} takes a dict of lookups",
                field=self.path,
            )
        parts = compile_q(self.target_model(), value, root=item, split=False)
        if any(part.joins for part in parts):
            raise QueryError(f"{self.path}__elemmatch cannot cross references", field=self.path)
        if any(_has_expr(part.mql) for part in parts):
            # The server refuses $expr inside $elemMatch ("$expr can only be applied to the
            # top-level document"): say so now, naming the lookup, not at run time.
            raise QueryError(
                f"{self.path}__elemmatch cannot compare with F() expressions: MongoDB does not "
                "evaluate $expr inside $elemMatch (filter on F() outside elemmatch, or compare "
                "with plain values)",
                field=self.path,
            )
        return parts[0].mql if parts else {}

    def _scalar(
        self, item: FieldType, value: Mapping[str, Any], condition_for: Callable[..., Any]
    ) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name, sub in value.items():
            if get_lookup(_key(name, self.path)) is None:
                raise QueryError(
                    f"{self.path}__elemmatch on a list of {item.label} takes lookup names "
                    f"(gte, lt, ...), not {name!r}",
                    field=self.path,
                )
            element = ResolvedPath(self.path, (), "", item, (), False, False)
            mql = condition_for(element, name, sub).mql[""]
            # {"$gte": 1} merges; a bare value (exact) becomes {"$eq": value}.
            mql = mql if isinstance(mql, dict) and not _is_literal(mql) else {"$eq": mql}
            for op, operand in mql.items():
                if op in out:
                    raise QueryError(f"{self.path}__elemmatch: {op} twice", field=self.path)
                out[op] = operand
        return out

    def target_model(self) -> type[Any]:
        """Return a model class name holder for error messages."""
        models = self.subject.item.models if self.subject.item else ()
        return models[0] if models else _FreeForm

    def operand(self) -> Any:
        """Return ``{"$elemMatch": {...}}``."""
        return {"$elemMatch": self.value}


#: While an ``__elemmatch`` compiles its conditions: the levels of nesting left to them (its
#: element being their document) and the filter key of the outermost elemmatch, which an error
#: names; ``None`` outside. Each nested elemmatch takes two levels at least, so a request
#: body nesting elemmatches is refused past MongoDB's depth instead of recursing until
#: Python's own limit. A context variable rather than a parameter: the conditions are
#: compiled by the functions above, through the lookup whose value they are.
_ELEMMATCH_ROOM: ContextVar[tuple[int, str] | None] = ContextVar(
    "odm_elemmatch_room", default=None
)


def _has_expr(mql: Any) -> bool:
    """Tell whether a compiled condition holds ``$expr`` (at any depth of $and/$or/$nor)."""
    if isinstance(mql, Mapping):
        return any(key == "$expr" or _has_expr(sub) for key, sub in mql.items())
    if isinstance(mql, list):
        return any(_has_expr(sub) for sub in mql)
    return False


def _is_literal(mql: dict[str, Any]) -> bool:
    return not all(isinstance(k, str) and k.startswith("$") for k in mql)


def _key(name: Any, path: str) -> str:
    """Return ``name``, a key of an elemmatch's dict, refused (naming the list) unless it is
    a string that is no operator: a request body's ``{"$ne": None}`` is no lookup."""
    if not isinstance(name, str):
        raise QueryError(f"{path}__elemmatch: keys must be strings", field=path)
    if name.startswith("$"):
        raise QueryError(
            f"{path}__elemmatch takes lookups (field__lookup keys), not the operator {name!r}",
            field=path,
        )
    return name


class _FreeForm:
    """Stands for the (unnamed) model of free-form list elements in error messages."""

    model_fields: ClassVar[dict[str, Any]] = {}

