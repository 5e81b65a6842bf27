"""Q trees and their compilation: rules that mutation testing (``nox -s mutation``) found
unguarded in odm/query/q.py and odm/query/where.py (see docs/mutation-testing.md)."""

from __future__ import annotations

import pytest
from test_query_models import QCustomer, QOrder

from odm.aggregates import Count
from odm.document import Document, Embedded
from odm.exceptions import QueryError
from odm.query import F, Q, Query
from odm.query.compiler import explain_query
from odm.query.where import MAX_Q_DEPTH, compile_q, split_lookup


def test_combining_q_with_something_else_names_it() -> None:
    with pytest.raises(TypeError, match=r"^cannot combine Q with dict$"):
        Q(x=1) & {"y": 2}  # type: ignore[operator]
    with pytest.raises(TypeError, match=r"^cannot combine Q with int$"):
        Q(x=1) | 3  # type: ignore[operator]


def test_combined_and_negated_nodes_have_exact_flags() -> None:
    both = Q(x=1) & Q(y=2)
    assert both.negated is False and both.connector == "AND"
    either = Q(x=1) | Q(y=2)
    assert either.negated is False and either.connector == "OR"
    negated = ~Q(age=1)
    assert negated.negated is True and negated.connector == "AND"
    # The flags are what compiles: ~(a | b) is a $nor of the $or.
    (where,) = compile_q(QCustomer, ~(Q(age=1) | Q(age=2)))
    assert where.mql == {"$nor": [{"$or": [{"age": 1}, {"age": 2}]}]}
    (where,) = compile_q(QCustomer, ~(Q(age=1) | Q(age=2)) & Q(name="ab"), split=False)
    assert where.mql == {"$nor": [{"$or": [{"age": 1}, {"age": 2}]}], "name": "ab"}


def test_q_repr_shows_connector_negation_and_each_child() -> None:
    assert repr(Q(x=1)) == "<Q: (x=1)>"
    assert repr(Q(x=1, y="a")) == "<Q: (x=1 AND y='a')>"
    assert repr(Q(x=1) | Q(y=2)) == "<Q: (<Q: (x=1)> OR <Q: (y=2)>)>"
    assert repr(~Q(x=1)) == "<Q: NOT (<Q: (x=1)>)>"
    assert repr(Q()) == "<Q: ()>"


def _nest(levels: int) -> Q:
    q = Q(age=1)
    for _ in range(levels):
        q = ~q  # a negated child is never flattened into its parent: one level each
    return q


def test_q_nesting_is_refused_past_the_limit_exactly() -> None:
    assert compile_q(QCustomer, _nest(MAX_Q_DEPTH))  # the limit itself compiles
    with pytest.raises(QueryError, match=rf"^Q objects nest deeper than {MAX_Q_DEPTH} levels$"):
        compile_q(QCustomer, _nest(MAX_Q_DEPTH + 1))
    # Within a node: an OR of nested NOTs counts the same levels.
    with pytest.raises(QueryError, match="nest deeper"):
        compile_q(QCustomer, Q(name="a") | _nest(MAX_Q_DEPTH))


def test_or_of_the_same_join_needs_it_once() -> None:
    (where,) = compile_q(QOrder, Q(customer__name="x") | Q(customer__age=3))
    assert where.mql == {
        "$or": [{"__odm_rel_customer.name": "x"}, {"__odm_rel_customer.age": 3}]
    }
    assert [join.path for join in where.joins] == ["customer"]
    (negated,) = compile_q(QOrder, ~Q(customer__name="x"))
    assert [join.path for join in negated.joins] == ["customer"]


def test_an_empty_branch_of_an_or_is_left_out() -> None:
    (kept,) = compile_q(QCustomer, Q._make((Q(age=1), Q()), Q.OR, False), split=False)
    assert kept.mql == {"age": 1}
    (single,) = compile_q(QCustomer, Q._make((Q(age=1),), Q.OR, False), split=False)
    assert single.mql == {"age": 1}
    (both,) = compile_q(QCustomer, Q(age=1) | Q(age=2), split=False)
    assert both.mql == {"$or": [{"age": 1}, {"age": 2}]}


