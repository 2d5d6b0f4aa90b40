"""tlskit.server.upstream_client against a real, sloppy HTTP/1.1 upstream (tests/peers_attack.py), driven
in-process so that the next request follows the previous answer at once: no sleep gives a bad
connection the time to show itself, so each rule of the pool has to hold on its own."""

from __future__ import annotations

import asyncio

import pytest

from peers_attack import SloppyUpstream
from tlskit.server.upstream_client import UpstreamClient, UpstreamFailed, UpstreamOptions


@pytest.fixture
def upstream():
    with SloppyUpstream.start() as sloppy:
        yield sloppy


def _head(upstream: SloppyUpstream, method: str, target: str, length: int | None = None) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"host: 127.0.0.1:{upstream.port}"]
    if length is not None:
        lines.append(f"content-length: {length}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def _body(data: bytes):
    yield data


async def _fetch(client: UpstreamClient, upstream, method: str, target: str, body: bytes | None = None):
    answer = await client.send(_head(upstream, method, target, None if body is None else len(body)), method,
                               None if body is None else _body(body))
    whole = answer.read_whole()
    if whole is not None:
        return answer.status, whole
    pieces = []
    while piece := await answer.read():
        pieces.append(piece)
    return answer.status, b"".join(pieces)


def _with_client(upstream, scenario):
    async def main():
        client = UpstreamClient("http", "127.0.0.1", upstream.port, UpstreamOptions(read_timeout=5))
        try:
            return await scenario(client)
        finally:
            await client.aclose()
    return asyncio.run(main())


def test_a_connection_that_carried_an_unread_get_body_is_not_reused(upstream):
    smuggled = b"GET /smuggled HTTP/1.1\r\nhost: x\r\n\r\n"

    async def scenario(client):
        results = []
        for _ in range(5):
            results.append(await _fetch(client, upstream, "GET", "/ignore-body", smuggled))
            results.append(await _fetch(client, upstream, "GET", "/next"))   # at once, on the pool
        return results

    results = _with_client(upstream, scenario)
    assert results == [(200, b"answer for /ignore-body"), (200, b"answer for /next")] * 5


def test_a_connection_is_pooled_and_reused_when_nothing_is_pending(upstream):
    async def scenario(client):
        return [await _fetch(client, upstream, "GET", f"/plain{i}") for i in range(5)]

    assert _with_client(upstream, scenario) == [(200, f"answer for /plain{i}".encode()) for i in range(5)]
    assert upstream.connections == 1


def test_a_second_answer_in_the_same_read_poisons_the_connection(upstream):
    async def scenario(client):
        results = []
        for _ in range(5):
            results.append(await _fetch(client, upstream, "GET", "/twice"))
            results.append(await _fetch(client, upstream, "GET", "/after"))
        return results

    assert _with_client(upstream, scenario) == [(200, b"answer for /twice"), (200, b"answer for /after")] * 5


def test_bytes_arriving_on_an_idle_pooled_connection_close_it(upstream):
    async def scenario(client):
        first = await _fetch(client, upstream, "GET", "/late-twice")
        await asyncio.sleep(0.3)
        return first, await _fetch(client, upstream, "GET", "/after")

    assert _with_client(upstream, scenario) == ((200, b"answer for /late-twice"), (200, b"answer for /after"))
    assert upstream.connections == 2


@pytest.mark.parametrize("target, code", [("/switch", 101), ("/info199", 199)])
def test_101_and_unknown_interim_answers_are_refused(upstream, target, code):
    async def scenario(client):
        with pytest.raises(UpstreamFailed, match=f"interim answer {code}"):
            await _fetch(client, upstream, "GET", target)
        return await _fetch(client, upstream, "GET", "/after")

    assert _with_client(upstream, scenario) == (200, b"answer for /after")


def test_the_raw_target_reaches_the_upstream_byte_for_byte(upstream):
    target = "/a%2Fb/%7e/caf%C3%A9/x;y?q=%20+&r=a%2fb&&s"

    async def scenario(client):
        return await _fetch(client, upstream, "GET", target)

    assert _with_client(upstream, scenario)[0] == 200
    request_line, headers = upstream.requests[-1]
    assert request_line == f"GET {target}"
    assert [name.lower() for name, _ in headers] == ["host"]    # no User-Agent, Accept, Accept-Encoding
