"""`--trust-proxy`: which address is the client, given the TCP peer and X-Forwarded-For."""

from __future__ import annotations

import asyncio

import pytest

from tlskit.cli.params import flag
from tlskit.errors import InputError, spelling_options
from tlskit.server.trusted_proxy import (TrustedProxies, TrustedProxyMiddleware, address_key, parse_address,
                                         parse_networks)


def test_forwarded_for_ignored_from_untrusted_peer():
    proxies = TrustedProxies.parse(["10.0.0.0/8"])
    assert proxies.client_ip("127.0.0.1", ["6.6.6.6"]) == "127.0.0.1"
    assert TrustedProxies.parse([]).client_ip("10.1.1.1", ["6.6.6.6"]) == "10.1.1.1"
    # A peer that is not an address at all (a Unix socket's name) is never trusted.
    assert proxies.client_ip("unix:/run/x", ["6.6.6.6"]) == "unix:/run/x"


def test_rightmost_untrusted_address_is_the_client():
    proxies = TrustedProxies.parse(["10.0.0.0/8", "127.0.0.1"])
    # The client wrote 6.6.6.6 itself; 203.0.113.7 connected to our trusted 10.0.0.2, which connected to us.
    assert proxies.client_ip("127.0.0.1", ["6.6.6.6, 203.0.113.7", "10.0.0.2"]) == "203.0.113.7"
    assert proxies.client_ip("127.0.0.1", ["198.51.100.1:4567"]) == "198.51.100.1"
    assert proxies.client_ip("127.0.0.1", ["[2001:db8::1]:443"]) == "2001:db8::1"
    # All trusted: the leftmost is as far as we can see.
    assert proxies.client_ip("127.0.0.1", ["10.0.0.9, 10.0.0.2"]) == "10.0.0.9"
    # Garbage stops the walk at the nearest trusted hop.
    assert proxies.client_ip("127.0.0.1", ["evil, 10.0.0.2"]) == "10.0.0.2"
    assert proxies.client_ip("127.0.0.1", ["unknown"]) == "127.0.0.1"


def test_a_malformed_hop_stops_the_walk_so_what_the_client_wrote_left_of_it_is_never_believed():
    proxies = TrustedProxies.parse(["10.0.0.0/8", "127.0.0.1"])
    assert proxies.client_ip("127.0.0.1", ["6.6.6.6, garbage, 10.0.0.2"]) == "10.0.0.2"
    assert proxies.client_ip("127.0.0.1", ["6.6.6.6,,10.0.0.2"]) == "10.0.0.2"
    assert proxies.client_ip("127.0.0.1", ["6.6.6.6", "[::1"]) == "127.0.0.1"


def test_the_peer_is_reported_as_parsed():
    proxies = TrustedProxies.parse(["::ffff:0:0/96", "127.0.0.0/8"])
    # An IPv4-mapped peer is named by its IPv4 address once trusted.
    assert proxies.client_ip("::ffff:127.0.0.1", ["10.9.9.9"]) == "10.9.9.9"
    assert proxies.client_ip("::ffff:127.0.0.1", ["bad"]) == "127.0.0.1"


@pytest.mark.parametrize("text, expected", [
    ("1.2.3.4", "1.2.3.4"),
    (" 1.2.3.4 ", "1.2.3.4"),
    ('"1.2.3.4"', "1.2.3.4"),
    ('"[2001:db8::1]:443"', "2001:db8::1"),
    ("1.2.3.4:5678", "1.2.3.4"),
    ("[2001:db8::1]:443", "2001:db8::1"),
    ("[2001:db8::1]", "2001:db8::1"),
    ("2001:db8::1", "2001:db8::1"),
    ("fe80::1%eth0", "fe80::1"),
    ("[fe80::1%eth0]:80", "fe80::1"),
    ("::ffff:127.0.0.1", "127.0.0.1"),
    ("[::ffff:10.0.0.1]:99", "10.0.0.1"),
])
def test_addresses_parse_like_proxies_write_them(text, expected):
    assert str(parse_address(text)) == expected


@pytest.mark.parametrize("text", ["", "  ", "not-an-ip", "[2001:db8::1", "[]", "1.2.3.4:80:90x", "unknown",
                                  "1.2.3.4.5", "%eth0", "X1.2.3.4", "[::1]]", "[::1]x", "[::1]:", "[::1]:8o", "[::1]:x1"])
def test_anything_else_is_not_an_address(text):
    assert parse_address(text) is None