def test_elemmatch_on_a_list_of_dicts_compiles_nested_q_against_the_element() -> None:
    (where,) = compile_q(QOrder, Q(items__elemmatch=Q(sku="a") | ~Q(qty__gt=1)))
    assert where.mql == {
        "items": {"$elemMatch": {"$or": [{"sku": "a"}, {"$nor": [{"qty": {"$gt": 1}}]}]}}
    }


def _grouped() -> Query:
    query = Query(QOrder)
    query.set_values(("status",), "dicts")
    query.add_annotations({"n": Count()})
    return query


def test_filters_beside_annotations_keep_their_joins_and_f_expressions() -> None:
    query = _grouped()
    query.add_filter(customer__name="x")
    query.add_filter(total__gt=F("paid"))
    stages = explain_query(query)["aggregate"]
    assert stages[0] == {
        "$match": {
            "total": {"$ne": None}, "paid": {"$ne": None}, "$expr": {"$gt": ["$total", "$paid"]}
        }
    }
    assert stages[1]["$lookup"]["as"] == "__odm_rel_customer"
    assert {"$match": {"__odm_rel_customer.name": "x"}} in stages


def test_annotation_filter_errors_name_the_annotation() -> None:
    with pytest.raises(QueryError, match=r"^unknown lookup 'nope' on 'n'$") as unknown:
        _grouped().add_filter(n__nope=1)
    assert unknown.value.field == "n"
    with pytest.raises(QueryError, match=r"F\('n'\) on an annotation") as f_on_annotation:
        _grouped().add_filter(total=F("n"))
    assert f_on_annotation.value.field == "n"
    with pytest.raises(QueryError, match=r"^a condition mixes fields and annotations under OR/NOT"):
        _grouped().add_filter(Q(n__gt=1) | Q(status="a"))


class MBox(Embedded):
    size: int = 0


class MShelf(Document):
    boxes: list[MBox] = []
    sizes: list[int] = []

    class Meta:
        collection = "mut_shelves"


def test_a_declared_field_of_list_elements_wins_over_a_lookup_of_its_name() -> None:
    (field,) = compile_q(MShelf, Q(boxes__size=3))
    assert field.mql == {"boxes.size": 3}
    (lookup,) = compile_q(MShelf, Q(sizes__size=3))
    assert lookup.mql == {"sizes": {"$size": 3}}


def test_a_literal_value_is_still_checked() -> None:
    with pytest.raises(QueryError, match=r"^value for 'age': .* 64-bit integer") as caught:
        compile_q(QCustomer, Q(age=2**70))
    assert caught.value.field == "age"


def test_a_filter_name_must_be_a_string() -> None:
    with pytest.raises(QueryError, match=r"^a filter name must be a string, not int$"):
        compile_q(QCustomer, Q._make(((1, 2),), Q.AND, False))


def test_split_gives_one_fragment_per_and_child_never_for_an_or() -> None:
    assert [w.mql for w in compile_q(QCustomer, Q(age=1, name="ab"))] == [
        {"age": 1},
        {"name": "ab"},
    ]
    assert [w.mql for w in compile_q(QCustomer, Q(age=1) | Q(name="ab"))] == [
        {"$or": [{"age": 1}, {"name": "ab"}]}
    ]
    assert compile_q(QCustomer, Q(), split=False) == []
    assert compile_q(QCustomer, Q(), negate=True) == []


def test_annotation_filters_run_after_the_group() -> None:
    query = _grouped()
    query.add_filter(n=5)
    query.add_filter(n__in=[1, 2])
    stages = explain_query(query)["aggregate"]
    assert [next(iter(stage)) for stage in stages] == ["$group", "$project", "$match"]
    assert stages[-1] == {"$match": {"$and": [{"n": 5}, {"n": {"$in": [1, 2]}}]}}
    with pytest.raises(QueryError, match=r"^annotation 'n' has no sub-fields$") as caught:
        _grouped().add_filter(n__gt__x=1)
    assert caught.value.field == "n__gt__x"


