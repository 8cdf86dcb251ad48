"""/openapi.json shows the real REST contract: answer, source and error shapes, request examples."""

from __future__ import annotations

from typing import Any

from fastapi.testclient import TestClient
from pydantic import BaseModel

from almanac.server.http.openai_format import ChatCompletionRequest
from almanac.server.routes.jobs import JobCreate
from almanac.server.routes.lookup import LookupRequest
from almanac.server.routes.query import QueryRequest, SearchRequest
from almanac.server.routes.schemas import QueryResponse, SearchResponse

SOURCE_FIELDS = ["id", "kind", "source", "locator", "text", "score"]


def _spec(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    spec: dict[str, Any] = response.json()
    return spec


def _resolve(spec: dict[str, Any], schema: dict[str, Any]) -> dict[str, Any]:
    """The schema a ``$ref`` points at (or the schema itself)."""
    ref = schema.get("$ref")
    if ref is None:
        return schema
    target: dict[str, Any] = spec["components"]["schemas"][ref.removeprefix("#/components/schemas/")]
    return target


def _json_schema(spec: dict[str, Any], path: str, method: str, status: str) -> dict[str, Any]:
    response = spec["paths"][path][method]["responses"][status]
    schema: dict[str, Any] = response["content"]["application/json"]["schema"]
    return schema


def test_query_answer_schema_names_answer_sources_and_citations(client: TestClient) -> None:
    spec = _spec(client)
    schema = _json_schema(spec, "/v1/query", "post", "200")
    assert schema == {"$ref": "#/components/schemas/QueryResponse"}
    answer = _resolve(spec, schema)
    assert {"answer", "sources", "cited", "model", "adapter", "usage", "timings"} <= set(answer["properties"])
    assert set(answer["required"]) == set(answer["properties"])  # every key is always sent, nulls too
    sources = answer["properties"]["sources"]
    assert sources["type"] == "array" and sources["items"] == {"$ref": "#/components/schemas/SourceOut"}
    assert answer["properties"]["cited"]["items"]["type"] == "integer"
    streamed = spec["paths"]["/v1/query"]["post"]["responses"]["200"]["content"]
    assert "text/event-stream" in streamed  # stream: true is documented beside the JSON answer


def test_search_results_are_source_objects_with_a_kind_enum(client: TestClient) -> None:
    spec = _spec(client)
    results = _resolve(spec, _json_schema(spec, "/v1/search", "post", "200"))["properties"]["results"]
    assert results["type"] == "array"
    source = _resolve(spec, results["items"])
    assert list(source["properties"]) == SOURCE_FIELDS and sorted(source["required"]) == sorted(SOURCE_FIELDS)
    assert source["properties"]["kind"]["enum"] == ["document", "row"]
    assert source["properties"]["score"]["type"] == "number"


def test_query_errors_are_declared_in_the_one_error_shape(client: TestClient) -> None:
    spec = _spec(client)
    for status in ("400", "401", "403", "404", "413", "422", "429"):
        schema = _json_schema(spec, "/v1/query", "post", status)
        assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, status
    error = _resolve(spec, {"$ref": "#/components/schemas/ErrorResponse"})["properties"]["error"]
    assert set(_resolve(spec, error)["properties"]) == {"type", "message"}
    assert "HTTPValidationError" not in spec["components"]["schemas"]  # 422 is our shape, not FastAPI's


def test_every_v1_route_declares_a_non_empty_2xx_schema(client: TestClient) -> None:
    spec = _spec(client)
    routes = [(p, m, op) for p, ops in spec["paths"].items() if p.startswith("/v1/") for m, op in ops.items()]
    assert len(routes) >= 15
    for path, method, operation in routes:
        statuses = [s for s in operation["responses"] if s.startswith("2")]
        assert statuses, (method, path)
        for status in statuses:
            schema = _resolve(spec, _json_schema(spec, path, method, status))
            assert schema.get("properties"), (method, path, status)
        assert _json_schema(spec, path, method, "401") == {"$ref": "#/components/schemas/ErrorResponse"}


def test_request_examples_are_valid_requests(client: TestClient) -> None:
    spec = _spec(client)
    models: list[type[BaseModel]] = [QueryRequest, SearchRequest, LookupRequest, JobCreate]
    for model in models:
        examples = spec["components"]["schemas"][model.__name__]["examples"]
        assert examples, model.__name__
        for example in examples:
            model.model_validate(example)
    assert ChatCompletionRequest.__name__ in spec["components"]["schemas"]


def test_the_wire_matches_the_declared_models_key_for_key(client: TestClient) -> None:
    answer = client.post("/v1/query", json={"question": "When did Mount Kessik last erupt?"}).json()
    assert list(answer) == list(QueryResponse.model_fields)
    assert [list(s) for s in answer["sources"]] == [SOURCE_FIELDS] * len(answer["sources"])
    search = client.post("/v1/search", json={"query": "granite lighthouse", "top_k": 2}).json()
    assert list(search) == list(SearchResponse.model_fields) and len(search["results"]) == 2
    assert SearchResponse.model_validate(search).results[0].kind in ("document", "row")


def test_a_405_allows_every_method_of_the_path(client: TestClient) -> None:
    for path, allowed in (("/v1/documents", "GET, POST"), ("/v1/jobs", "GET, POST"), ("/v1/query", "POST")):
        response = client.request("OPTIONS", path)
        assert response.status_code == 405 and response.headers["allow"] == allowed, path


def test_constraints_enforced_in_code_are_in_the_schema(client: TestClient) -> None:
    spec = _spec(client)
    (name,) = spec["paths"]["/v1/adapters/{name}/promote"]["post"]["parameters"][:1]
    assert name["name"] == "name" and name["schema"]["pattern"].startswith("^[A-Za-z0-9]")
    assert client.post("/v1/adapters/-bad/promote").status_code == 422
    streamed = spec["paths"]["/v1/query"]["post"]["responses"]["200"]["content"]["text/event-stream"]
    assert streamed["schema"]["properties"]["data"] == {"type": "string"}  # one event, as clients parse it
    for body in ({"query": "x", "filter": {"ingested_after": 0}}, {"query": "x", "stream": 0}):
        assert client.post("/v1/search", json=body).status_code == 422, body
    assert client.post("/v1/query", json={"question": "x", "stream": 0}).status_code == 422
