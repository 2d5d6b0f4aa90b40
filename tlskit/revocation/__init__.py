"""Is a certificate of a verified path revoked? CRLs (given, or fetched from the distribution points) and OCSP.

Failures carry OpenSSL's numbers: 23 revoked, 3 no CRL for a certificate that needs one, 8 a CRL whose
signature fails, 11/12 a CRL not yet valid or expired, 35 an issuer whose keyUsage forbids CRL signing,
36 a CRL extension tlskit does not process; 74/75 for OCSP answers that cannot be relied on.
"""

from tlskit.revocation.crl import crl_urls, load_crls, parse_crls
from tlskit.revocation.ocsp import OcspAnswer, judge_response, ocsp_urls
from tlskit.revocation.status import RevocationStatus

__all__ = ["OcspAnswer", "RevocationStatus", "crl_urls", "judge_response", "load_crls", "ocsp_urls", "parse_crls"]
