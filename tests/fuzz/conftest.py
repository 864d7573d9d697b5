"""The providers' fake Schwab (and its closed circuit breakers) for the whole-API tests."""

from tests.providers.conftest import _closed_circuits, schwab  # noqa: F401 - fixtures used here
