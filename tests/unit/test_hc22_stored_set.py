"""``stored_set``: one order whatever order the elements come in, each stored value once.

Elements that differ in Python but are stored alike (datetimes in one millisecond, an aware and
a naive datetime for the same instant, an enum and its value) were stored twice, so the array
of a set read back from the database was not the array stored for it.
"""

from __future__ import annotations

import datetime as dt
import enum
import math
from typing import Any

import bson
from hypothesis import given, settings
from hypothesis import strategies as st

from odm.stored_order import StoredSet, bson_key, stored_set


class HcShade(enum.Enum):
    DARK = "d"
    LIGHT = "l"


def encodings(values: Any) -> list[bytes | str]:
    """The stored encodings of ``values``, in their order."""
    return [bson_key(value)[1] for value in values]


_DATETIMES = st.datetimes(
    min_value=dt.datetime(2000, 1, 1), max_value=dt.datetime(2000, 1, 1, 0, 0, 0, 5000)
).flatmap(lambda value: st.sampled_from([value, value.replace(tzinfo=dt.UTC)]))
_ELEMENTS = st.one_of(
    _DATETIMES,
    st.integers(-3, 3),
    st.floats(allow_nan=True, width=64),
    st.text(max_size=3),
    st.sampled_from(list(HcShade)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_ELEMENTS, max_size=8), st.randoms(use_true_random=False))
def test_the_stored_form_depends_only_on_the_elements(items: list[Any], random: Any) -> None:
    shuffled = list(items)
    random.shuffle(shuffled)
    stored = stored_set(items)
    assert type(stored) is StoredSet
    assert encodings(stored) == encodings(stored_set(shuffled))
    assert len(set(encodings(stored))) == len(stored)  # each stored value once
    assert set(encodings(stored)) == set(encodings(items))  # and every one of them


def test_datetimes_stored_alike_are_stored_once_in_time_order() -> None:
    instant = dt.datetime(2024, 5, 1, 12, 0, 0, 250_000)
    later = dt.datetime(2024, 5, 2)
    values = {later, instant, instant.replace(microsecond=250_999), instant.replace(tzinfo=dt.UTC)}
    stored = stored_set(values)
    assert [bson.decode(bson.encode({"": value}))[""] for value in stored] == [instant, later]


def test_an_enum_and_its_value_are_one_element() -> None:
    assert encodings(stored_set({HcShade.LIGHT, "l", "a"})) == encodings(["a", "l"])


def test_nans_are_one_element_and_zeros_of_both_signs_stay_apart() -> None:
    assert len(stored_set([math.nan, float("nan"), 1.0])) == 2
    zeros = encodings(stored_set([0.0, -0.0]))
    assert len(zeros) == 2 and zeros == encodings(stored_set([-0.0, 0.0]))
