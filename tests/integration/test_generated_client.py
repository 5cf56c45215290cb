"""A client generated from the OpenAPI document by openapi-python-client, driven through the API: typed objects back."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from litestar.serialization import encode_json
from litestar.testing import AsyncTestClient

from api.app import create_app
from api.export_schema import openapi
from ingest.embed import embed_pending
from ingest.pipeline import Source, ingest_source
from sql import db
from tests import factories
from tests.apps import settings
from tests.embedders import HashEmbedder

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
KEY = "client-key"


@pytest.fixture
def generated(tmp_path: Path):
    """The client package generated from the app's OpenAPI document, importable as `papers_client`."""
    if not GENERATOR.exists():
        pytest.skip(f"openapi-python-client is not installed at {GENERATOR} (the dev extra installs it)")
    app = create_app(settings(), database_url="postgresql://unused")
    spec = tmp_path / "openapi.json"
    spec.write_bytes(encode_json(app.openapi_schema.to_schema()))
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"package_name_override": "papers_client", "project_name_override": "papers"}))
    out = tmp_path / "papers"
    done = subprocess.run(
        [str(GENERATOR), "generate", "--path", str(spec), "--output-path", str(out), "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "PATH": f"{GENERATOR.parent}{os.pathsep}{os.environ.get('PATH', '')}"},  # its ruff hooks
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # The generator has no text/plain body type (POST /v1/listings) and no streamed JSON Lines or CSV answer type
    # (GET /v1/export, a file download rather than an object); every other operation generates cleanly.
    output = done.stdout + done.stderr
    warned = {
        line.split("WARNING parsing ")[1].split(" within")[0]
        for line in output.splitlines()
        if "WARNING parsing" in line
    }
    assert warned <= {"POST /v1/listings", "GET /v1/export"}, output
    sys.path.insert(0, str(out))
    try:
        yield importlib.import_module("papers_client")
    finally:
        sys.path.remove(str(out))
        for name in [m for m in sys.modules if m == "papers_client" or m.startswith("papers_client.")]:
            del sys.modules[name]
        shutil.rmtree(out, ignore_errors=True)


def _daily_item(models):
    """A daily-papers item as the generated model of the submission's JSON form."""
    title, abstract = factories.paper(40)
    paper = models.SubmitListingJsonBodyItemPaper(title=title, summary=abstract, id="2403.00040")
    return models.SubmitListingJsonBodyItem(paper=paper, published_at="2024-03-14")


async def test_a_generated_client_gets_typed_objects_back(generated, fresh_db):
    async with db.connection(fresh_db) as conn:
        text = factories.page([factories.paper(i) for i in range(12)], label="Mar 11")
        assert (await ingest_source(conn, Source("a.txt", text.encode()), year=2024)).error is None
        await embed_pending(conn, HashEmbedder())
    models = importlib.import_module("papers_client.models")
    ops = {
        name: importlib.import_module(f"papers_client.api.{tag}.{name}")
        for tag, name in [
            ("papers", "list_papers"),
            ("papers", "get_paper"),
            ("search", "search_papers"),
            ("search", "similar_papers"),
            ("search", "recommend_papers"),
            ("listings", "list_listings"),
            ("listings", "submit_listing"),
        ]
    }
    app = create_app(settings(api_key=KEY), database_url=fresh_db, embedder=HashEmbedder())
    async with AsyncTestClient(app=app) as http:
        anonymous = generated.Client(base_url="http://testserver.local")
        anonymous.set_async_httpx_client(http)
        daily = [_daily_item(models)]
        refused = await ops["submit_listing"].asyncio(client=anonymous, body=daily)
        assert isinstance(refused, models.ProblemDetail)
        assert refused.status == 401
        client = generated.AuthenticatedClient(base_url="http://testserver.local", token=KEY)
        # A client given its own httpx client sends what that client sends: the header the generated one would.
        http.headers[client.auth_header_name] = f"{client.prefix} {client.token}"
        client.set_async_httpx_client(http)

        first = await ops["list_papers"].asyncio(client=client, limit=5, count=True, sort=models.PaperOrder.TITLE)
        assert isinstance(first, models.PaperPage)
        assert first.total == 12
        assert all(isinstance(p, models.Paper) for p in first.items)
        second = await ops["list_papers"].asyncio(
            client=client, limit=5, cursor=first.next_cursor, sort=models.PaperOrder.TITLE
        )
        assert isinstance(second, models.PaperPage)
        titles = [p.title for p in first.items + second.items]
        assert titles == sorted(titles)
        assert len(set(titles)) == 10

        # The other answers of the operation come back typed too: papers with only the fields asked for, facets.
        partial = await ops["list_papers"].asyncio(client=client, limit=2, fields="id,title")
        assert isinstance(partial, models.PaperFieldsPage)
        assert [type(p) for p in partial.items] == [models.PaperFields] * 2
        assert isinstance(partial.items[0].title, str)
        assert isinstance(partial.items[0].abstract, generated.types.Unset)
        facets = await ops["list_papers"].asyncio(client=client, group_by=models.FacetField.HAS_ARXIV)
        assert isinstance(facets, list)
        assert [type(f) for f in facets] == [models.FacetCount]

        paper = await ops["get_paper"].asyncio(client=client, paper_id=first.items[0].id)
        assert isinstance(paper, models.PaperDetail)
        assert isinstance(paper.listings[0], models.ListingRef)

        found = await ops["search_papers"].asyncio(client=client, q="paper", mode=models.SearchMode.KEYWORD, limit=3)
        assert isinstance(found, models.ScoredPage)
        assert all(isinstance(p, models.ScoredPaper) for p in found.items)
        scores = await ops["search_papers"].asyncio(
            client=client, q="paper", mode=models.SearchMode.KEYWORD, fields="score"
        )
        assert isinstance(scores, models.ScoredFieldsPage)
        assert all(isinstance(p.score, float) for p in scores.items)
        similar = await ops["similar_papers"].asyncio(client=client, paper_id=paper.id, limit=3)
        assert isinstance(similar, models.ScoredList)
        assert [type(p) for p in similar.items] == [models.ScoredPaper] * 3
        body = models.RecommendRequest(positive=[paper.id], limit=3)
        recommended = await ops["recommend_papers"].asyncio(client=client, body=body)
        assert isinstance(recommended, models.ScoredList)
        assert all(isinstance(p, models.ScoredPaper) for p in recommended.items)

        listings = await ops["list_listings"].asyncio(client=client)
        assert isinstance(listings, models.ListingPage)
        assert isinstance(listings.items[0], models.Listing)
        assert listings.items[0].kind is models.ListingFormat.PAGE  # the one enum of formats, as the parameter

        # The JSON form of a listing (the generator has no text/plain body; curl sends the text form).
        accepted = await ops["submit_listing"].asyncio(client=client, body=daily)
        assert isinstance(accepted, models.JobAccepted)
        assert accepted.status_url == f"/v1/jobs/{accepted.job_id}"


OPENAPI_FILE = Path(__file__).resolve().parents[2] / "openapi.json"


async def test_the_checked_in_openapi_document_is_the_one_served(fresh_db):
    assert OPENAPI_FILE.read_text() == openapi(), (
        "openapi.json is out of date; regenerate it with `python -m api.export_schema --openapi > openapi.json`"
    )
    async with AsyncTestClient(app=create_app(settings(api_key=KEY), database_url=fresh_db)) as http:
        served = (await http.get("/schema/openapi.json")).json()
    assert served == json.loads(OPENAPI_FILE.read_text())


def test_every_write_has_a_body_and_every_collection_typed_items():
    spec = json.loads(OPENAPI_FILE.read_text())
    for url, operations in spec["paths"].items():
        if "post" in operations:
            assert operations["post"].get("requestBody", {}).get("content"), url
    schemas = spec["components"]["schemas"]
    for name in ("PaperPage", "ListingPage", "ScoredPage", "ScoredList"):
        items = schemas[name]["properties"]["items"]["items"]
        assert set(items) == {"$ref"}, (name, items)
    submit = spec["paths"]["/v1/listings"]["post"]
    assert submit["security"] == [{"bearer": []}]
    assert spec["components"]["securitySchemes"]["bearer"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "PAPERS_API_KEY, for writes",
    }
    assert set(submit["requestBody"]["content"]) == {"text/plain", "application/json"}


async def test_the_submissions_body_examples_are_listings(fresh_db):
    content = json.loads(OPENAPI_FILE.read_text())["paths"]["/v1/listings"]["post"]["requestBody"]["content"]
    async with db.connection(fresh_db) as conn:
        for name, example in [
            ("page.txt", content["text/plain"]["example"].encode()),
            ("daily.json", json.dumps(content["application/json"]["example"]).encode()),
        ]:
            result = await ingest_source(conn, Source(name, example), year=2024)
            assert (result.error, result.entries, result.rejected) == (None, 1, 0), result


async def test_every_parameter_example_is_accepted_by_its_operation(fresh_db):
    """Each documented example, sent alone (with the required parameters' examples): never a 400."""
    spec = json.loads(OPENAPI_FILE.read_text())
    sent = 0
    async with AsyncTestClient(app=create_app(settings(), database_url=fresh_db)) as http:
        for url, operations in spec["paths"].items():
            parameters = operations.get("get", {}).get("parameters", [])
            path = {p["name"]: p["schema"]["examples"][0] for p in parameters if p["in"] == "path"}
            required = {
                p["name"]: p["schema"]["examples"][0] for p in parameters if p["in"] == "query" and p["required"]
            }
            for parameter in parameters:
                if parameter["in"] != "query":
                    continue
                for example in parameter["schema"].get("examples", []):
                    value = json.dumps(example) if isinstance(example, bool) else example
                    response = await http.get(url.format(**path), params={**required, parameter["name"]: value})
                    assert response.status_code in {200, 404, 503}, (url, parameter["name"], response.text)
                    sent += 1
    assert sent >= 20
