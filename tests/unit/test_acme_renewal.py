"""When a certificate renews (tlskit.acme.renewal) and when `serve --acme` looks again
(tlskit.server.managed_acme.next_check_delay): pure rules, checked on certificates made here.

The same rules run against Pebble in tests/test_acme_lineages.py (short-lived certificates, an ARI
window served by a proxy) and tests/test_serve_acme.py (a server renewing on its own schedule).
"""

from __future__ import annotations

import datetime as dt

import pytest

from tlskit.acme.renewal import AriWindow, ari_certificate_id, ari_moment, plan_renewal
from tlskit.server.managed_acme import next_check_delay

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.timezone.utc)
DAY = dt.timedelta(days=1)


def certificate(lifetime: dt.timedelta, issued: dt.datetime = NOW, serial: int = 0x1234abcd):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "renew.example.com")])
    return (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(serial).not_valid_before(issued).not_valid_after(issued + lifetime)
            .add_extension(x509.AuthorityKeyIdentifier(b"\x01\x02\x03\xfe", None, None), critical=False)
            .sign(key, hashes.SHA256()))


@pytest.mark.parametrize("days, renew_after", [(90, 60), (45, 30), (6, 4)])
def test_by_default_a_third_of_the_lifetime_is_left(days, renew_after):
    plan = plan_renewal(certificate(days * DAY))
    assert plan.rule == "lifetime"
    assert plan.renew_at == NOW + renew_after * DAY
    assert f"a third of its {days}-day lifetime" in plan.reason
    assert not plan.due(NOW + renew_after * DAY - dt.timedelta(seconds=1))
    assert plan.due(NOW + renew_after * DAY)


def test_days_force_a_fixed_window_either_way():
    six_day = certificate(6 * DAY)
    assert plan_renewal(six_day, days=1).renew_at == NOW + 5 * DAY      # later than the lifetime rule
    ninety = certificate(90 * DAY)
    plan = plan_renewal(ninety, days=45)
    assert (plan.rule, plan.renew_at) == ("days", NOW + 45 * DAY)    # earlier than the lifetime rule
    assert plan_renewal(ninety, days=0).renew_at == NOW + 90 * DAY


def test_ari_window_overrides_the_lifetime_and_picks_a_stable_moment_inside():
    cert = certificate(90 * DAY)
    window = AriWindow(NOW + 70 * DAY, NOW + 72 * DAY, NOW + dt.timedelta(hours=6))
    plan = plan_renewal(cert, ari=window)
    assert plan.rule == "ari" and window.start <= plan.renew_at <= window.end
    assert plan_renewal(cert, ari=window).renew_at == plan.renew_at          # the same on every run
    others = {ari_moment(certificate(90 * DAY, serial=s), window) for s in range(1, 20)}
    assert len(others) == 19                                                 # clients spread over the window
    # A window that is over (the CA wants the certificate replaced) is due now.
    past = AriWindow(NOW - 2 * DAY, NOW - DAY, NOW)
    assert plan_renewal(cert, ari=past).due(NOW)


def test_with_days_ari_may_only_make_it_earlier():
    cert = certificate(90 * DAY)
    early = AriWindow(NOW + 10 * DAY, NOW + 11 * DAY, NOW)
    late = AriWindow(NOW + 80 * DAY, NOW + 81 * DAY, NOW)
    assert plan_renewal(cert, days=30, ari=early).rule == "ari"
    assert (plan_renewal(cert, days=30, ari=late).rule, plan_renewal(cert, days=30, ari=late).renew_at) == \
        ("days", NOW + 60 * DAY)


def test_a_key_that_does_not_match_or_force_is_due_at_once():
    cert = certificate(90 * DAY)
    assert plan_renewal(cert, key_matches=False).due(NOW) and plan_renewal(cert, key_matches=False).rule == "key-mismatch"
    assert plan_renewal(cert, force=True).due(NOW)


def test_ari_certificate_id_is_rfc_9773s():
    # RFC 9773 4.1: base64url(keyIdentifier) "." base64url(DER INTEGER content of the serial);
    # 0x87 has the high bit set, so DER needs a leading zero byte.
    assert ari_certificate_id(certificate(DAY, serial=0x87654321)) == "AQID_g.AIdlQyE"
    assert ari_certificate_id(certificate(DAY, serial=0x1234)) == "AQID_g.EjQ"


def test_serve_sleeps_until_the_certificate_is_due_not_on_a_fixed_beat():
    six_day = plan_renewal(certificate(6 * DAY))
    assert next_check_delay(six_day, NOW, failed=False) == pytest.approx(4 * 86400)
    ninety = plan_renewal(certificate(90 * DAY))
    assert next_check_delay(ninety, NOW, failed=False) == pytest.approx(60 * 86400)
    # A 30-second certificate (Pebble in tests): looked at again after 20 seconds.
    short = plan_renewal(certificate(dt.timedelta(seconds=30)))
    assert next_check_delay(short, NOW, failed=False) == pytest.approx(20)


def test_serve_retries_a_failed_renewal_sooner_as_expiry_nears():
    six_day = plan_renewal(certificate(6 * DAY))
    at_two_days_left = NOW + 4 * DAY
    assert next_check_delay(six_day, at_two_days_left, failed=True) == pytest.approx(2 * 86400 / 10)
    assert next_check_delay(six_day, NOW + 5.5 * DAY, failed=True) == pytest.approx(0.5 * 86400 / 10)
    # Expired, or a window wider than the lifetime: never faster than a minute for a long-lived one.
    assert next_check_delay(six_day, NOW + 7 * DAY, failed=True) == 60
    always_due = plan_renewal(certificate(90 * DAY), days=1000)
    assert next_check_delay(always_due, NOW, failed=False) == 60


def test_serve_asks_ari_again_when_the_ca_says():
    cert = certificate(90 * DAY)
    window = AriWindow(NOW + 60 * DAY, NOW + 62 * DAY, retry_after=NOW + dt.timedelta(hours=6))
    assert next_check_delay(plan_renewal(cert, ari=window), NOW, failed=False) == pytest.approx(6 * 3600)
    assert next_check_delay(plan_renewal(cert, ari=window), NOW, failed=False, max_sleep=100) == 100


def test_identifiers_take_ip_addresses_and_refuse_what_no_challenge_proves():
    from tlskit.acme.identifiers import check_challenge, normalize_names
    from tlskit.errors import InputError

    assert normalize_names(["Example.COM.", "192.0.2.10", "2001:DB8:0::1", "example.com"]) == \
        ["example.com", "192.0.2.10", "2001:db8::1"]
    for bad in ("1.2.3", "192.0.2.010", "bad_name!.example.com", "0.0.0.0", "*.*.example.com"):
        with pytest.raises(InputError):
            normalize_names([bad])
    with pytest.raises(InputError, match="dns-01 cannot prove"):
        check_challenge(["example.com", "192.0.2.10"], "dns-01")
    with pytest.raises(InputError, match="only dns-01"):
        check_challenge(["*.example.com"], "http-01")
    check_challenge(["192.0.2.10"], "tls-alpn-01")


def test_lineage_names_share_one_file_name_rule_with_the_cli():
    from tlskit.acme.store import lineage_name
    from tlskit.csr import default_file_stem

    assert lineage_name("*.example.com") == default_file_stem({"CN": "*.example.com"}) == "_wildcard.example.com"
    assert lineage_name("2001:db8::1") == "2001_db8__1"
    assert lineage_name("192.0.2.10") == "192.0.2.10"
