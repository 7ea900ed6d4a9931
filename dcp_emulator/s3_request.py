"""Reading an S3 request once, as moto will read it, and refusing what S3 refuses before moto sees it.

The gateway (``s3.S3Gateway``) decides whether a request may touch a key; moto then performs it. If
the two read the request differently (the first or the last of two ``uploadId``s, a ``Host`` one
takes for path style and the other for virtual-hosted style, parameters moto reads from a form
body), the check passes for one key and moto acts on another. So this module

* parses the query string strictly and refuses any repeated parameter (S3's ``InvalidArgument``);
* refuses form bodies, from which moto would read the parameters instead of the URL;
* derives bucket and key the way moto does (its own routing and parsing functions) so the gateway
  can refuse a request whose bucket or key the two would see differently;
* checks the parameters S3 validates (integers, continuation tokens, presigned expiry, XML bodies)
  so a malformed request gets S3's XML error instead of failing inside moto.
"""

from __future__ import annotations

import datetime as _dt
import email.utils
import io
import re
from typing import Any
from urllib.parse import parse_qsl, unquote, urlparse
from xml.etree import ElementTree as ET

from werkzeug.exceptions import HTTPException
from werkzeug.http import parse_options_header

from .s3_errors import S3Error

MAX_EXPIRES = 7 * 24 * 3600  # S3's limit for a presigned URL's X-Amz-Expires (seconds)
_INT32_MAX = 2**31 - 1
# Query parameters S3 requires to be (non-negative) integers.
_INTEGER_PARAMS = ("max-keys", "max-uploads", "max-parts", "part-number-marker", "max-buckets")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
# Subresources whose request body is an XML document (PUT/POST on a key).
_XML_BODY_SUBRESOURCES = ("tagging", "acl", "retention", "legal-hold", "restore", "select", "uploadId")
# Subresources of an existing object: S3 answers NoSuchKey when there is no such object.
_OBJECT_SUBRESOURCES = ("tagging", "acl", "retention", "legal-hold", "restore", "attributes")
_METHODS = ("GET", "HEAD", "PUT", "POST", "DELETE", "OPTIONS")
# POST on a key must name one of these; anything else is S3's MethodNotAllowed.
_POST_SUBRESOURCES = ("uploads", "uploadId", "restore", "select")
# The canned ACLs S3 knows (x-amz-acl); moto fails on any other value.
_CANNED_ACLS = ("private", "public-read", "public-read-write", "aws-exec-read", "authenticated-read",
                "bucket-owner-read", "bucket-owner-full-control", "log-delivery-write")
_RANGE_RE = re.compile(r"bytes=(\d*-\d*)(,\s*\d*-\d*)*\Z")
_XML_BODY_LIMIT = 4 << 20  # bytes of an XML body read up front (a complete list of 10,000 parts fits)


def invalid_argument(message: str, name: str, value: str) -> S3Error:
    """S3's InvalidArgument (400) naming the argument and its value, as S3 does."""
    return S3Error("InvalidArgument", message, 400, ArgumentName=name, ArgumentValue=value[:200])


def header(environ: dict, name: str) -> str | None:
    """A request header from the WSGI environ (None when absent)."""
    key = name.upper().replace("-", "_")
    if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        return environ.get(key)
    return environ.get("HTTP_" + key)


