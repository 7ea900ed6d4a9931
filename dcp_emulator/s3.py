"""The S3 import endpoint: moto's S3 served on the emulator's own port, behind SigV4 checks.

``S3Gateway.middleware`` wraps the Flask app's WSGI callable. Requests for the bucket (path style
``/optimizely-import/...``, virtual-host style ``Host: optimizely-import.<host>``) or any other
SigV4-signed request outside the emulator's own route prefixes go to moto's S3 WSGI app; everything
else goes to Flask. Before moto sees a request we

* verify its SigV4 signature (header or presigned-query form) with botocore's own signer, using the
  secret of the table or service that issued the access key;
* check the path against the key's scope (table key: ``dcp/{service}/{table}/``, service key:
  ``dcp/{service}/``) and the object size against ``config.max_object_bytes``;

and answer S3's XML ``AccessDenied`` / ``EntityTooLarge`` otherwise, so nothing is stored. Requests that
carry or return object bytes are handled by ``s3_objects.py`` (bodies streamed to disk, moto told about
them without the bytes); once a PutObject/CopyObject or CompleteMultipartUpload under a table path has
stored the object, it is queued as an upload before the client gets its answer.

Isolation: moto's backends are process-global, keyed by AWS account id. Each gateway has its own
random 12-digit account id, injected into every request as ``x-moto-account-id``, and its own bucket
object in that account, so several emulators in one process never see each other's objects.
"""

from __future__ import annotations

import datetime as _dt
import hmac
import logging
import re
import secrets
import uuid
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import quote
from xml.sax.saxutils import escape

from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.compat import HTTPHeaders
from botocore.credentials import Credentials

from . import s3_moto
from .bulk import IMPORT_BUCKET
from .ingest import Ingestor
from .s3_body import BufferDir, too_large
from .s3_errors import S3Error
from .s3_objects import ObjectBodies
from .s3_request import (
    check_parameters,
    check_presign_expiry,
    check_xml_body,
    copy_source,
    invalid_argument,
    malformed_xml,
    moto_bucket_and_key,
    normalize_for_moto,
    parse_query,
    refuse_form_body,
)
from .s3_request import header as _header
from .store import Store
from .urls import OWN_PREFIXES

log = logging.getLogger("dcp_emulator.s3")

# Query parameters that make a PUT on a key something other than writing the object's bytes.
_PUT_SUBRESOURCES = {"partNumber", "uploadId", "acl", "tagging", "retention", "legal-hold", "restore"}
_TABLE_KEY_RE = re.compile(r"dcp/([0-9]+)/([0-9]+)/(.+)\Z", re.DOTALL)
_DRAIN_LIMIT = 64 * 1024 * 1024  # bytes of a refused body read (and dropped) so the client sees our answer


def _denied(message: str) -> S3Error:
    return S3Error("AccessDenied", message, 403)


def _restricted(signer_class: type) -> type:
    """botocore's SigV4 signer class, signing exactly the headers the client says it signed."""

    class Restricted(signer_class):
        def __init__(self, credentials: Credentials, service: str, region: str, signed: list[str]):
            super().__init__(credentials, service, region)
            self._signed = signed

        def headers_to_sign(self, request: AWSRequest) -> HTTPHeaders:
            headers = HTTPHeaders()
            for name in self._signed:
                headers[name] = request.headers.get(name, "")
            return headers

    return Restricted


_HeaderAuth = _restricted(S3SigV4Auth)
_QueryAuth = _restricted(S3SigV4QueryAuth)


