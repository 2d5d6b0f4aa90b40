"""server/config.py: the serve options checked once, into parsed values (here: --acme and the certificate
files), and its messages naming each option as the user gave it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tlskit.cli.params import flag
from tlskit.errors import InputError, spelling_options
from tlskit.server.config import AcmeSettings, build_config
from tlskit.server.settings import resolve
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


@pytest.mark.parametrize("options, named", [
    ({"cert": "c.pem", "key": "k.pem"}, "acme and cert/key"),
    ({"key": "k.pem"}, "acme and cert/key"),
    ({"acme_renew_days": 0}, "acme_renew_days 0"),
    ({"acme_check_interval": 0.0}, "acme_check_interval 0.0"),
])
def test_bad_acme_combinations_are_refused_before_anything_starts(options, named):
    with pytest.raises(InputError) as refused:
        build_config({"acme": ["a.example"], **options})
    assert refused.value.message.startswith(named)


@pytest.mark.parametrize("options", [{"cert": "c.pem"}, {"key": "k.pem"}])
def test_cert_and_key_go_together(options):
    with spelling_options(flag), pytest.raises(InputError, match="^--cert and --key go together"):
        build_config(options)


def test_messages_name_each_option_where_the_user_gave_it(tmp_path):
    (tmp_path / "t.toml").write_text("port = 70000\n")
    settings = resolve({"port": "int", "key": "path", "workers": "int", "cert": "path"}, {"key": "k.pem"},
                       {"workers": 1}, {"TLSKIT_CERT": "c.pem"}, tmp_path / "t.toml")
    spell = settings.spelling(flag)
    assert [spell(name) for name in ("port", "key", "workers", "cert")] == [
        "port in t.toml", "--key", "--workers", "TLSKIT_CERT"]
    with spelling_options(spell), pytest.raises(InputError) as refused:
        build_config(settings.values)
    assert refused.value.message == "port in t.toml 70000 is not a TCP port; give a number from 1 to 65535"
    with spelling_options(spell), pytest.raises(InputError) as refused:
        build_config({**settings.values, "port": 443, "workers": 0})
    assert refused.value.message == "--workers 0 is not a positive number; give 1 or more"
    with spelling_options(spell), pytest.raises(InputError) as refused:
        build_config({"cert": "c.pem"})
    assert refused.value.message.startswith("TLSKIT_CERT and --key go together")


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
