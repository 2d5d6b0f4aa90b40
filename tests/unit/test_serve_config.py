"""server/config.py: the serve options checked once, into parsed values (here: --acme and the certificate files)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlskit.errors import InputError
from tlskit.server.config import AcmeSettings, build_config
from tlskit.server.managed_acme import ManagedCertificate


def test_acme_options_become_one_settings_object():
    config = build_config({"acme": ["a.example", "b.example"], "email": "ops@example.com", "agree_tos": True,
                           "directory": "https://ca.example/dir", "directory_ca_file": "ca.pem",
                           "acme_renew_days": 10, "acme_check_interval": 60.0})
    assert config.acme == AcmeSettings(("a.example", "b.example"), "ops@example.com", True, "https://ca.example/dir",
                                       Path("ca.pem"), 10, 60.0)


def test_without_acme_names_the_acme_options_are_no_settings():
    config = build_config({"acme": None, "email": "ops@example.com", "agree_tos": True, "directory": None})
    assert config.acme is None


@pytest.mark.parametrize("options, flag", [
    ({"cert": "c.pem", "key": "k.pem"}, "--acme and --cert/--key"),
    ({"key": "k.pem"}, "--acme and --cert/--key"),
    ({"acme_renew_days": 0}, "--acme-renew-days 0"),
    ({"acme_check_interval": 0.0}, "--acme-check-interval 0.0"),
])
def test_bad_acme_combinations_are_refused_before_anything_starts(options, flag):
    with pytest.raises(InputError) as refused:
        build_config({"acme": ["a.example"], **options})
    assert refused.value.message.startswith(flag)


@pytest.mark.parametrize("options", [{"cert": "c.pem"}, {"key": "k.pem"}])
def test_cert_and_key_go_together(options):
    with pytest.raises(InputError, match="--cert and --key go together"):
        build_config(options)


def test_a_managed_certificate_replaces_the_files_served(tmp_path):
    config = build_config({"acme": ["a.example"], "redirect_port": 8080, "port": 8443})
    managed = ManagedCertificate(names=["a.example"], out_dir=tmp_path / "acme", directory="https://ca.example/dir",
                                 http_port=8080)
    serving = managed.serving(config)
    assert (serving.cert, serving.key) == (managed.fullchain, managed.privkey)
    assert serving.cert.parent == tmp_path / "acme" / "a.example"
    assert serving.acme_webroot == tmp_path / "acme" / "webroot"
    assert serving.acme_lineages == (serving.cert.parent,)
    assert (serving.redirect_port, serving.port, serving.acme) == (8080, 8443, config.acme)