class S3Gateway:
    """One emulator's S3 endpoint: its moto account, bucket, request checks and completion hook."""

    def __init__(self, store: Store, ingestor: Ingestor, max_object_bytes: int):
        self.store = store
        self.ingestor = ingestor
        self.max_object_bytes = max_object_bytes
        self.account_id = str(secrets.randbelow(9 * 10**11) + 10**11)  # 12 digits, random per emulator
        self._moto_app = s3_moto.create_app()
        # Object and part bytes live on disk next to the ingest's spooled files (same directory, so an
        # object is handed to the ingest by a hard link, not a copy).
        self.objects = ObjectBodies(self.account_id, IMPORT_BUCKET, BufferDir(ingestor.spool_dir), self._call_moto,
                                    max_object_bytes)
        self.ensure_bucket()

    # ------------------------------------------------------------------ lifecycle
    @property
    def _backend(self) -> Any:
        """moto's S3 backend of this emulator's account (looked up anew: a moto reset replaces it)."""
        return s3_moto.backend(self.account_id)

    def ensure_bucket(self) -> Any:
        """moto's bucket object of this emulator, re-created (empty) if a moto reset dropped it."""
        return s3_moto.ensure_bucket(self.account_id, IMPORT_BUCKET)

    @property
    def bucket(self) -> Any:
        """moto's bucket object of this emulator (re-created if it went missing)."""
        return self.ensure_bucket()

    def reset(self) -> None:
        """Empty the bucket (objects and unfinished multipart uploads), deleting their on-disk buffers."""
        self.objects.reset()

    def close(self) -> None:
        """Empty the bucket and drop this emulator's moto account."""
        self.reset()
        s3_moto.drop_account(self.account_id)

    def readiness(self) -> tuple[bool, str]:
        """Ready when the bucket exists in moto (re-created first if a moto reset dropped it)."""
        self.ensure_bucket()
        return s3_moto.has_bucket(self.account_id, IMPORT_BUCKET), \
            f"bucket {IMPORT_BUCKET} (moto account {self.account_id})"

    # ------------------------------------------------------------------ routing
    def middleware(self, app: Callable) -> Callable:
        """A WSGI callable sending S3 requests here and everything else to ``app``."""

        def dispatch(environ: dict, start_response: Callable) -> Iterable[bytes]:
            if self.is_s3_request(environ):
                return self(environ, start_response)
            return app(environ, start_response)

        return dispatch

    @staticmethod
    def is_s3_request(environ: dict) -> bool:
        """Whether a request is meant for the S3 endpoint rather than the emulator's HTTP APIs."""
        path = environ.get("PATH_INFO") or "/"
        if path.startswith(OWN_PREFIXES):
            return False
        host = (environ.get("HTTP_HOST") or "").lower()
        if host.startswith(IMPORT_BUCKET + "."):
            return True
        if path == "/" + IMPORT_BUCKET or path.startswith("/" + IMPORT_BUCKET + "/"):
            return True
        auth = environ.get("HTTP_AUTHORIZATION") or ""
        query = environ.get("QUERY_STRING") or ""
        return auth.startswith(("AWS4-HMAC-SHA256", "AWS ")) or "X-Amz-Signature=" in query \
            or "AWSAccessKeyId=" in query

    # ------------------------------------------------------------------ one S3 request
    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        request_id = uuid.uuid4().hex[:16].upper()
        method = environ.get("REQUEST_METHOD", "GET").upper()
        bucket, key = self._bucket_and_key(environ)
        resource = "/" + (bucket or "") + ("/" + key if key else "")
        moto_bucket = self.ensure_bucket()  # a moto reset (mock_aws in the same process) may have dropped it
        environ = dict(environ)  # normalized below for moto; the server's environ stays as it was
        if not environ.get("RAW_URI") and environ.get("REQUEST_URI"):
            # moto takes the undecoded path from RAW_URI only (gunicorn, werkzeug); waitress says REQUEST_URI.
            # Without it moto percent-decodes the decoded path again: 'a%2541' would be key 'aA', not 'a%41'.
            environ["RAW_URI"] = environ["REQUEST_URI"]
        try:
            # One parsed reading of the request for the checks and for moto (see s3_request).
            query = parse_query(environ)
            owner = self._authenticate(environ, method, query)
            self._check_same_target(environ, bucket, key)
            target = self._authorize(owner, method, bucket, key, query, environ)
            refuse_form_body(environ, puts_object=method == "PUT" and bool(key) and self._completes_object(method, query)
                             and _header(environ, "x-amz-copy-source") is None)
            self._check_upload_id(bucket, key, query)
            check_parameters(method, key, query, environ, self._backend, moto_bucket)
            self._check_size(method, bucket, key, query, environ)
            xml_body = check_xml_body(method, key, query, environ)
            normalize_for_moto(environ)
        except S3Error as e:
            if e.code not in ("EntityTooLarge", "MissingContentLength"):  # those bodies are not read
                _drain(environ)
            return self._error(start_response, e, resource, request_id, method)
        except Exception as e:  # a bug in the checks: still S3's XML error, never the server's HTML page
            log.exception("S3 request %s %s failed in the checks", method, resource)
            return self._internal_error(start_response, e, resource, request_id, method)
        environ["HTTP_X_MOTO_ACCOUNT_ID"] = self.account_id
        try:
            answer = None
            if bucket == IMPORT_BUCKET and key:
                # Requests that carry or return object bytes: streamed to and from disk (s3_objects.py).
                answer = self.objects.handle(method, key, query, environ,
                                             lambda stored_key, obj: self._object_completed(target, stored_key, obj))
            if answer is None:
                try:
                    answer = self._call_moto(environ)
                except Exception:
                    if not xml_body:
                        raise
                    # moto fails on XML that is well-formed but not S3's schema (no TagSet, no Days...)
                    log.debug("moto refused the XML body of %s %s", method, resource, exc_info=True)
                    raise malformed_xml() from None
            status, headers, body = answer
        except S3Error as e:
            return self._error(start_response, e, resource, request_id, method)
        except Exception as e:  # a failure inside moto or while spooling: S3's InternalError, logged
            log.exception("S3 request %s %s failed", method, resource)
            return self._internal_error(start_response, e, resource, request_id, method)
        start_response(status, headers + [("x-amz-request-id", request_id)])
        return body

    def _call_moto(self, environ: dict) -> tuple[str, list, list[bytes]]:
        """moto's answer to a request: (status line, headers, body pieces)."""
        captured: dict[str, Any] = {}

        def capture(status: str, headers: list, exc_info: Any = None):
            captured["status"], captured["headers"] = status, headers
            return lambda data: None  # moto (Flask) never uses write()

        body = self._moto_app(environ, capture)
        try:
            pieces = list(body)  # moto's bodies are XML or empty: object bytes never go through moto
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()
        return captured["status"], list(captured["headers"]), pieces

    @staticmethod
    def _internal_error(start_response: Callable, e: Exception, resource: str, request_id: str,
                        method: str) -> Iterable[bytes]:
        return S3Gateway._error(start_response, S3Error("InternalError", f"Internal emulator error "
                           f"({type(e).__name__}: {e}); this is a bug in dcp-emulator.", 500),
                           resource, request_id, method)

    def _check_same_target(self, environ: dict, bucket: str | None, key: str) -> None:
        """Refuse a request whose bucket or key moto would read differently from the checks here.

        e.g. ``Host: www.optimizely-import.x`` (virtual-hosted style to moto), ``//optimizely-import/k``
        (moto keeps the bucket in the key), a percent-encoded bucket name.
        """
        seen = moto_bucket_and_key(environ, self._moto_app.url_map)
        if seen is None or seen == (bucket, key):
            return
        host = environ.get("HTTP_HOST") or ""
        raise invalid_argument(
            f"Ambiguous request: with Host {host!r} and path {environ.get('RAW_URI') or environ.get('PATH_INFO')!r} "
            f"the S3 engine would act on bucket {seen[0]!r}, key {seen[1]!r}, not bucket {bucket!r}, key {key!r}. "
            f"Send path-style requests (http://HOST:PORT/{IMPORT_BUCKET}/KEY, where HOST is the emulator's address, "
            f"e.g. localhost or an IP) or virtual-hosted-style ones (Host: {IMPORT_BUCKET}.HOST).", "Host", host)

    @staticmethod
    def _bucket_and_key(environ: dict) -> tuple[str | None, str]:
        # PATH_INFO is the percent-decoded path as latin-1 code points (PEP 3333); keys are UTF-8.
        path = (environ.get("PATH_INFO") or "/").encode("latin-1").decode("utf-8", "replace")
        host = (environ.get("HTTP_HOST") or "").lower()
        if host.startswith(IMPORT_BUCKET + "."):
            return IMPORT_BUCKET, path[1:]
        bucket, _, key = path[1:].partition("/")
        return (bucket or None), key

    @staticmethod
    def _completes_object(method: str, query: dict) -> bool:
        """Whether a request stores a whole object (PutObject, CopyObject, CompleteMultipartUpload)."""
        if method == "PUT":
            return not (_PUT_SUBRESOURCES & query.keys())
        return method == "POST" and "uploadId" in query

    # ------------------------------------------------------------------ authentication (SigV4)
    def _authenticate(self, environ: dict, method: str, params: dict[str, str]) -> dict:
        """The issuer of the request's access key, after checking the SigV4 signature."""
        auth = environ.get("HTTP_AUTHORIZATION") or ""
        if auth and any(name in params for name in ("X-Amz-Signature", "X-Amz-Credential", "X-Amz-Algorithm")):
            raise invalid_argument("Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, "
                                   "Signature query string parameter or the Authorization header should be "
                                   "specified.", "Authorization", auth)
        if auth.startswith("AWS4-HMAC-SHA256 "):
            pairs = [part.strip().split("=", 1) for part in auth[len("AWS4-HMAC-SHA256 "):].split(",") if "=" in part]
            fields = dict(pairs)
            if len(fields) != len(pairs):  # e.g. two Authorization headers, joined by the server
                raise S3Error("AuthorizationHeaderMalformed", "The authorization header is malformed: each of "
                              "Credential, SignedHeaders and Signature must appear once.", 400)
            credential, signed, signature = fields.get("Credential"), fields.get("SignedHeaders"), \
                fields.get("Signature")
            timestamp = _header(environ, "x-amz-date") or ""
            presigned = False
        elif params.get("X-Amz-Algorithm") == "AWS4-HMAC-SHA256" or "X-Amz-Signature" in params:
            credential, signed, signature = (params.get("X-Amz-Credential"), params.get("X-Amz-SignedHeaders"),
                                             params.get("X-Amz-Signature"))
            timestamp = params.get("X-Amz-Date") or ""
            presigned = True
            expires = check_presign_expiry(params.get("X-Amz-Expires"))
        elif auth.startswith("AWS ") or "AWSAccessKeyId" in params:
            raise _denied("Signature Version 2 is not accepted: sign requests with Signature Version 4 "
                          "(AWS4-HMAC-SHA256); for presigned URLs from boto3 create the client with "
                          "botocore.config.Config(signature_version='s3v4').")
        else:
            raise _denied("Anonymous request: S3 requests must be signed (SigV4) with the aws_access_key and "
                          "aws_secret_key of the table (or DCP service) you upload to.")
        if not (credential and signed and signature and timestamp):
            raise _denied("Malformed SigV4 authorization: Credential, SignedHeaders, Signature and X-Amz-Date "
                          "are all required.")
        scope = credential.split("/")
        if len(scope) != 5 or scope[4] != "aws4_request":
            raise _denied(f"Malformed SigV4 credential scope {credential!r}: expected "
                          "ACCESS_KEY/YYYYMMDD/REGION/s3/aws4_request.")
        access_key, _date, region, service, _ = scope
        owner = self.store.credentials.resolve_aws_key(access_key)
        if owner is None:
            raise _denied(f"Unknown AWS access key {access_key!r}: it was not issued by this emulator. Use the "
                          "aws_access_key of the table (GET /experiment/v1/dcp_datasources/{id}) or DCP service.")
        expected = self._signature(environ, method, owner["secret"], access_key, region, service,
                                   signed.split(";"), timestamp, presigned)
        if not hmac.compare_digest(expected, signature):
            raise _denied(f"Signature mismatch for access key {access_key!r}: the request was not signed with "
                          "this key's secret (check aws_secret_key), or it was altered after signing.")
        if presigned:
            _check_expiry(timestamp, expires, self.store.clock.now())
        return {**owner, "access_key": access_key}

    @staticmethod
    def _signature(environ: dict, method: str, secret: str, access_key: str, region: str, service: str,
                   signed: list[str], timestamp: str, presigned: bool) -> str:
        """The signature botocore computes for this request, as the client should have signed it."""
        raw_uri = environ.get("RAW_URI") or environ.get("REQUEST_URI")
        if not raw_uri:
            raw_uri = quote(environ.get("PATH_INFO") or "/", safe="/~%")
            if environ.get("QUERY_STRING"):
                raw_uri += "?" + environ["QUERY_STRING"]
        path, _, raw_query = raw_uri.partition("?")
        if presigned:  # the signature covers every query parameter except itself
            raw_query = "&".join(p for p in raw_query.split("&") if not p.startswith("X-Amz-Signature="))
        host = environ.get("HTTP_HOST") or environ.get("SERVER_NAME", "")
        url = f"http://{host}{path}" + (f"?{raw_query}" if raw_query else "")
        headers = {}
        for name in signed:
            value = host if name == "host" else _header(environ, name)
            headers[name] = value if value is not None else ""
        request = AWSRequest(method=method, url=url, headers=headers)
        request.context["timestamp"] = timestamp
        auth_cls = _QueryAuth if presigned else _HeaderAuth
        signer = auth_cls(Credentials(access_key, secret), service, region, signed)
        canonical = signer.canonical_request(request)
        return signer.signature(signer.string_to_sign(request, canonical), request)

    # ------------------------------------------------------------------ authorization (scope)
    def _authorize(self, owner: dict, method: str, bucket: str | None, key: str, query: dict,
                   environ: dict) -> dict | None:
        """Check the request against the key's scope; returns the target table for object writes."""
        prefix = owner["prefix"]
        whose = (f"table {owner['datasource_id']}" if owner["datasource_id"] is not None
                 else f"DCP service {owner['service_id']}")
        may = f"The access key of {whose} may only write and list under s3://{IMPORT_BUCKET}/{prefix}"
        if owner["archived"]:
            raise _denied(f"{whose[0].upper() + whose[1:]} is archived: its access key can no longer upload. "
                          "Unarchived tables and services keep their keys.")
        if bucket is None:
            if method == "GET":
                return None  # ListBuckets: shows the one bucket
            raise _denied(f"{method} on the service endpoint is not allowed. {may}.")
        if bucket != IMPORT_BUCKET:
            raise _denied(f"Bucket {bucket!r} is not the import bucket. {may}.")
        if not key:
            # GetBucketLocation only when it is all the request asks: moto serves ?location&uploads as
            # ListMultipartUploads (of every key), so ?location must not skip the listing check.
            if method == "HEAD" or (method == "GET" and {k for k in query if not k.startswith("X-Amz-")} == {"location"}):
                return None  # HeadBucket / GetBucketLocation
            if method == "GET" and not (query.keys() - {"list-type", "prefix", "delimiter", "max-keys", "marker",
                                                        "continuation-token", "start-after", "encoding-type",
                                                        "fetch-owner", "uploads", "key-marker",
                                                        "upload-id-marker", "max-uploads"}):
                listed = query.get("prefix", "")
                if not listed.startswith(prefix):
                    raise _denied(f"Listing prefix {listed!r} is outside this key's scope. {may} (list with "
                                  f"prefix {prefix!r} or below).")
                return None
            raise _denied(f"This bucket-level operation is not allowed. {may}.")
        if not key.startswith(prefix):
            raise _denied(f"Access to {key!r} denied. {may}.")
        source = _header(environ, "x-amz-copy-source")
        if source is not None:
            src = copy_source(source)  # read as moto reads it
            if src is None:
                raise invalid_argument("Copy Source must mention the source bucket and key: sourcebucket/sourcekey.",
                                       "x-amz-copy-source", source)
            if src[0] != IMPORT_BUCKET or not src[1].startswith(prefix):
                raise _denied(f"Copy source {source!r} is outside this key's scope. {may}.")
        if method not in ("PUT", "POST"):
            return None
        m = _TABLE_KEY_RE.match(key)
        if not m:
            raise _denied(f"Objects must be written under a table's path, s3://{IMPORT_BUCKET}/dcp/{{service_id}}/"
                          f"{{table_id}}/FILE; {key!r} is not. {may}.")
        service_id, datasource_id = int(m[1]), int(m[2])
        target = self.store.uploads.import_target(service_id, datasource_id)
        if target is None:
            raise _denied(f"{key!r}: table {datasource_id} is not a table of DCP service {service_id}, so there is "
                          "nothing to import into.")
        if target["archived"] or target["service_archived"]:
            raise _denied(f"Table {datasource_id} is archived (or its DCP service is): archived tables accept no "
                          "uploads, and nothing was stored.")
        return target

    def _check_upload_id(self, bucket: str | None, key: str, query: dict) -> None:
        """An uploadId must name an open multipart upload of this very key (S3's NoSuchUpload otherwise).

        The key scope is checked on the URL's key only, and moto acts on the upload the id names,
        whatever key that upload belongs to: without this check one table's key could add parts to
        (or complete, list, abort) another table's upload.
        """
        if "uploadId" not in query or bucket != IMPORT_BUCKET or not key:
            return
        upload_id = query["uploadId"]
        multipart = self.bucket.multiparts.get(upload_id)
        if multipart is None or multipart.key_name != key:
            raise S3Error("NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or "
                          f"the upload may have been aborted or completed (or it belongs to another key than "
                          f"{key!r}).", 404, UploadId=upload_id)

    def _check_size(self, method: str, bucket: str | None, key: str, query: dict, environ: dict) -> None:
        if method == "PUT":
            size = _header(environ, "x-amz-decoded-content-length") or environ.get("CONTENT_LENGTH")
            if not size:
                if _carries_object_bytes(query, environ):
                    # e.g. Transfer-Encoding: chunked without aws-chunked's decoded length: S3 refuses it
                    # (moto would store an empty object and the size limit could not be checked).
                    raise S3Error("MissingContentLength", "You must provide the Content-Length HTTP header.",
                                  411)
                size = "0"
            try:
                proposed = int(size)
            except ValueError:
                raise S3Error("InvalidArgument", f"Invalid Content-Length {size!r}.", 400) from None
            if proposed > self.max_object_bytes:
                raise too_large(proposed, self.max_object_bytes)
        elif method == "POST" and key and "uploadId" in query:
            multipart = s3_moto.multipart(self.bucket, query["uploadId"])
            if multipart is not None:
                total = s3_moto.parts_total(multipart)
                if total > self.max_object_bytes:
                    raise too_large(total, self.max_object_bytes)

    # ------------------------------------------------------------------ completion -> upload
    def _object_completed(self, target: dict | None, key: str, obj: Any) -> None:
        """Queue a stored object as an upload (before the client hears 200).

        The ingest gets its own name for the object's file (a hard link): no copy, and the bytes stay
        on disk until both the object and the upload are done with them.
        """
        if target is None:
            return
        spool, size = self.ingestor.spool_link(s3_moto.buffer_of(obj))
        self.ingestor.enqueue(target["account_id"], target["dcp_service_id"], target["id"], key, spool, size)

    # ------------------------------------------------------------------ errors
    @staticmethod
    def _error(start_response: Callable, err: S3Error, resource: str, request_id: str,
               method: str) -> Iterable[bytes]:
        extra = "".join(f"<{k}>{escape(str(v))}</{k}>" for k, v in err.extra.items())
        body = (f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{err.code}</Code>'
                f"<Message>{escape(err.message)}</Message>{extra}<Resource>{escape(resource)}</Resource>"
                f"<RequestId>{request_id}</RequestId><HostId>dcp-emulator</HostId></Error>").encode()
        reason = {400: "Bad Request", 403: "Forbidden", 404: "Not Found", 411: "Length Required",
                  500: "Internal Server Error"}.get(err.status, "Error")
        headers = [("Content-Type", "application/xml"), ("x-amz-request-id", request_id),
                   ("Content-Length", str(len(body)))]
        if err.code in ("EntityTooLarge", "MissingContentLength", "IncompleteBody", "InternalError"):
            headers.append(("Connection", "close"))  # the (possibly huge or unbounded) body was not read whole
        start_response(f"{err.status} {reason}", headers)
        return [] if method == "HEAD" else [body]


def _carries_object_bytes(query: dict, environ: dict) -> bool:
    """Whether a PUT's body is object data: PutObject or UploadPart (not a copy, ACL, tagging...)."""
    if _header(environ, "x-amz-copy-source"):
        return False
    return not (_PUT_SUBRESOURCES - {"partNumber", "uploadId"}) & query.keys()


def _check_expiry(timestamp: str, seconds: int, now: _dt.datetime) -> None:
    try:
        signed_at = _dt.datetime.strptime(timestamp, "%Y%m%dT%H%M%SZ").replace(tzinfo=_dt.UTC)
    except ValueError:
        raise _denied(f"Malformed X-Amz-Date {timestamp!r}.") from None
    if now > signed_at + _dt.timedelta(seconds=seconds):
        raise _denied(f"Request has expired: the presigned URL was valid for {seconds} s from {timestamp}.")


def _drain(environ: dict) -> None:
    """Read and drop a refused request's body, so the client reads our error instead of a reset socket."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return
    if length <= 0 or length > _DRAIN_LIMIT:
        return
    stream = environ.get("wsgi.input")
    while length > 0 and stream is not None:
        chunk = stream.read(min(length, 1 << 20))
        if not chunk:
            break
        length -= len(chunk)

