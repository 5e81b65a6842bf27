"""Retry: the backoff schedule of connect()."""

import pytest

import odm


def test_backoff_doubles_and_is_capped() -> None:
    retry = odm.Retry(attempts=6, backoff=0.2, max_backoff=1.0)
    assert [retry.delay(n) for n in range(1, 6)] == [0.2, 0.4, 0.8, 1.0, 1.0]


@pytest.mark.parametrize("kwargs", [{"attempts": 0}, {"backoff": -1.0}])
def test_bad_retry_is_refused(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        odm.Retry(**kwargs)  # type: ignore[arg-type]


def test_contrib_is_importable_as_odm_contrib() -> None:
    import odm.contrib.pytest as plugin

    assert hasattr(plugin, "odm_database")
