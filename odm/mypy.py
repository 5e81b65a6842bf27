"""``odm.mypy``: a mypy plugin that checks querysets' lookups at type-check time.

List it in mypy's configuration instead of ``pydantic.mypy``, which it extends (everything the
pydantic plugin does, it does too)::

    [tool.mypy]
    plugins = ["odm.mypy"]

It reports, naming the valid choices:

- an unknown field or lookup in the keyword names of ``filter``, ``exclude``, ``get`` and
  ``update`` (``age__gtee=3``, ``agee=3``), following embedded documents and references
  (``address__city``, ``customer__age``);
- (on a polymorphic model, a first field it does not declare is left to the run-time check,
  since it may be a subclass's);
- an unknown field in the string arguments of ``order_by``, ``values``, ``values_list``,
  ``only``, ``defer`` and ``select_related`` (a ``-`` prefix is allowed in ``order_by``);
- a value whose static type cannot match the field for the plain lookups (``exact``, ``ne``,
  ``gt``, ``gte``, ``lt``, ``lte``), for fields and values of the simple scalar types (``str``,
  ``int``, ``float``, ``bool``, ``datetime``): ``filter(age="x")`` where ``age: int``.

What it cannot know statically (a value typed ``Any``, an ``F``/``Q`` expression, a name built
at run time, a field that is not a simple scalar) it leaves to the run-time checks.

It lets an optional reference take what a required one takes: a constructor argument for a field
declared ``Reference[X] | None`` accepts an ``X`` (and an id), as validation does. A plain
``Reference[X]`` field gets this from the ``Reference`` descriptor's ``__set__`` (PEP 681); a
union is not a descriptor, so without the plugin ``Book(editor=author)`` is refused.

It also types the optimistic lock's counter: a model whose ``Meta`` sets ``optimistic_lock =
True`` (or inherits it) gets ``version: int`` (``Meta.version_field``'s name), as the metaclass
gives it at run time, unless the class declares the field itself.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

# mypy.plugin first: it imports mypy's modules in the order they need (importing
# mypy.maptype first fails on a circular import when this module is imported outside mypy).
from mypy.plugin import ClassDefContext, FunctionSigContext, MethodContext  # isort: skip
from mypy.errorcodes import ErrorCode
from mypy.maptype import map_instance_to_supertype
from mypy.nodes import ARG_POS, AssignmentStmt, NameExpr, StrExpr, TypeInfo, Var
from mypy.plugins.common import add_attribute_to_class
from mypy.subtypes import is_subtype
from mypy.types import (
    AnyType,
    FunctionLike,
    Instance,
    NoneType,
    Type,
    TypeOfAny,
    UnionType,
    get_proper_type,
)
from pydantic.mypy import PydanticPlugin

__all__ = ["OdmPlugin", "plugin"]

QUERYSET = "odm.queryset.QuerySet"
KEYWORD_METHODS = frozenset({"filter", "exclude", "get", "update"})
STRING_METHODS = frozenset(
    {"order_by", "values", "values_list", "only", "defer", "select_related"}
)

#: The lookups of odm.query.lookups (kept here because a plugin must not import the package).
LOOKUPS = frozenset(
    {"all", "contains", "elemmatch", "endswith", "exact", "exists", "gt", "gte", "icontains",
     "iendswith", "iexact", "in", "intersects", "iregex", "isnull", "istartswith", "lt", "lte",
     "ne", "near", "nin", "range", "regex", "size", "startswith", "within"}
)
#: Lookups whose value is compared with the field's own type.
PLAIN = frozenset({"exact", "ne", "gt", "gte", "lt", "lte"})
#: The scalar types whose mismatches are reported (others convert at run time).
SCALARS = frozenset(
    {"builtins.str", "builtins.int", "builtins.float", "builtins.bool", "datetime.datetime"}
)
#: The error codes, so that a project can silence one (``disable_error_code = odm-value``).
LOOKUP_ERROR = ErrorCode("odm-lookup", "Check field and lookup names of querysets", "odm")
VALUE_ERROR = ErrorCode("odm-value", "Check values of plain lookups against the field", "odm")

DOCUMENT_BASES = frozenset({"odm.document.Document", "odm.document.Embedded"})
REFERENCE = "odm.models.fields.Reference"


def _is_model(info: TypeInfo) -> bool:
    return any(base.fullname in DOCUMENT_BASES for base in info.mro)


def _fields(info: TypeInfo) -> dict[str, Type | None]:
    """The fields a model declares (its own and its bases'), by name."""
    fields: dict[str, Type | None] = {}
    for base in reversed(info.mro):
        if base.fullname.startswith(("pydantic.", "builtins.")):
            continue
        for name, symbol in base.names.items():
            node = symbol.node
            if (isinstance(node, Var) and not node.is_classvar and not name.startswith("_")
                    and name != "objects" and not node.is_property):
                fields[name] = node.type
    if "id" in fields:
        fields["pk"] = fields["id"]
    return fields


def _polymorphic(info: TypeInfo) -> bool:
    """Tell whether the model (or a base) declares ``Meta.polymorphic``: a query on it may name
    its subclasses' fields (``odm.query.polymorphic``), which mypy cannot list."""
    for base in info.mro:
        meta = base.names.get("Meta")
        node = meta.node if meta is not None else None
        if isinstance(node, TypeInfo) and "polymorphic" in node.names:
            return True
    return False


def _unwrap(typ: Type | None) -> Type | None:
    """Drop ``None`` from an optional type."""
    proper = get_proper_type(typ)
    if isinstance(proper, UnionType):
        items = [i for i in proper.items if not isinstance(get_proper_type(i), NoneType)]
        if len(items) == 1:
            return items[0]
    return typ


def _model_inside(typ: Type | None) -> TypeInfo | None:
    """The model a path can continue into: an embedded document, a referenced document, or
    the item of a list of them."""
    proper = get_proper_type(_unwrap(typ))
    if not isinstance(proper, Instance):
        return None
    if proper.type.fullname == REFERENCE and proper.args:
        return _model_inside(proper.args[0])
    if proper.type.fullname in ("builtins.list", "builtins.tuple", "builtins.set") and proper.args:
        return _model_inside(proper.args[0])
    return proper.type if _is_model(proper.type) else None


def _resolve(
    model: TypeInfo, parts: list[str], what: str, ctx: MethodContext
) -> tuple[Type | None, list[str]] | None:
    """Follow ``parts`` through ``model``; report the first unknown field. Returns the last
    field's type and the parts left over (lookups), or ``None`` after an error."""
    info = model
    typ: Type | None = None
    for index, part in enumerate(parts):
        if part.isdigit() and index:  # a list position: the element's type, not checked
            return None
        fields = _fields(info)
        if part not in fields:
            if index and part in LOOKUPS:
                return typ, parts[index:]
            if not index and _polymorphic(info):
                return None  # maybe a subclass's field: the subclasses are known at run time
            valid = ", ".join(sorted(fields))
            ctx.api.fail(
                f'Unknown field "{part}" for {info.name} in {what}; valid fields: {valid}',
                ctx.context, code=LOOKUP_ERROR,
            )
            return None
        typ = fields[part]
        inner = _model_inside(typ)
        if inner is None:
            rest = parts[index + 1:]
            if rest and rest[0] not in LOOKUPS and not rest[0].isdigit():
                # A scalar has no fields: only lookups may follow.
                valid = ", ".join(sorted(LOOKUPS))
                ctx.api.fail(
                    f'Unknown lookup "{rest[0]}" on field "{part}" of {info.name} in {what}; '
                    f"valid lookups: {valid}",
                    ctx.context, code=LOOKUP_ERROR,
                )
                return None
            return typ, rest
        info = inner
    return typ, []


def _scalar(typ: Type | None) -> Instance | None:
    proper = get_proper_type(_unwrap(typ))
    if isinstance(proper, Instance) and proper.type.fullname in SCALARS:
        return proper
    return None


def _check_value(
    model: TypeInfo, key: str, field: Type | None, lookup: str, value: Type, what: str,
    ctx: MethodContext,
) -> None:
    if lookup not in PLAIN:
        return
    expected = _scalar(field)
    proper = get_proper_type(value)
    if isinstance(proper, AnyType) or expected is None:
        return
    if isinstance(proper, NoneType) or _scalar(proper) is None:
        return  # None, F, Q, a model...: left to run-time validation
    if isinstance(proper, Instance):
        proper = proper.copy_modified(last_known_value=None)  # "str", not "Literal['x']?"
    if not is_subtype(proper, _unwrap(field) or expected):
        ctx.api.fail(
            f'Value of type "{proper}" cannot match field "{key}" of {model.name} '
            f'({expected}) in {what}',
            ctx.context, code=VALUE_ERROR,
        )


def _model_of(ctx: MethodContext) -> TypeInfo | None:
    receiver = get_proper_type(ctx.type)
    if not isinstance(receiver, Instance):
        return None
    queryset = next((b for b in receiver.type.mro if b.fullname == QUERYSET), None)
    if queryset is None:
        return None
    mapped = map_instance_to_supertype(receiver, queryset)
    model = get_proper_type(mapped.args[0]) if mapped.args else None
    if isinstance(model, Instance) and _is_model(model.type):
        return model.type
    return None


def _check_call(
    method: str, chained: Callable[[MethodContext], Type] | None, ctx: MethodContext
) -> Type:
    model = _model_of(ctx)
    if model is not None:
        what = f"{method}()"
        for names, types, exprs, kinds in zip(
            ctx.arg_names, ctx.arg_types, ctx.args, ctx.arg_kinds, strict=True
        ):
            for name, typ, expr, kind in zip(names, types, exprs, kinds, strict=True):
                if method in KEYWORD_METHODS and name is not None:
                    resolved = _resolve(model, name.split("__"), what, ctx)
                    if resolved is not None:
                        field, rest = resolved
                        if method == "update" and rest:
                            ctx.api.fail(
                                f'Unknown field "{rest[0]}" in {what} keyword "{name}"',
                                ctx.context, code=LOOKUP_ERROR,
                            )
                        elif len(rest) > 1:
                            ctx.api.fail(
                                f'Only one lookup may end "{name}" in {what}', ctx.context,
                                code=LOOKUP_ERROR,
                            )
                        else:
                            lookup = rest[0] if rest else "exact"
                            if method != "update" and lookup in LOOKUPS:
                                _check_value(model, name, field, lookup, typ, what, ctx)
                elif method in STRING_METHODS and kind == ARG_POS and isinstance(expr, StrExpr):
                    path = expr.value.lstrip("-") if method == "order_by" else expr.value
                    resolved = _resolve(model, path.split("__"), what, ctx)
                    if resolved is not None and resolved[1]:
                        ctx.api.fail(
                            f'"{expr.value}" in {what} names a lookup, not a field',
                            ctx.context, code=LOOKUP_ERROR,
                        )
    return chained(ctx) if chained is not None else ctx.default_return_type


#: Where the lock options a class ends up with are kept for its subclasses (also in mypy's
#: cache, for subclasses in other modules).
LOCK_METADATA = "odm-lock"


def _meta_options(info: TypeInfo) -> dict[str, object]:
    """The literal ``optimistic_lock`` and ``version_field`` values of a class's own Meta."""
    symbol = info.names.get("Meta")
    meta = symbol.node if symbol is not None else None
    if not isinstance(meta, TypeInfo):
        return {}
    options: dict[str, object] = {}
    for statement in meta.defn.defs.body:
        if not isinstance(statement, AssignmentStmt) or len(statement.lvalues) != 1:
            continue
        target, value = statement.lvalues[0], statement.rvalue
        if not isinstance(target, NameExpr):
            continue
        if target.name == "optimistic_lock" and isinstance(value, NameExpr):
            if value.fullname in ("builtins.True", "builtins.False"):
                options["optimistic_lock"] = value.fullname == "builtins.True"
        elif target.name == "version_field" and isinstance(value, StrExpr):
            options["version_field"] = value.value
    return options


def _add_version_field(chained: Callable[[ClassDefContext], None] | None,
                       ctx: ClassDefContext) -> None:
    """Give a model under ``Meta.optimistic_lock`` its ``version: int``, as the metaclass
    does, when neither it nor a base declares the field; record its lock options for its
    subclasses. Then run pydantic's transformation."""
    info = ctx.cls.info
    inherited: dict[str, object] = next(
        (dict(base.metadata[LOCK_METADATA]) for base in info.mro[1:]
         if LOCK_METADATA in base.metadata),
        {"optimistic_lock": False, "version_field": "version"},
    )
    options = {**inherited, **_meta_options(info)}
    info.metadata[LOCK_METADATA] = options
    name = str(options["version_field"])
    if options["optimistic_lock"] and all(name not in base.names for base in info.mro):
        add_attribute_to_class(ctx.api, ctx.cls, name, ctx.api.named_type("builtins.int"))
    if chained is not None:
        chained(ctx)


def _accepting_documents(typ: Type) -> Type:
    """``typ`` with each ``Reference[X]`` of a union widened to what the ``Reference``
    descriptor's ``__set__`` takes (``X``, a ``Reference[X]``, or an id typed ``Any``)."""
    proper = get_proper_type(typ)
    if not isinstance(proper, UnionType):
        return typ
    items: list[Type] = []
    for item in proper.items:
        items.append(item)
        member = get_proper_type(item)
        if isinstance(member, Instance) and member.type.fullname == REFERENCE and member.args:
            items += [member.args[0], AnyType(TypeOfAny.explicit)]
    if len(items) == len(proper.items):
        return typ
    return UnionType.make_union(items)


def _constructor_accepting_documents(ctx: FunctionSigContext) -> FunctionLike:
    """A model's constructor whose optional references accept documents (module docstring)."""
    signature = ctx.default_signature
    return signature.copy_modified(
        arg_types=[_accepting_documents(arg) for arg in signature.arg_types]
    )


class OdmPlugin(PydanticPlugin):
    """pydantic's mypy plugin, plus the checks of queryset lookups and the lock's version
    field described above."""

    def get_base_class_hook(self, fullname: str) -> Callable[[ClassDefContext], None] | None:
        """Type the version field of the models under ``Meta.optimistic_lock``."""
        chained = super().get_base_class_hook(fullname)
        symbol = self.lookup_fully_qualified(fullname)
        if symbol is not None and isinstance(symbol.node, TypeInfo) and _is_model(symbol.node):
            return partial(_add_version_field, chained)
        return chained

    def get_function_signature_hook(
        self, fullname: str
    ) -> Callable[[FunctionSigContext], FunctionLike] | None:
        """Let a model's optional ``Reference`` fields take documents in its constructor."""
        chained = super().get_function_signature_hook(fullname)
        if chained is None:
            symbol = self.lookup_fully_qualified(fullname)
            if symbol is not None and isinstance(symbol.node, TypeInfo) and _is_model(symbol.node):
                return _constructor_accepting_documents
        return chained

    def get_method_hook(self, fullname: str) -> Callable[[MethodContext], Type] | None:
        """Check calls of the queryset methods that take field names."""
        chained = super().get_method_hook(fullname)
        owner, _, method = fullname.rpartition(".")
        if method in KEYWORD_METHODS | STRING_METHODS:
            info = self.lookup_fully_qualified(owner)
            node = info.node if info is not None else None
            if isinstance(node, TypeInfo) and any(b.fullname == QUERYSET for b in node.mro):
                return partial(_check_call, method, chained)
        return chained


def plugin(version: str) -> type[OdmPlugin]:
    """The entry point mypy calls (``plugins = ["odm.mypy"]``)."""
    return OdmPlugin
