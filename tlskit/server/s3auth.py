"""S3-style ``Authorization`` headers: AWS Signature Version 4 and the older Version 2 (``AWS key:sig``).

Two modes, chosen by the access key the header names:

- **key mode** (what CData and other API platforms call S3-like authentication): the access key is a
  tlskit token; it authenticates its owner and the signature is not checked. It is exactly as strong
  as ``Authorization: Bearer`` with that token, and documented as such.
- **signed mode**: the access key is the id of a key pair made with ``tlskit users add --s3-key``; the
  request must carry a valid signature over its canonical form, made with the pair's secret, dated
  within :data:`MAX_SKEW` of the server's clock.

Verification rebuilds the canonical request as AWS specifies it and as botocore's signers
(``SigV4Auth``, ``S3SigV4Auth``, ``HmacV1Auth``) build it, which the tests check against those signers
over a running server. botocore signs on the client; nothing maintained verifies on the server, and the
rules are short: this module is them. Every check compares digests in constant time.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import re
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import quote

MAX_SKEW = dt.timedelta(minutes=15)
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
UNSIGNED_PAYLOAD = "UNSIGNED-PAYLOAD"
_V4_FIELD = re.compile(r"(Credential|SignedHeaders|Signature)=([^,\s]*)")
# Sub-resources Version 2 signs (as botocore's HmacV1Auth lists them).
_V2_SUBRESOURCES = frozenset({
    "accelerate", "acl", "cors", "defaultObjectAcl", "location", "logging", "partNumber", "policy",
    "requestPayment", "torrent", "versioning", "versionId", "versions", "website", "uploads", "uploadId",
    "response-content-type", "response-content-language", "response-expires", "response-cache-control",
    "response-content-disposition", "response-content-encoding", "delete", "lifecycle", "tagging", "restore",
    "storageClass", "notification", "replication", "analytics", "metrics", "inventory", "select",
    "select-type", "object-lock",
})


class BadSignature(ValueError):
    """The header is malformed, stale, or its signature does not match: a 401 like a wrong password."""


@dataclass(frozen=True)
class S3Authorization:
    """What an S3-style header says; ``version`` is 4 or 2."""

    version: int
    access_key: str
    signature: str
    date: str = ""                       # V4: the credential scope's date (YYYYMMDD)
    region: str = ""
    service: str = ""
    signed_headers: tuple[str, ...] = ()


def parse_authorization(value: str) -> S3Authorization:
    """``AWS4-HMAC-SHA256 Credential=...`` or ``AWS KEY:SIGNATURE``; raises BadSignature."""
    scheme, _, rest = value.strip().partition(" ")
    if scheme == "AWS4-HMAC-SHA256":
        fields = dict(_V4_FIELD.findall(rest))
        if set(fields) != {"Credential", "SignedHeaders", "Signature"}:
            raise BadSignature("AWS4-HMAC-SHA256 needs Credential, SignedHeaders and Signature")
        parts = fields["Credential"].split("/")
        if len(parts) != 5 or parts[4] != "aws4_request" or not parts[0] or not re.fullmatch(r"\d{8}", parts[1]):
            raise BadSignature("Credential is not KEY/DATE/REGION/SERVICE/aws4_request")
        signed = tuple(fields["SignedHeaders"].split(";"))
        if "host" not in signed or any(name != name.lower() or not name for name in signed):
            raise BadSignature("SignedHeaders must be lower case and include host")
        if not re.fullmatch(r"[0-9a-f]{64}", fields["Signature"]):
            raise BadSignature("Signature is not 64 hex digits")
        return S3Authorization(4, parts[0], fields["Signature"], parts[1], parts[2], parts[3], signed)
    if scheme == "AWS":
        key, colon, signature = rest.strip().rpartition(":")
        if not colon or not key or not signature:
            raise BadSignature("AWS needs KEY:SIGNATURE")
        return S3Authorization(2, key, signature)
    raise BadSignature("not an S3-style scheme")


def _header_values(headers: list[tuple[bytes, bytes]], name: str) -> list[str]:
    wanted = name.encode("latin-1")
    return [value.decode("latin-1") for key, value in headers if key == wanted]


def _one_header(headers, name: str) -> str | None:
    values = _header_values(headers, name)
    return values[0].strip() if values else None


def check_date(headers, now: dt.datetime, version: int, credential_date: str = "") -> None:
    """The request's own date is within MAX_SKEW of ``now`` (and the V4 scope's date is that day)."""
    if version == 4:
        stamp = _one_header(headers, "x-amz-date")
        try:
            when = dt.datetime.strptime(stamp or "", "%Y%m%dT%H%M%SZ").replace(tzinfo=dt.timezone.utc)
        except ValueError:
            raise BadSignature("X-Amz-Date missing or not YYYYMMDDTHHMMSSZ") from None
        if stamp[:8] != credential_date:
            raise BadSignature("the Credential's date is not X-Amz-Date's")
    else:
        stamp = _one_header(headers, "x-amz-date") or _one_header(headers, "date")
        try:
            when = parsedate_to_datetime(stamp or "")
        except (TypeError, ValueError):
            raise BadSignature("Date missing or not an HTTP date") from None
        if when.tzinfo is None:
            when = when.replace(tzinfo=dt.timezone.utc)
    if abs(now - when) > MAX_SKEW:
        raise BadSignature("the request is dated more than 15 minutes from the server's clock")


def payload_hash(headers, body: bytes | None) -> str:
    """What V4 signs for the body: ``X-Amz-Content-SHA256`` when sent (checked against the body when
    the body is at hand), else the SHA-256 of the body."""
    declared = _one_header(headers, "x-amz-content-sha256")
    if declared is not None:
        if body is not None and declared != UNSIGNED_PAYLOAD and not declared.startswith("STREAMING-") \
                and not hmac.compare_digest(declared, hashlib.sha256(body).hexdigest()):
            raise BadSignature("X-Amz-Content-SHA256 is not the body's hash")
        return declared
    if body is None:
        raise BadSignature("the body's hash is needed and not declared")
    return hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256


def canonical_requests_v4(method: str, raw_path: bytes, query: bytes, headers, auth: S3Authorization,
                          body_hash: str) -> list[str]:
    """The canonical request(s) a V4 signer may have signed: the generic form (the path normalized and
    encoded once more) and, for the s3 service, S3's (the path exactly as sent)."""
    path = raw_path.decode("latin-1") or "/"
    pairs = sorted(pair.partition("=")[::2] for pair in query.decode("latin-1").split("&") if query)
    canonical_query = "&".join(f"{key}={value}" for key, value in pairs)
    lines = []
    for name in auth.signed_headers:
        values = _header_values(headers, name)
        if not values:
            raise BadSignature(f"signed header {name} is missing")
        lines.append(f"{name}:{','.join(' '.join(v.split()) for v in values)}")
    tail = "\n".join([canonical_query, "\n".join(lines) + "\n", ";".join(auth.signed_headers), body_hash])
    forms = [f"{method}\n{quote(_remove_dot_segments(path), safe='/~')}\n{tail}"]
    if auth.service == "s3":
        forms.append(f"{method}\n{path}\n{tail}")
    return forms


