"""`--trust-proxy`: which address is the client, given the TCP peer and X-Forwarded-For."""

from __future__ import annotations

import pytest

from tlskit.errors import InputError
from tlskit.server.trusted_proxy import TrustedProxies, parse_address


def test_forwarded_for_ignored_from_untrusted_peer():
    proxies = TrustedProxies.parse(["10.0.0.0/8"])
    assert proxies.client_ip("127.0.0.1", ["6.6.6.6"]) == "127.0.0.1"
    assert TrustedProxies.parse([]).client_ip("10.1.1.1", ["6.6.6.6"]) == "10.1.1.1"


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


def test_addresses_and_networks_parse_like_proxies_write_them():
    assert str(parse_address("::ffff:127.0.0.1")) == "127.0.0.1"
    assert parse_address("not-an-ip") is None
    assert TrustedProxies.parse(["127.0.0.1,::1"]).trusts("::1")
    with pytest.raises(InputError, match="--trust-proxy"):
        TrustedProxies.parse(["10.0.0.0/33"])
