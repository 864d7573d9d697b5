"""MkDocs hooks for the documentation site (mkdocs.yml ``hooks:``).

* Swagger UI for the HTTP API page is copied from the drf-spectacular-sidecar package (the
  same files the running API serves), so the site loads nothing from a CDN and vendors no
  second copy of them.
* ``<!-- readme:NAME -->`` in a page is replaced by the README's section between
  ``<!-- docs:NAME -->`` and ``<!-- /docs:NAME -->``, its ``docs/...`` links made relative to
  the page: the README's first screen (the two commands, the demo logins) is written once.
* ``<!-- python-reference:APP -->`` expands to a mkdocstrings ``::: module`` directive for every
  ``services.py`` and ``selectors.py`` of that app and its sub-packages (``accounts.mfa``...),
  and for every public module of a ``services/`` or ``selectors/`` package, so a new module
  appears in the Python reference without anyone remembering to add it.
* Every Mermaid diagram is rendered in headless Chromium with the site's own Mermaid; a
  diagram that does not render is logged as a warning, which fails ``mkdocs build --strict``.
  Set ``DOCS_SKIP_DIAGRAM_CHECK=1`` to skip this (``make docs`` does, for quick reloads).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

log = logging.getLogger("mkdocs.hooks.dashtam")

SWAGGER_FILES = ("swagger-ui-bundle.js", "swagger-ui.css", "swagger-ui-standalone-preset.js", "LICENSE")
MERMAID_JS = Path(__file__).parent / "docs" / "assets" / "javascripts" / "vendor" / "mermaid.min.js"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")
_FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>```|~~~)mermaid[ \t]*\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$", re.M | re.S)

_diagrams: list[tuple[str, int, str]] = []


def on_pre_build(config, **kwargs) -> None:
    _diagrams.clear()


README = Path(__file__).parent / "README.md"
_INCLUDE = re.compile(r"<!-- readme:(?P<name>[a-z-]+) -->")
_DOCS_LINK = re.compile(r"\]\(docs/(?P<target>[^)]+)\)")


def _readme_section(name: str, page_src: str) -> str:
    text = README.read_text(encoding="utf-8")
    start, end = f"<!-- docs:{name} -->", f"<!-- /docs:{name} -->"
    if start not in text or end not in text:
        log.warning("README.md has no section %s (included by %s)", name, page_src)
        return ""
    section = text.split(start, 1)[1].split(end, 1)[0]
    up = "../" * page_src.count("/")
    return _DOCS_LINK.sub(lambda m: f"]({up}{m.group('target')})", section)


_PYREF = re.compile(r"<!-- python-reference:(?P<app>[a-z_]+) -->")
ROOT = Path(__file__).parent


def _python_reference(app: str) -> str:
    paths = [path for name in ("services.py", "selectors.py") for path in (ROOT / app).rglob(name)]
    # A services (or selectors) package: each public module of it.
    paths += [path for name in ("services", "selectors") for package in (ROOT / app).rglob(name)
              if (package / "__init__.py").is_file() for path in package.glob("[!_]*.py")]
    modules = sorted(
        ".".join(path.relative_to(ROOT).with_suffix("").parts)
        for path in paths
        if "migrations" not in path.parts and "tests" not in path.parts
    )
    if not modules:
        log.warning("no services or selectors found for the app %s", app)
    return "\n\n".join(f"::: {module}" for module in modules)


def on_page_markdown(markdown: str, page, config, files, **kwargs) -> str:
    markdown = _PYREF.sub(lambda m: _python_reference(m.group("app")), markdown)
    markdown = _INCLUDE.sub(lambda m: _readme_section(m.group("name"), page.file.src_uri), markdown)
    for number, match in enumerate(_FENCE.finditer(markdown), start=1):
        _diagrams.append((page.file.src_uri, number, match.group("body")))
    return markdown


def on_post_build(config, **kwargs) -> None:
    _copy_swagger_ui(Path(config["site_dir"]))
    if os.environ.get("DOCS_SKIP_DIAGRAM_CHECK") == "1":
        log.info("Mermaid diagrams not checked (DOCS_SKIP_DIAGRAM_CHECK=1)")
        return
    _check_diagrams()


def _copy_swagger_ui(site_dir: Path) -> None:
    import drf_spectacular_sidecar

    source = Path(drf_spectacular_sidecar.__file__).parent / "static" / "drf_spectacular_sidecar" / "swagger-ui-dist"
    target = site_dir / "assets" / "swagger-ui"
    target.mkdir(parents=True, exist_ok=True)
    for name in SWAGGER_FILES:
        shutil.copyfile(source / name, target / name)


_RENDER = """async ([id, text]) => {
  try {
    await mermaid.parse(text);
    const { svg } = await mermaid.render(id, text);
    return svg.includes("Syntax error") ? "rendered as a syntax error" : "";
  } catch (e) {
    return String(e && e.message || e);
  }
}"""


def _check_diagrams() -> None:
    if not _diagrams:
        return
    if not os.path.exists(CHROMIUM):
        log.warning("cannot check %d Mermaid diagrams: no Chromium at %s (set DOCS_SKIP_DIAGRAM_CHECK=1 to skip)",
                    len(_diagrams), CHROMIUM)
        return
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                    args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page()
            page.set_content("<!doctype html><html><body></body></html>")
            page.add_script_tag(path=str(MERMAID_JS))
            page.evaluate("mermaid.initialize({startOnLoad: false})")
            for index, (src, number, text) in enumerate(_diagrams):
                error = page.evaluate(_RENDER, [f"check{index}", text])
                if error:
                    log.warning("Mermaid diagram %d in %s does not render: %s", number, src, error.splitlines()[0:3])
        finally:
            browser.close()
    log.info("rendered %d Mermaid diagrams in Chromium", len(_diagrams))