def _remove_dot_segments(path: str) -> str:
    """RFC 3986 5.2.4, with consecutive slashes collapsed, as AWS services and botocore do."""
    kept: list[str] = []
    for segment in path.split("/"):
        if segment == "..":
            if kept:
                kept.pop()
        elif segment and segment != ".":
            kept.append(segment)
    first = "/" if path.startswith("/") else ""
    last = "/" if path.endswith("/") and kept else ""
    return first + "/".join(kept) + last


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode("utf-8"), hashlib.sha256).digest()


def verify_v4(auth: S3Authorization, secret: str, method: str, raw_path: bytes, query: bytes, headers,
              body: bytes | None, now: dt.datetime) -> None:
    """Raise BadSignature unless ``auth`` is a valid V4 signature of this request by ``secret``."""
    check_date(headers, now, 4, auth.date)
    body_hash = payload_hash(headers, body)
    stamp = _one_header(headers, "x-amz-date")
    scope = f"{auth.date}/{auth.region}/{auth.service}/aws4_request"
    key = _hmac(("AWS4" + secret).encode("utf-8"), auth.date)
    for part in (auth.region, auth.service, "aws4_request"):
        key = _hmac(key, part)
    for canonical in canonical_requests_v4(method, raw_path, query, headers, auth, body_hash):
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode('utf-8')).hexdigest()}"
        expected = hmac.new(key, to_sign.encode("utf-8"), hashlib.sha256).hexdigest()
        if hmac.compare_digest(expected, auth.signature):
            return
    raise BadSignature("the signature does not match")


def verify_v2(auth: S3Authorization, secret: str, method: str, raw_path: bytes, query: bytes, headers,
              now: dt.datetime) -> None:
    """Raise BadSignature unless ``auth`` is a valid Version 2 (HMAC-SHA1) signature by ``secret``."""
    check_date(headers, now, 2)
    standard = [_one_header(headers, name) or "" for name in ("content-md5", "content-type", "date")]
    custom = {}
    for key, value in headers:
        name = key.decode("latin-1")
        if name.startswith("x-amz-"):
            custom.setdefault(name, []).append(value.decode("latin-1").strip())
    amz = "".join(f"{name}:{','.join(custom[name])}\n" for name in sorted(custom))
    resource = raw_path.decode("latin-1") or "/"
    subresources = sorted(part.split("=", 1) for part in query.decode("latin-1").split("&")
                          if query and part.split("=", 1)[0] in _V2_SUBRESOURCES)
    if subresources:
        resource += "?" + "&".join("=".join(item) for item in subresources)
    to_sign = f"{method}\n" + "\n".join(standard) + "\n" + amz + resource
    expected = base64.b64encode(hmac.new(secret.encode("utf-8"), to_sign.encode("utf-8"), hashlib.sha1).digest())
    if not hmac.compare_digest(expected.decode("ascii"), auth.signature):
        raise BadSignature("the signature does not match")
