"""The documentation site's own checks (mkdocs_hooks.py), which `make docs-build` relies on."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from tests.browser import require_chromium

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.browser
def test_a_mermaid_diagram_that_does_not_render_is_a_warning_which_fails_the_strict_build(caplog):
    require_chromium()
    import mkdocs_hooks

    mkdocs_hooks._diagrams[:] = [
        ("good.md", 1, "sequenceDiagram\n    A->>B: hello\n"),
        ("bad.md", 2, "sequenceDiagram\n    A->>B: BEGIN; lock; COMMIT\n"),  # ';' ends a message
    ]
    try:
        with caplog.at_level(logging.INFO, logger="mkdocs.hooks.dashtam"):
            mkdocs_hooks._check_diagrams()
    finally:
        mkdocs_hooks._diagrams.clear()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "Mermaid diagram 2 in bad.md does not render" in warnings[0]


def test_the_getting_started_page_includes_the_readme_quickstart_with_links_that_resolve():
    import mkdocs_hooks

    section = mkdocs_hooks._readme_section("quickstart", "getting-started.md")
    assert "make run" in section and "demo@dashtam.local" in section
    for target in re.findall(r"\]\(([^)#]+\.md)", section):
        assert (ROOT / "docs" / target).is_file(), target
    assert "](docs/" not in section
    # From a page one level down, the same links climb one level.
    assert "](../providers.md" in mkdocs_hooks._readme_section("quickstart", "operations/x.md")


def test_every_command_the_runbooks_name_exists_with_the_options_they_use():
    """A runbook whose command was renamed, or whose option was dropped, fails here."""
    from django.core.management import get_commands, load_command_class

    text = (ROOT / "docs" / "operations" / "runbooks.md").read_text()
    uses = re.findall(r"python manage\.py ([a-z_]+)((?: --[a-z-]+)*)", text)
    assert len(uses) >= 10
    commands = get_commands()
    for name, flags in uses:
        assert name in commands, f"runbooks name manage.py {name}, which does not exist"
        parser = load_command_class(commands[name], name).create_parser("manage.py", name)
        known = {opt for action in parser._actions for opt in action.option_strings}
        for flag in flags.split():
            assert flag in known, f"manage.py {name} has no option {flag}"
    for script in re.findall(r"scripts/[a-z_]+\.sh", text):
        assert (ROOT / script).is_file(), script
