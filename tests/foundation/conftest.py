from pathlib import Path

import pytest


@pytest.fixture
def test_templates(settings):
    """Templates used only by tests (tests/templates) come after the product's."""
    templates = [dict(t) for t in settings.TEMPLATES]
    templates[0]["DIRS"] = [*templates[0]["DIRS"], Path(__file__).parents[1] / "templates"]
    settings.TEMPLATES = templates
