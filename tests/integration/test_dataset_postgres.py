"""The dataset REST API over a real PostgreSQL schema (``--dataset postgresql://...``): key kinds, column
types as JSON, 409/400, and what keeps large tables fast, read from PostgreSQL's own plans (auto_explain).
"""

from __future__ import annotations

import json
import re

import pytest

from conftest import run_tlskit
from peers_postgres import postgres, wait_until  # noqa: F401 (fixture)
from peers_serve import start_serve

pytestmark = pytest.mark.slow

TABLES = """
CREATE TABLE items (
    id serial PRIMARY KEY,
    name text NOT NULL UNIQUE,
    price numeric(10, 2) CHECK (price >= 0),
    big numeric,
    created timestamptz NOT NULL DEFAULT '2026-01-02 03:04:05+00',
    meta jsonb,
    tags text[],
    qty integer
);
CREATE TABLE tickets (id uuid PRIMARY KEY DEFAULT gen_random_uuid(), title text);
CREATE TABLE runs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, ok boolean);
CREATE TABLE codes (code text PRIMARY KEY, label varchar(5));
CREATE TABLE pairs (a integer, b integer, note text, PRIMARY KEY (a, b));
CREATE TABLE orders (id serial PRIMARY KEY, item integer NOT NULL REFERENCES items (id));
CREATE TABLE events (id bigserial PRIMARY KEY, kind text NOT NULL, at integer NOT NULL);
INSERT INTO events (kind, at) SELECT 'k' || (n % 5000), n FROM generate_series(1, 200000) AS n;
CREATE INDEX events_kind ON events (kind);
ANALYZE events;
CREATE SCHEMA hidden;
CREATE TABLE hidden.secrets (id serial PRIMARY KEY, value text);
"""


@pytest.fixture(scope="module")
def served(postgres, tmp_path_factory):
    url = postgres.new_database()
    import psycopg

    with psycopg.connect(url, autocommit=True) as db:
        db.execute(TABLES)
    # Every statement the server runs is logged with its plan: what the planner really chose.
    name = url.rsplit("/", 1)[1]
    postgres.superuser(f"ALTER DATABASE {name} SET session_preload_libraries = 'auto_explain'")
    postgres.superuser(f"ALTER DATABASE {name} SET auto_explain.log_min_duration = 0")
    work = tmp_path_factory.mktemp("dataset-pg")
    run = run_tlskit("users", "add", "alice", "--token", "--methods", "all", "--db", url, "--json")
    assert run.returncode == 0, run.stderr
    server = start_serve(work, "--db", url, "--dataset", url)
    server.extra["auth"] = ("-H", f"Authorization: Bearer {run.json['token']}")
    server.extra["postgres"] = postgres
    try:
        yield server
    finally:
        server.stop()
        assert "Traceback" not in server.stderr(), server.stderr()


def call(served, path: str, method: str | None = None, data=None):
    body = data if data is None or isinstance(data, str) else json.dumps(data)
    return served.curl(path, *served.extra["auth"], method=method, data=body)


def test_keys_of_every_kind(served):
    ticket = call(served, "/api/tickets", "POST", {"title": "printer"})
    assert ticket.status == 201, ticket.body
    assert re.fullmatch(r"[0-9a-f-]{36}", ticket.json["id"])
    assert ticket.header("location") == f"/api/tickets/{ticket.json['id']}"
    assert call(served, f"/api/tickets/{ticket.json['id']}").json["title"] == "printer"
    assert call(served, "/api/tickets/not-a-uuid").status == 404          # an id the type cannot take: no row

    run = call(served, "/api/runs", "POST", {"ok": True})
    assert run.status == 201 and isinstance(run.json["id"], int) and run.json["ok"] is True
    # GENERATED ALWAYS: PostgreSQL refuses a given id; that is the client's mistake, not a 500.
    assert call(served, "/api/runs", "POST", {"id": 5, "ok": False}).status in (400, 409)

    code = call(served, "/api/codes", "POST", {"code": "a b", "label": "x"})
    assert code.status == 201 and code.header("location") == "/api/codes/a b"
    assert call(served, "/api/codes/a%20b").json == {"code": "a b", "label": "x"}
    assert call(served, "/api/codes", "POST", {"code": "eu", "label": "Eur"}).status == 201
    assert call(served, "/api/codes/eu").json == {"code": "eu", "label": "Eur"}
    assert call(served, "/api/codes/eu", "PATCH", {"label": "EU"}).json["label"] == "EU"
    assert call(served, "/api/codes", "POST", {"code": "xx", "label": "toolong"}).status == 400

    # A composite key: listed, filtered and inserted into; no item routes (the 404 says what to do).
    assert call(served, "/api/pairs", "POST", {"a": 1, "b": 2, "note": "one-two"}).status == 201
    assert call(served, "/api/pairs?a=1&b=2").json["rows"] == [{"a": 1, "b": 2, "note": "one-two"}]
    item = call(served, "/api/pairs/1")
    assert item.status == 404 and "composite primary key (a, b)" in item.json["detail"]