def test_networks_parse_from_lists_and_comma_separated_values():
    networks = parse_networks(["127.0.0.1,::1", " , 10.1.2.3/8 ,", "192.0.2.7"])
    assert [str(n) for n in networks] == ["127.0.0.1/32", "::1/128", "10.0.0.0/8", "192.0.2.7/32"]
    assert TrustedProxies.parse(["127.0.0.1,::1"]).trusts("::1")
    assert TrustedProxies.parse(["10.0.0.0/8"]).trusts("10.200.0.1")
    assert not TrustedProxies.parse(["10.0.0.0/8"]).trusts("11.0.0.1")
    assert not TrustedProxies.parse(["10.0.0.0/8"]).trusts("::ffff:11.0.0.1")
    assert TrustedProxies.parse(["10.0.0.0/8"]).trusts("::ffff:10.0.0.1")
    assert not TrustedProxies.parse(["0.0.0.0/0"]).trusts("garbage")
    assert not TrustedProxies.parse(["0.0.0.0/0"]).trusts(None)


def test_a_bad_network_names_the_option_the_value_and_an_example():
    with pytest.raises(InputError) as raised:
        TrustedProxies.parse(["10.0.0.0/33"])
    # Without a front end the option is its keyword; the CLI spells it as the flag.
    assert str(raised.value) == ("bad trust_proxy '10.0.0.0/33' (expected an IP address or CIDR such as "
                                 "10.0.0.0/8); for example 127.0.0.1/32")
    with spelling_options(flag), pytest.raises(InputError) as raised:
        parse_networks(["ok", "x"], setting="allow", why="not a network", fix="try 10.0.0.0/8")
    assert str(raised.value) == "bad --allow 'ok' (not a network); try 10.0.0.0/8"
    with spelling_options(str.upper), pytest.raises(InputError) as raised:
        parse_networks(["1.2.3.4/40"], setting="allow")
    assert raised.value.what == "bad ALLOW '1.2.3.4/40'" and raised.value.fix == "for example 127.0.0.1/32"


@pytest.mark.parametrize("ip, key", [
    ("192.0.2.1", "192.0.2.1"),
    ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
    ("2001:db8:1:2::9%eth0", "2001:db8:1:2::/64"),
    ("2001:db8:1:2:8000::1", "2001:db8:1:2::/64"),
    ("::ffff:192.0.2.1", "192.0.2.1"),
    ("not:an:address:at:all", "not:an:address:at:all"),
])
def test_per_address_limits_count_ipv4_hosts_and_ipv6_slash_64s(ip, key):
    assert address_key(ip) == key


async def _receive():
    return {"type": "http.request"}


async def _send(message):
    pass


def _through_middleware(proxies, client, headers, kind="http"):
    seen = {}

    async def app(scope, receive, send):
        assert (receive, send) == (_receive, _send)
        seen.update(scope)

    asyncio.run(TrustedProxyMiddleware(app, proxies)({"type": kind, "client": client, "headers": headers},
                                                     _receive, _send))
    return seen


def test_the_middleware_puts_the_real_client_in_the_scope_and_remembers_the_proxy():
    proxies = TrustedProxies.parse(["127.0.0.1"])
    seen = _through_middleware(proxies, ("127.0.0.1", 5000),
                               [(b"X-Forwarded-For", b"6.6.6.6, 203.0.113.9"), (b"host", b"x")])
    assert seen["client"] == ("203.0.113.9", 0)
    assert seen["tlskit.forwarded_by"] == "127.0.0.1"
    # Every X-Forwarded-For field counts, in order.
    seen = _through_middleware(proxies, ("127.0.0.1", 5000),
                               [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-for", b"127.0.0.1")])
    assert seen["client"] == ("203.0.113.9", 0)
    # The proxy itself as the client keeps its port.
    seen = _through_middleware(proxies, ("127.0.0.1", 5000), [(b"x-forwarded-for", b"127.0.0.1")])
    assert seen["client"] == ("127.0.0.1", 5000)


def test_the_middleware_leaves_untrusted_peers_and_requests_without_the_header_alone():
    proxies = TrustedProxies.parse(["10.0.0.0/8"])
    seen = _through_middleware(proxies, ("127.0.0.1", 5000), [(b"x-forwarded-for", b"203.0.113.9")])
    assert seen["client"] == ("127.0.0.1", 5000) and "tlskit.forwarded_by" not in seen
    seen = _through_middleware(proxies, ("10.0.0.1", 5000), [(b"x-real-ip", b"203.0.113.9")])
    assert seen["client"] == ("10.0.0.1", 5000) and "tlskit.forwarded_by" not in seen
    seen = _through_middleware(proxies, None, [(b"x-forwarded-for", b"203.0.113.9")])
    assert seen["client"] is None
    seen = _through_middleware(proxies, ("10.0.0.1", 5000), [(b"x-forwarded-for", b"203.0.113.9")], "lifespan")
    assert seen["client"] == ("10.0.0.1", 5000)


def test_the_middleware_closes_the_app_it_wraps():
    closed = []

    class App:
        async def aclose(self):
            closed.append(True)

    asyncio.run(TrustedProxyMiddleware(App(), TrustedProxies.parse([])).aclose())
    asyncio.run(TrustedProxyMiddleware(object(), TrustedProxies.parse([])).aclose())
    assert closed == [True]