# ---------------------------------------------------------------------- one reading of the request
def parse_query(environ: dict) -> dict[str, str]:
    """The query string as one value per name; a repeated name is refused.

    moto reads the first of two equal names and a dict of the pairs reads the last: refusing the
    repetition is the only way both read the same value. The string must be percent-encoded UTF-8
    (werkzeug and urllib decode anything else differently).
    """
    raw = environ.get("QUERY_STRING") or ""
    if not raw.isascii():
        raise invalid_argument("The query string must be percent-encoded: it contains raw non-ASCII bytes.",
                               "QueryString", raw.encode("latin-1").decode("utf-8", "replace"))
    try:
        pairs = parse_qsl(raw, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        raise invalid_argument("The query string is not percent-encoded UTF-8.", "QueryString", raw) from None
    query: dict[str, str] = {}
    for name, value in pairs:
        if name in query:
            raise invalid_argument(f"Query parameter {name!r} is given more than once; S3 parameters may appear "
                                   "only once per request.", name, value)
        query[name] = value
    return query


def refuse_form_body(environ: dict, puts_object: bool) -> None:
    """Refuse a form-encoded body: moto would take the request's parameters from it, not from the URL.

    PutObject is let through: its parameters come from the path only, and its body is the object.
    """
    mimetype = parse_options_header(environ.get("CONTENT_TYPE") or "")[0].lower()
    if mimetype in _FORM_TYPES and not puts_object:
        raise invalid_argument(f"Content-Type {mimetype} is not accepted on this S3 request: the emulator reads "
                               "S3 parameters from the URL only, never from a form body (browser form uploads "
                               "are not supported). Send XML with Content-Type application/xml, or no body.",
                               "Content-Type", environ.get("CONTENT_TYPE") or "")


def moto_bucket_and_key(environ: dict, url_map: Any) -> tuple[str | None, str] | None:
    """The bucket and key moto's S3 handlers will act on, computed with moto's own routing and parsing.

    None when moto's router answers the request itself (no route, a redirect): moto then acts on
    nothing. The key is "" for bucket-level (and service-level) requests.
    """
    from moto.core.request import Request
    from moto.s3 import utils as vhost_utils
    from moto.s3.responses import S3Response
    from moto.s3bucket_path import utils as path_utils

    try:
        endpoint, _ = url_map.bind_to_environ(environ).match(method=environ.get("REQUEST_METHOD", "GET"))
    except HTTPException:
        return None
    # shallow: never touch the body; populate_request=False: leave the environ as moto will find it
    request = Request(environ, populate_request=False, shallow=True)
    host = request.headers.get("host") or ""
    if ".s3-accesspoint." in host:  # moto would look the bucket up as an access point
        return ("<access point>", "")
    virtual = S3Response.subdomain_based_buckets(request)
    url = request.raw_url
    bucket = vhost_utils.bucket_name_from_url(url) if virtual else path_utils.bucket_name_from_url(url)
    kind = endpoint.rsplit(".", 1)[-1].rstrip("0123456789")
    if kind == "ambiguous_dispatch":
        kind = "key_dispatch" if virtual else "bucket_dispatch"
    if kind == "bucket_dispatch":
        return bucket or None, ""
    path = unquote(request.raw_path)
    key = path.removeprefix("/") if virtual else path_utils.parse_key_name(path)
    return bucket or None, key


def copy_source(value: str) -> tuple[str, str] | None:
    """The (bucket, key) of an x-amz-copy-source header, parsed exactly as moto parses it."""
    src = unquote(urlparse(value).path).lstrip("/")
    if "/" not in src:
        return None
    bucket, key = src.split("/", 1)
    return bucket, key


# ---------------------------------------------------------------------- what S3 validates
def check_presign_expiry(expires: str | None) -> int:
    """X-Amz-Expires as S3 validates it: a number of seconds from 0 to 7 days."""
    if expires is None:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be given in a presigned URL.", 400)
    if not re.fullmatch(r"-?[0-9]+", expires):
        raise S3Error("AuthorizationQueryParametersError", f"X-Amz-Expires should be a number, not {expires[:40]!r}.",
                      400)
    seconds = int(expires)
    if seconds < 0:
        raise S3Error("AuthorizationQueryParametersError", "X-Amz-Expires must be non-negative.", 400)
    if seconds > MAX_EXPIRES:
        raise S3Error("AuthorizationQueryParametersError", f"X-Amz-Expires must be less than a week (in seconds) "
                      f"that is {MAX_EXPIRES}; it is {seconds}.", 400)
    return seconds


def check_parameters(method: str, key: str, query: dict[str, str], environ: dict, backend: Any,
                     bucket: Any) -> None:
    """S3's own validation of the parameters moto trusts (it would fail with an exception instead)."""
    if method not in _METHODS:
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource.", 405,
                      Method=method[:40], ResourceType="OBJECT" if key else "BUCKET")
    acl = header(environ, "x-amz-acl")
    if acl is not None and acl not in _CANNED_ACLS:
        raise invalid_argument(f"x-amz-acl must be one of S3's canned ACLs: {', '.join(_CANNED_ACLS)}.", "x-amz-acl",
                               acl)
    for name in _INTEGER_PARAMS:
        if name in query:
            _integer(name, query[name], 0, _INT32_MAX,
                     f"Provided {name} not an integer or within integer range.")
    if "partNumber" in query:
        _integer("partNumber", query["partNumber"], 1, 10000,
                 "Part number must be an integer between 1 and 10000, inclusive.")
    token = query.get("continuation-token")
    if token and token not in backend._pagination_tokens:
        raise invalid_argument("The continuation token provided is incorrect.", "continuation-token", token)
    if not key:
        return
    if method == "POST" and not any(name in query for name in _POST_SUBRESOURCES):
        raise S3Error("MethodNotAllowed", "The specified method is not allowed against this resource: POST on an "
                      "object needs ?uploads, ?uploadId=..., ?restore or ?select.", 405, Method="POST",
                      ResourceType="OBJECT")
    creates_upload = method == "POST" and "uploads" in query and not {"uploadId", "restore", "select"} & query.keys()
    if creates_upload and _has_body(environ):
        raise S3Error("InvalidRequest", "CreateMultipartUpload (POST ?uploads) takes no request body.", 400)
    # moto serves a multipart operation first (uploadId, POST ?uploads); any other subresource of an
    # object assumes the object (or the version asked for) exists.
    multipart = query.get("uploadId") or (method == "POST" and "uploads" in query)
    if not multipart and any(name in query for name in _OBJECT_SUBRESOURCES):
        version_id = query.get("versionId")
        if not _object_exists(bucket, key, version_id):
            if version_id is None:
                raise S3Error("NoSuchKey", "The specified key does not exist.", 404, Key=key)
            raise S3Error("NoSuchVersion", "The specified version does not exist.", 404, Key=key,
                          VersionId=version_id)


