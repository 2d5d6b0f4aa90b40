"""ACME issuance (Let's Encrypt by default, any RFC 8555 CA) on the `acme` library.

The public API, for the CLI and for other code such as ``tlskit serve --acme``::

    from tlskit.acme import issue_certificate, renew_due, HttpStandalone, Webroot, DnsHook, TlsAlpnStandalone

    issued = issue_certificate(["example.com", "www.example.com"], "/etc/tlskit", email="me@example.com",
                               challenge=Webroot(Path("/var/www/html")), agree_tos=True)
    issued.fullchain, issued.privkey, issued.not_after          # -> IssuedFiles

    report = renew_due("/etc/tlskit", deploy_hook="systemctl reload nginx")
    [o.status for o in report.outcomes]                          # "renewed" / "not-due" / "failed"

    list_certificates("/etc/tlskit")                             # names, expiry, next renewal and why
    show_account("/etc/tlskit"); rollover_key("/etc/tlskit")     # account care

A server that already owns port 80 passes ``challenge=HttpTokens()`` and serves
``tokens.answer(request_path)`` itself. Everything raises TlskitError subclasses only (NetworkError,
exit 3, for the CA and the network). Files: ``DIR/<first name>/{privkey,cert,chain,fullchain}.pem`` and
``renewal.json``; the account key under ``DIR/accounts/``. See tlskit/acme/store.py.

Modules: ``client`` (the network layer, sessions), ``accounts``, ``orders`` (one order to the end,
chains), ``renewal`` (when to renew: lifetime, ARI, fixed days), ``lifecycle`` (issue/renew/revoke with
files), ``lineages`` (list, delete), ``identifiers`` (DNS names and IP addresses, the CSR),
``challenges`` (the solvers), ``served`` (is the new certificate served), ``store`` (the files).
"""

from tlskit.acme.accounts import AccountInfo, deactivate, rollover_key, show_account, update_email
from tlskit.acme.challenges import DnsHook, HttpStandalone, HttpTokens, Pending, TlsAlpnStandalone, Webroot
from tlskit.acme.client import LETSENCRYPT, LETSENCRYPT_STAGING, NAMED_DIRECTORIES, resolve_directory
from tlskit.acme.lifecycle import (REVOCATION_REASONS, IssuedFiles, RenewOutcome, RenewReport, Revoked,
                                   issue_certificate, renew_due, revoke_certificate)
from tlskit.acme.lineages import CertificateStatus, Deleted, delete_certificate, list_certificates
from tlskit.acme.renewal import AriWindow, RenewalPlan

__all__ = [
    "issue_certificate", "renew_due", "revoke_certificate", "IssuedFiles", "RenewOutcome", "RenewReport",
    "Revoked", "HttpStandalone", "HttpTokens", "Webroot", "DnsHook", "TlsAlpnStandalone", "Pending",
    "LETSENCRYPT", "LETSENCRYPT_STAGING", "NAMED_DIRECTORIES", "resolve_directory", "REVOCATION_REASONS",
    "list_certificates", "delete_certificate", "CertificateStatus", "Deleted", "RenewalPlan", "AriWindow",
    "AccountInfo", "show_account", "update_email", "rollover_key", "deactivate",
]
