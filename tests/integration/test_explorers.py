"""The explorers work offline: GraphiQL and Swagger UI load only this server's files, under a strict CSP.

The page checks run everywhere; the browser test drives Debian's `chromium` (with `chromium-driver`) headless,
with every host name but the server's unresolvable, and skips saying so when they are not installed.
"""

from __future__ import annotations

import asyncio
import re
import shutil
from collections.abc import Iterator

import pytest
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.http.explorer import CONTENT_SECURITY_POLICY
from tests import factories
from tests.apps import settings
from tests.integration.test_rest import CORPUS, load
from tests.servers import serving

PAGES = ["/graphql", "/schema", "/schema/swagger"]
CHROMIUM = shutil.which("chromium")
CHROMEDRIVER = shutil.which("chromedriver")


@pytest.fixture
async def client(fresh_db):
    async with AsyncTestClient(create_app(settings(), database_url=fresh_db)) as c:
        yield c


@pytest.mark.parametrize("page", PAGES)
async def test_pages_load_only_local_assets_under_the_policy(client, page):
    response = await client.get(page, headers={"Accept": "text/html"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    html = response.text
    assert "<script>" not in html  # no inline script: the policy would refuse it
    assert "style=" not in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets
    for asset in assets:
        assert asset.startswith("/explorer/"), asset
        loaded = await client.get(asset)
        assert loaded.status_code == 200, asset
        assert loaded.headers["content-security-policy"] == CONTENT_SECURITY_POLICY


@pytest.mark.parametrize("path", ["/explorer/%00", "/explorer/graphiql/%00.js", "/explorer/..%2f..%2fexplorer.py"])
async def test_an_asset_path_outside_the_assets_is_404(client, path):
    """A NUL in the path was a 500 (the file system's ValueError); a way out of the folder names nothing."""
    for method in ("GET", "HEAD"):
        assert (await client.request(method, path)).status_code == 404


def test_the_policy_allows_this_host_only():
    directives = dict(d.split(" ", 1) for d in CONTENT_SECURITY_POLICY.split("; "))
    assert directives["default-src"] == "'none'"
    for name, sources in directives.items():
        assert set(sources.split()) <= {"'self'", "'none'", "data:"}, name


@pytest.fixture
def browser() -> Iterator[object]:
    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.skip("needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(argument)
    # Any host but the server's fails to resolve: a request for a CDN asset could not succeed by accident.
    options.add_argument("--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def _wait(driver, script: str, timeout: float = 30) -> object:
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def _local_only(driver, base: str) -> None:
    resources = driver.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert resources
    assert all(name.startswith(base) for name in resources), resources
    refused = [e["message"] for e in driver.get_log("browser") if "Content Security Policy" in e["message"]]
    assert not refused, refused


def test_graphiql_runs_a_query_in_chromium(fresh_db, browser):
    asyncio.run(load(fresh_db, CORPUS))
    title = factories.paper(20)[0]
    query = "{ papers(filter: {arxiv: true}) { edges { node { title arxivId } } } }"
    with serving(fresh_db) as (base, _, _):
        browser.get(f"{base}/graphql")
        _wait(browser, "return document.querySelector('.graphiql-query-editor .CodeMirror')")
        browser.execute_script(
            "document.querySelector('.graphiql-query-editor .CodeMirror').CodeMirror.setValue(arguments[0])", query
        )
        browser.execute_script("document.querySelector('.graphiql-execute-button').click()")
        answer = _wait(
            browser,
            "const r = document.querySelector('.graphiql-response .CodeMirror');"
            " const v = r && r.CodeMirror.getValue(); return v && v.includes('arxivId') ? v : null",
        )
        assert title in str(answer)
        assert "2403.00020" in str(answer)
        _local_only(browser, base)


def test_swagger_ui_shows_the_api_in_chromium(fresh_db, browser):
    with serving(fresh_db) as (base, _, _):
        browser.get(f"{base}/schema")
        heading = _wait(
            browser, "const t = document.querySelector('.swagger-ui .info .title'); return t && t.textContent"
        )
        assert "papers-api" in str(heading)
        _wait(browser, "return document.querySelectorAll('.opblock').length > 10")
        _local_only(browser, base)
