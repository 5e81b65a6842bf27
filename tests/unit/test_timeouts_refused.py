"""A timeout that is not a positive number of seconds is refused the same way everywhere.

``ValueError`` naming the value, raised before anything is sent: by ``odm.connect(timeout=)``,
``odm.operation_timeout()``, ``QuerySet.timeout()``, ``odm.transaction()``,
``odm.run_in_transaction()``, ``@odm.atomic(...)`` and each operation's ``timeout=`` (the
latter against the server, in tests/integration/documents/test_documents_lifecycle.py).
"""

from __future__ import annotations

import math

import pytest

import odm
from odm.timeouts import MAX_TIMEOUT


class TmItem(odm.Document):
    name: str = ""

    class Meta:
        collection = "timeouts_refused"


#: Besides zero, negatives and NaN: infinity and the first values past the server's limit on
#: ``maxTimeMS`` (2**31 - 1 ms), which the driver would otherwise send or fail to convert.
BAD = [0, 0.0, -1, -0.5, math.nan, math.inf, -math.inf, 1e300, 2**31 / 1000, 10**9]


@pytest.mark.parametrize("seconds", BAD)
async def test_connect(seconds: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        await odm.connect("mongodb://127.0.0.1:9/never", alias="tm_refused", timeout=seconds)
    with pytest.raises(odm.NotConnected):
        odm.get_connection("tm_refused")  # nothing was bound


@pytest.mark.parametrize("seconds", BAD)
def test_operation_timeout(seconds: float) -> None:
    with (
        pytest.raises(ValueError, match="timeout must be a positive number of seconds"),
        odm.operation_timeout(seconds),
    ):
        pass


@pytest.mark.parametrize("seconds", BAD)
def test_queryset_timeout(seconds: float) -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        TmItem.objects.timeout(seconds)


@pytest.mark.parametrize("seconds", BAD)
async def test_transactions(seconds: float) -> None:
    """Before a session is started: no server is needed to be refused."""
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        async with odm.transaction(timeout=seconds):
            pass
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        await odm.run_in_transaction(_nothing, timeout=seconds)
    with pytest.raises(ValueError, match="timeout must be a positive number of seconds"):
        odm.atomic(timeout=seconds)


async def _nothing() -> None:
    return None


def test_none_means_no_timeout_and_positive_values_pass() -> None:
    assert TmItem.objects.timeout(None).query.timeout is None
    assert TmItem.objects.timeout(0.25).query.timeout == 0.25
    assert TmItem.objects.timeout(MAX_TIMEOUT).query.timeout == (2**31 - 1) / 1000
    with odm.operation_timeout(None):
        pass
