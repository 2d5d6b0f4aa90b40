"""The README's request-body limit, 1 MiB: a body of exactly that size is taken, one byte more is a 413.

It holds for the dataset's JSON bodies and for the bodies the gate reads before the reverse proxy sees
them (a CData form post carrying its authtoken). The limit is written here as the README gives it, not
imported, so that changing the server's constant fails these tests.
"""

from __future__ import annotations

import json

import pytest

from conftest import require_binary
from peers_serve import start_serve as start_dataset_serve
from peers_upstream import UpstreamApp, add_user, curl, start_serve, status_and_headers

ONE_MIB = 1024 * 1024
TOO_LARGE = {"error": "payload too large", "detail": f"the body is over {ONE_MIB} bytes"}


def _json_row_of(size: int) -> bytes:
    """A valid product row (named by its size: names are unique), padded with JSON white space to
    exactly ``size`` bytes."""
    row = json.dumps({"name": f"Padded {size}", "price": 1.0, "stock": 1}).encode()
    return row[:-1] + b" " * (size - len(row)) + b"}"


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    served = start_dataset_serve(tmp_path_factory.mktemp("body-limit"))
    served.extra["token"] = served.add_token_user("writer", "GET,POST")
    yield served
    served.stop()


@pytest.mark.parametrize("size, status", [(ONE_MIB, 201), (ONE_MIB + 1, 413)])
def test_dataset_body_at_and_over_one_mib(dataset, tmp_path, size, status):
    body = tmp_path / "row.json"
    body.write_bytes(_json_row_of(size))
    assert body.stat().st_size == size
    reply = dataset.curl("/api/products", "-H", f"Authorization: Bearer {dataset.extra['token']}",
                         "-H", "Content-Type: application/json", "--data-binary", f"@{body}", method="POST")
    assert reply.status == status, reply.body[:300]
    if status == 413:
        assert reply.json == TOO_LARGE
    else:
        assert reply.json["name"] == f"Padded {size}"


@pytest.fixture(scope="module")
def proxied(tmp_path_factory):
    require_binary("curl")
    state = tmp_path_factory.mktemp("body-limit-proxy") / "state"
    token = add_user(state, "poster", "--methods", "GET,POST")
    with UpstreamApp.start() as app, start_serve(state, "--upstream", app.url, "--allow-query-token") as served:
        yield served, app, token


@pytest.mark.parametrize("size, status", [(ONE_MIB, 200), (ONE_MIB + 1, 413)])
def test_proxied_form_with_its_token_at_and_over_one_mib(proxied, tmp_path, size, status):
    """The gate reads a form post whole to find its authtoken; the application gets the other fields."""
    served, app, token = proxied
    head = f"authtoken={token}&field=".encode()
    body = tmp_path / "form"
    body.write_bytes(head + b"x" * (size - len(head)))
    before = len(app.received)
    # "Expect:" keeps curl from waiting for a 100 Continue, whose status line -i would show first.
    done = curl("-k", "-i", "-H", "Expect:", "-H", "Content-Type: application/x-www-form-urlencoded",
                "--data-binary", f"@{body}",
                f"{served.url}/echo/form")
    got, _, text = status_and_headers(done)
    assert got == status, text[:300]
    if status == 413:
        assert json.loads(text) == TOO_LARGE
        assert len(app.received) == before             # nothing reached the application
    else:
        assert app.last().body_length == len(b"field=") + size - len(head)
        assert app.last().header("x-forwarded-user") == "poster"
