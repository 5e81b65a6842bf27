"""What the tests of sets' stored order share."""

from __future__ import annotations


def unsorted_pair() -> tuple[str, str]:
    """Two texts this process iterates, as a set, in other than sorted order (what the old
    code stored and sent): the sorted array is what another process stored."""
    for n in range(1000):
        first, second = f"t{n}", f"u{n}"
        if list({first, second}) != [first, second]:
            return first, second
    raise AssertionError("no pair iterated out of order")  # pragma: no cover
