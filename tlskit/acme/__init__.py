"""ACME issuance (Let's Encrypt by default, any RFC 8555 CA) on the `acme` library.

The public API, for the CLI and for other code such as ``tlskit serve --acme``::

    from tlskit.acme import issue_certificate, renew_due, HttpStandalone, Webroot, DnsHook, TlsAlpnStandalone

    issued = issue_certificate(["example.com", "www.example.com"], "/etc/tlskit", email="me@example.com",
                               challenge=Webroot(Path("/var/www/html")), agree_tos=True)
    issued.fullchain, issued.privkey, issued.not_after          # -> IssuedFiles

    report = renew_due("/etc/tlskit", days=30, deploy_hook="systemctl reload nginx")
    [o.status for o in report.outcomes]                          # "renewed" / "not-due" / "failed"

A server that already owns port 80 passes ``challenge=HttpTokens()`` and serves
``tokens.answer(request_path)`` itself. Everything raises TlskitError subclasses only (NetworkError,
exit 3, for the CA and the network). Files: ``DIR/<first name>/{privkey,cert,chain,fullchain}.pem`` and
``renewal.json``; the account key under ``DIR/accounts/``. See tlskit/acme/store.py.
"""

from tlskit.acme.challenges import DnsHook, HttpStandalone, HttpTokens, Pending, TlsAlpnStandalone, Webroot
from tlskit.acme.client import LETSENCRYPT, LETSENCRYPT_STAGING, NAMED_DIRECTORIES, resolve_directory
from tlskit.acme.lifecycle import (REVOCATION_REASONS, IssuedFiles, RenewOutcome, RenewReport, Revoked,
                                   issue_certificate, renew_due, revoke_certificate)

__all__ = [
    "issue_certificate", "renew_due", "revoke_certificate", "IssuedFiles", "RenewOutcome", "RenewReport",
    "Revoked", "HttpStandalone", "HttpTokens", "Webroot", "DnsHook", "TlsAlpnStandalone", "Pending",
    "LETSENCRYPT", "LETSENCRYPT_STAGING", "NAMED_DIRECTORIES", "resolve_directory", "REVOCATION_REASONS",
]
