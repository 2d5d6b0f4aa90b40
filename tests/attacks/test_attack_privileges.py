"""Headers that would defeat per-user privileges never reach the upstream; cross-site simple requests
cannot write to the dataset."""

from __future__ import annotations

import json
from urllib.parse import quote

import pytest

from peers_attack import RawConnection
from peers_serve import start_serve
from peers_upstream import UpstreamApp

OVERRIDES = ("X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override")


@pytest.fixture(scope="module")
def proxy(tmp_path_factory):
    work = tmp_path_factory.mktemp("privileges")
    app = UpstreamApp.start()
    server = start_serve(work, "--upstream", app.url)
    server.extra["app"] = app
    server.extra["token"] = server.add_token_user("get-post-user", "GET,POST")
    yield server
    server.stop()
    app.stop()


@pytest.mark.parametrize("header", OVERRIDES)
def test_a_method_override_naming_a_method_the_user_lacks_is_403(proxy, header):
    app = proxy.extra["app"]
    before = len(app.received)
    reply = proxy.curl("/echo", "-X", "POST", "-H", f"Authorization: Bearer {proxy.extra['token']}",
                       "-H", f"{header}: DELETE", "--data-binary", "x")
    assert reply.status == 403, (reply.status, reply.body)
    assert len(app.received) == before            # the application never saw it


@pytest.mark.parametrize("header", OVERRIDES)
def test_a_method_override_the_user_may_use_still_reaches_the_application(proxy, header):
    reply = proxy.curl("/echo", "-X", "POST", "-H", f"Authorization: Bearer {proxy.extra['token']}",
                       "-H", f"{header}: GET", "--data-binary", "x")
    assert reply.status == 200
    assert proxy.extra["app"].last().header(header) == "GET"


@pytest.mark.parametrize("name", ["X_Forwarded_User", "X-Forwarded_User", "X_Real_IP", "Remote_User"])
def test_header_names_with_underscores_never_reach_the_application(proxy, name):
    # curl would send them, but a raw request shows exactly what was written.
    with RawConnection(proxy.port, proxy.ca) as conn:
        reply = conn.request("GET", "/echo", [("Authorization", f"Bearer {proxy.extra['token']}"), (name, "admin")])
    assert reply.status == 200
    received = proxy.extra["app"].last()
    assert all("_" not in header for header, _ in received.headers), received.headers
    assert received.header("X-Forwarded-User") == "get-post-user"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    server = start_serve(tmp_path_factory.mktemp("csrf"))
    server.extra["token"] = server.add_token_user("writer", "all")
    yield server
    server.stop()


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded",
                                          "multipart/form-data; boundary=x", None, "application/jsonx"])
@pytest.mark.parametrize("method, target", [("POST", "/api/products"), ("PUT", "/api/products/1"),
                                            ("PATCH", "/api/products/1")])
def test_a_dataset_write_without_a_json_content_type_is_415(dataset, content_type, method, target):
    body = json.dumps({"name": f"csrf {method} {content_type}", "price": 1, "stock": 1}).encode()
    headers = [("Authorization", f"Bearer {dataset.extra['token']}")]
    if content_type:
        headers.append(("Content-Type", content_type))
    with RawConnection(dataset.port, dataset.ca) as conn:
        reply = conn.request(method, target, headers, body=body)
        assert reply.status == 415, (reply.status, reply.body)
        check = conn.request("GET", "/api/products?name=" + quote(f"csrf {method} {content_type}", safe=""),
                             headers[:1])
    assert check.json["rows"] == []


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON;charset=UTF-8"])
def test_a_dataset_write_with_a_json_content_type_is_accepted(dataset, content_type):
    body = json.dumps({"name": f"json write {content_type}", "price": 1, "stock": 1}).encode()
    with RawConnection(dataset.port, dataset.ca) as conn:
        reply = conn.request("POST", "/api/products", [("Authorization", f"Bearer {dataset.extra['token']}"),
                                                       ("Content-Type", content_type)], body=body)
    assert reply.status == 201, (reply.status, reply.body)
