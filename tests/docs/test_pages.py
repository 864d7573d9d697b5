"""GET /, /favicon.ico and /api/docs/ over plain HTTP: what a browser is sent."""

import re

import pytest

pytestmark = pytest.mark.django_db


def test_home_page_links_the_docs_and_the_admin_under_the_csp(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/html")
    assert "script-src 'self'" in response["Content-Security-Policy"]
    html = response.content.decode()
    assert 'href="/api/docs/"' in html and 'href="/admin/"' in html


def test_swagger_ui_page_has_no_inline_script(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    csp = response["Content-Security-Policy"]
    assert "'unsafe-inline'" not in csp.split("script-src", 1)[1].split(";", 1)[0]
    html = response.content.decode()
    scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, flags=re.S)
    assert scripts
    for attributes, body in scripts:
        assert "src=" in attributes and not body.strip(), attributes
    assert 'data-schema-url="/api/schema/"' in html
    init = re.search(r'src="([^"]*swagger-init[^"]*)"', html).group(1)
    assert client.get(init).status_code == 200


def test_favicon_is_served(client):
    response = client.get("/favicon.ico")
    assert response.status_code == 301
    assert client.get(response["Location"]).status_code == 200