def test_a_new_q_is_a_plain_and() -> None:
    q = Q(x=1)
    assert q.connector == "AND" and q.negated is False
    with pytest.raises(TypeError, match=r"^Q\(\) takes Q objects and keyword lookups, not dict$"):
        Q({"$where": "1"})  # type: ignore[arg-type]


def test_split_lookup_takes_the_last_part_as_the_lookup() -> None:
    target, lookup = split_lookup(QCustomer, "address__city__in")
    assert (target.db_path, lookup) == ("address.city", "in")
    target, lookup = split_lookup(QCustomer, "address__city")
    assert (target.db_path, lookup) == ("address.city", "exact")
    with pytest.raises(QueryError, match=r"^a filter name must be a string, not int$"):
        split_lookup(QCustomer, 1)  # type: ignore[arg-type]
    target, lookup = split_lookup(MShelf, "boxes__size")
    assert (target.db_path, lookup) == ("boxes.size", "exact")
    target, lookup = split_lookup(MShelf, "boxes__size__size")
    assert (target.db_path, lookup) == ("boxes.size", "size")


# -- elemmatch's refusals: each names the lookup's path, in its message and its field --------


def _refusal(**lookup: object) -> QueryError:
    with pytest.raises(QueryError) as caught:
        QCustomer.objects.filter(**lookup)
    return caught.value


def test_elemmatch_refuses_a_value_that_is_neither_conditions_nor_a_q() -> None:
    error = _refusal(addresses__elemmatch=["city"])
    assert str(error) == "addresses__elemmatch takes a dict of lookups or a Q"
    assert error.field == "addresses"


def test_elemmatch_on_scalars_takes_lookup_names_not_a_q() -> None:
    error = _refusal(scores__elemmatch=Q(gte=1))
    assert str(error) == "scores__elemmatch on a list of int takes a dict of lookups"
    assert error.field == "scores"
    error = _refusal(scores__elemmatch={"city": 1})
    assert str(error) == (
        "scores__elemmatch on a list of int takes lookup names (gte, lt, ...), not 'city'"
    )
    assert error.field == "scores"
    error = _refusal(scores__elemmatch={1: 2})
    assert str(error) == "scores__elemmatch: keys must be strings"
    assert error.field == "scores"


def test_elemmatch_refuses_f_expressions_inside() -> None:
    error = _refusal(addresses__elemmatch=Q(city=F("street")))
    assert str(error) == (
        "addresses__elemmatch cannot compare with F() expressions: MongoDB does not evaluate "
        "$expr inside $elemMatch (filter on F() outside elemmatch, or compare with plain values)"
    )
    assert error.field == "addresses"


def test_elemmatch_on_scalars_merges_lookups_and_refuses_one_twice() -> None:
    where = QCustomer.objects.filter(scores__elemmatch={"gte": 80, "lt": 90}).query.where
    assert where[0].mql == {"scores": {"$elemMatch": {"$gte": 80, "$lt": 90}}}
    where = QCustomer.objects.filter(scores__elemmatch={"exact": 3}).query.where
    assert where[0].mql == {"scores": {"$elemMatch": {"$eq": 3}}}
    error = _refusal(tags__elemmatch={"startswith": "a", "endswith": "b"})
    assert str(error) == "tags__elemmatch: $regex twice"
    assert error.field == "tags"


def test_elemmatch_of_an_empty_q_matches_any_element() -> None:
    where = QCustomer.objects.filter(addresses__elemmatch={}).query.where
    assert where[0].mql == {"addresses": {"$elemMatch": {}}}


def test_an_unknown_lookup_error_names_the_field() -> None:
    with pytest.raises(QueryError) as caught:
        QCustomer.objects.filter(name__nosuchlookup="x")
    assert caught.value.field is not None
