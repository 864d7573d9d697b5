from tests.providers.conftest import schwab  # noqa: F401 - the local Schwab peer, as a fixture here too