def test_column_types_as_json_and_back(served):
    created = call(served, "/api/items", "POST", '{"name": "lamp", "price": 19.99, "big": 123456789012345678901234567890.5,'
                                                 ' "meta": {"colour": "red", "sizes": [1, 2]}, "tags": ["a", "b"], "qty": 3}')
    assert created.status == 201, created.body
    row = created.json
    assert row["price"] == 19.99 and row["qty"] == 3
    assert row["big"] == "123456789012345678901234567890.5"        # no digit lost: a string, not a double
    assert row["created"] == "2026-01-02T03:04:05+00:00"
    assert row["meta"] == {"colour": "red", "sizes": [1, 2]} and row["tags"] == ["a", "b"]
    assert call(served, f"/api/items/{row['id']}").json == row
    put = call(served, f"/api/items/{row['id']}", "PUT", {"meta": [1, "x"], "created": "2026-05-06T07:08:09Z"})
    assert put.status == 200 and put.json["meta"] == [1, "x"] and put.json["created"] == "2026-05-06T07:08:09+00:00"
    assert call(served, "/api/items?tags=%7Ba%2Cb%7D").json["rows"][0]["id"] == row["id"]
    openapi = served.curl("/openapi.json", *served.extra["auth"])
    assert openapi.status == 200, openapi.body
    schema = json.dumps(openapi.json)
    for table in ("items", "tickets", "runs", "codes", "pairs", "events"):
        assert f"/api/{table}" in schema
    assert "secrets" not in schema and "pg_" not in schema


def test_constraint_violations_are_409_bad_values_400_never_500(served):
    assert call(served, "/api/items", "POST", {"name": "desk", "price": 5}).status == 201
    cases = {
        409: [{"name": "desk"},                                    # unique
              {"price": 1},                                        # NOT NULL name
              {"name": "neg", "price": -1}],                       # CHECK
        400: [{"name": "x", "price": "cheap"},                     # not a number
              {"name": "y", "created": "yesterday-ish"},           # not a timestamp
              {"name": "z", "qty": 99999999999},                   # out of integer's range
              {"name": "w", "tags": "a"},                          # not an array
              {"name": "v", "meta": None, "nope": 1},              # unknown column
              {"name": "u\u0000"}],                                # NUL in text
    }
    for status, documents in cases.items():
        for document in documents:
            reply = call(served, "/api/items", "POST", document)
            assert reply.status == status, (document, reply.status, reply.body)
            assert reply.json["error"] in ("conflict", "bad request")
    assert call(served, "/api/orders", "POST", {"item": 999999}).status == 409          # foreign key
    assert call(served, "/api/items?qty=many").status == 400
    assert call(served, "/api/items?limit=-1").status == 400
    assert call(served, "/api/items?colour=red").status == 400
    # Identifiers come from the catalog only: other schemas, system catalogs and injections are 404.
    for path in ("/api/secrets", "/api/pg_class", "/api/pg_catalog.pg_class", '/api/items"%3B%20DROP%20TABLE%20items'):
        assert call(served, path).status == 404, path
    assert call(served, "/api/items").status == 200


def test_indexed_filter_uses_the_index_and_limit_is_in_sql(served):
    reply = call(served, "/api/events?kind=k42&limit=7&offset=3")
    assert reply.status == 200, reply.body
    rows = reply.json["rows"]
    assert len(rows) == 7 and {r["kind"] for r in rows} == {"k42"}
    assert [r["at"] for r in rows] == [42 + 5000 * n for n in range(3, 10)]
    log = served.extra["postgres"].directory / "log"

    def plan():
        """The logged plan of the filtered list, up to the next log entry (another query's plan)."""
        text = log.read_text(errors="replace")
        start = text.rfind('WHERE "kind" = $1::text')
        if start < 0:
            return None
        end = text.find(" LOG: ", start)
        return text[start:end if end >= 0 else len(text)]

    found = wait_until(plan, 5)
    assert found, "auto_explain logged no plan for the filtered list"
    assert 'Index Scan using events_kind' in found or 'Bitmap Index Scan on events_kind' in found, found
    assert "Limit" in found and "Seq Scan" not in found, found


def test_large_lists_stream(served):
    reply = call(served, "/api/events?limit=1000")
    assert reply.status == 200
    # Sent as it is read: no Content-Length, chunks (HTTP/1.1) or frames (HTTP/2) instead.
    assert reply.header("content-length") is None
    document = reply.json
    assert len(document["rows"]) == 1000 and document["limit"] == 1000
    assert [r["id"] for r in document["rows"]] == list(range(1, 1001))
    assert call(served, "/api/events?limit=5000").json["limit"] == 1000     # the cap, as over SQLite
    assert call(served, "/api/events?kind=nothing").json["rows"] == []