def _has_body(environ: dict) -> bool:
    chunked = "chunked" in (header(environ, "transfer-encoding") or "").lower()
    return chunked or environ.get("CONTENT_LENGTH") not in (None, "", "0")


def _object_exists(bucket: Any, key: str, version_id: str | None) -> bool:
    """Whether moto's bucket holds the object (that version of it), looked up as moto looks it up."""
    from moto.s3.models import FakeKey

    versions = bucket.keys.getlist(key, default=[])
    if version_id is None:
        return bool(versions) and isinstance(versions[-1], FakeKey)
    return any(isinstance(v, FakeKey) and str(v.version_id) == version_id for v in versions)


def _integer(name: str, value: str, low: int, high: int, message: str) -> None:
    if not (value.isascii() and value.isdigit() and low <= int(value) <= high):
        raise invalid_argument(message, name, value)


def check_xml_body(method: str, key: str, query: dict[str, str], environ: dict) -> bool:
    """Whether the request carries an XML body S3 would parse; a body that is not XML is MalformedXML.

    The body is read (bounded) and put back for moto. Documents that are XML but not the schema S3
    expects are refused by the caller when moto fails on them.
    """
    if not key or method not in ("PUT", "POST") or not any(name in query for name in _XML_BODY_SUBRESOURCES):
        return False
    if method == "PUT" and ("partNumber" in query or header(environ, "x-amz-copy-source") is not None):
        return False  # UploadPart(Copy), CopyObject: the body is object data (or nothing)
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return True
    if not 0 < length <= _XML_BODY_LIMIT:
        return True
    body = environ["wsgi.input"].read(length)
    environ["wsgi.input"] = io.BytesIO(body)
    try:
        ET.fromstring(body)
    except ET.ParseError:
        raise malformed_xml() from None
    return True


def malformed_xml() -> S3Error:
    """S3's MalformedXML (400), with S3's message."""
    return S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                   "published schema.", 400)


def normalize_for_moto(environ: dict) -> None:
    """Headers S3 ignores when malformed, made readable for moto (which fails on them) or dropped.

    If-(Un)Modified-Since: a date that is not an HTTP date is ignored, as HTTP requires and S3 does;
    moto only parses the RFC 1123 form. Range: a value that is not a byte range is ignored too.
    """
    value = environ.get("HTTP_RANGE")
    if value is not None and not _RANGE_RE.match(value.strip()):
        del environ["HTTP_RANGE"]
    for key in ("HTTP_IF_MODIFIED_SINCE", "HTTP_IF_UNMODIFIED_SINCE"):
        value = environ.get(key)
        if value is None:
            continue
        try:
            when = email.utils.parsedate_to_datetime(value)
            if when.tzinfo is None:  # the asctime form: HTTP dates are always GMT
                when = when.replace(tzinfo=_dt.UTC)
            environ[key] = email.utils.format_datetime(when.astimezone(_dt.UTC), usegmt=True)
        except (TypeError, ValueError, IndexError, OverflowError):
            del environ[key]
