"""Fixtures of the queryset integration tests."""

from qs_support import monitored_fixture

__all__ = ["monitored_fixture"]
