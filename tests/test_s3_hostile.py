"""Hostile and careless S3 requests, correctly signed: scope bypasses, ambiguous requests and 500s.

The access check and moto must read the same request: a repeated query parameter, a form body or a
Host that moto reads differently is refused (S3's InvalidArgument) before anything is touched.
Malformed parameters get S3's own XML errors, never a 500. Requests are signed with botocore's
SigV4 signer and sent raw (http.client) to a served emulator, so the exact query string, Host and
path reach the server; the fuzz test sends signed requests through the WSGI app.
"""

from __future__ import annotations

import http.client
import xml.etree.ElementTree as ET
from urllib.parse import quote, urlencode

import pytest
import requests
from botocore.auth import S3SigV4Auth, S3SigV4QueryAuth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_s3 import BUCKET, _client_for, _nothing_stored, _setup, _start, _wait


@pytest.fixture(scope="module")
def server():
    srv = _start()
    yield srv
    srv.shutdown()


@pytest.fixture
def env(server):
    """A fresh service with two tables (t1, t2) on the served emulator; ``env['url']`` is its URL."""
    requests.post(f"{server.url}/_emulator/reset").raise_for_status()
    return {**_setup(server.url), "url": server.url}


class Answer:
    """An S3 answer: status and body, with the XML error's fields when it is one."""

    def __init__(self, status: int, body: bytes):
        self.status, self.body = status, body
        self.error = {child.tag: child.text for child in ET.fromstring(body)} if body.startswith(b"<?xml") \
            and b"<Error>" in body else {}

    @property
    def code(self) -> str | None:
        return self.error.get("Code")


def send(url: str, entity: dict, method: str, target: str, body: bytes = b"", host: str | None = None,
         headers: dict | None = None) -> Answer:
    """Sign ``method target`` (path and raw query, sent exactly so) with the entity's key pair, send it."""
    address = url.split("//", 1)[1]
    host = host or address
    request = AWSRequest(method=method, url=f"http://{host}{target}", data=body, headers=dict(headers or {}))
    S3SigV4Auth(Credentials(entity["aws_access_key"], entity["aws_secret_key"]), "s3", "us-east-1").add_auth(request)
    conn = http.client.HTTPConnection(address, timeout=30)
    try:
        conn.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
        for name, value in {**dict(request.headers), "Host": host, "Content-Length": str(len(body))}.items():
            conn.putheader(name, value)
        conn.endheaders(body)
        resp = conn.getresponse()
        return Answer(resp.status, resp.read())
    finally:
        conn.close()


def refused(answer: Answer, status: int, code: str, *words: str) -> dict:
    """Assert an S3 XML error with this status and code whose message holds ``words``."""
    assert (answer.status, answer.code) == (status, code), (answer.status, answer.body[:600])
    for word in words:
        assert word in answer.error["Message"], answer.error["Message"]
    return answer.error


def _path(entity: dict, name: str) -> str:
    return f"/{BUCKET}/{entity['s3_path']}/{name}"


def _open_uploads(env: dict, entity: dict) -> list[str]:
    listed = _client_for(env["url"], entity).list_multipart_uploads(Bucket=BUCKET, Prefix=entity["s3_path"] + "/")
    return [u["UploadId"] for u in listed.get("Uploads", [])]


# ---------------------------------------------------------------------- item 1: repeated uploadId
def test_a_repeated_upload_id_is_refused_for_every_multipart_operation(env):
    url, t1, t2 = env["url"], env["t1"], env["t2"]
    s1, s2 = _client_for(url, t1), _client_for(url, t2)
    theirs = s1.create_multipart_upload(Bucket=BUCKET, Key=f"{t1['s3_path']}/theirs.csv")["UploadId"]
    mine = s2.create_multipart_upload(Bucket=BUCKET, Key=f"{t2['s3_path']}/mine.csv")["UploadId"]
    own = _path(t2, "mine.csv")
    complete = b"<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>x</ETag></Part></CompleteMultipartUpload>"
    for first, second in ((theirs, mine), (mine, theirs)):
        ids = f"uploadId={first}&uploadId={second}"
        for method, query, body, headers in (
                ("PUT", f"partNumber=1&{ids}", b"customerId\nfrom-t2\n", {}),
                ("PUT", f"partNumber=2&{ids}", b"", {"x-amz-copy-source": own}),
                ("GET", ids, b"", {}),
                ("POST", ids, complete, {}),
                ("DELETE", ids, b"", {})):
            error = refused(send(url, t2, method, f"{own}?{query}", body, headers=headers), 400, "InvalidArgument",
                            "'uploadId' is given more than once")
            assert error["ArgumentName"] == "uploadId"
    # the same name spelled with a percent-escape is the same parameter
    refused(send(url, t2, "DELETE", f"{own}?uploadId={mine}&%75ploadId={theirs}"), 400, "InvalidArgument")
    assert s1.list_parts(Bucket=BUCKET, Key=f"{t1['s3_path']}/theirs.csv", UploadId=theirs).get("Parts", []) == []
    assert _open_uploads(env, t1) == [theirs] and _open_uploads(env, t2) == [mine]
    _nothing_stored(url)


def test_parameters_from_a_form_body_cannot_name_another_upload(env):
    """moto reads the parameters of a form-encoded request from its body, not from the URL."""
    url, t1, t2 = env["url"], env["t1"], env["t2"]
    theirs = _client_for(url, t1).create_multipart_upload(Bucket=BUCKET, Key=f"{t1['s3_path']}/t.csv")["UploadId"]
    mine = _client_for(url, t2).create_multipart_upload(Bucket=BUCKET, Key=f"{t2['s3_path']}/m.csv")["UploadId"]
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    for method, query in (("DELETE", f"uploadId={mine}"), ("PUT", f"partNumber=1&uploadId={mine}"),
                          ("GET", f"uploadId={mine}")):
        error = refused(send(url, t2, method, f"{_path(t2, 'm.csv')}?{query}", f"uploadId={theirs}".encode(),
                             headers=form), 400, "InvalidArgument", "never from a form body")
        assert error["ArgumentName"] == "Content-Type"
    # a listing whose form body says prefix= (everything)
    refused(send(url, t2, "GET", f"/{BUCKET}?list-type=2&prefix={quote(t2['s3_path'] + '/', safe='')}", b"prefix=",
                 headers={"Content-Type": "multipart/form-data; boundary=x"}), 400, "InvalidArgument")
    assert _open_uploads(env, t1) == [theirs] and _open_uploads(env, t2) == [mine]


# ---------------------------------------------------------------------- item 2: repeated prefix
def test_a_repeated_prefix_cannot_widen_a_listing(env):
    url, t1, t2 = env["url"], env["t1"], env["t2"]
    s1 = _client_for(url, t1)
    s1.put_object(Bucket=BUCKET, Key=f"{t1['s3_path']}/secret.csv", Body=b"customerId\nx\n")
    upload_id = s1.create_multipart_upload(Bucket=BUCKET, Key=f"{t1['s3_path']}/open.csv")["UploadId"]
    own = quote(t2["s3_path"] + "/", safe="")
    for listing in ("list-type=2", "versions", "uploads", ""):
        for prefixes in (f"prefix=&prefix={own}", f"prefix={own}&prefix=", f"prefix={own}&%70refix=dcp%2F"):
            query = "&".join(p for p in (listing, prefixes) if p)
            answer = send(url, t2, "GET", f"/{BUCKET}?{query}")
            refused(answer, 400, "InvalidArgument", "'prefix' is given more than once")
            assert b"secret.csv" not in answer.body and upload_id.encode() not in answer.body
    # and every other parameter the check reads, e.g. the listing kind
    refused(send(url, t2, "GET", f"/{BUCKET}?list-type=2&prefix={own}&list-type=1"), 400, "InvalidArgument",
            "'list-type'")
    # the key's own listing still works
    assert send(url, t2, "GET", f"/{BUCKET}?list-type=2&prefix={own}").status == 200
    _wait(url)


def test_location_does_not_unlock_a_listing_moto_serves_first(env):
    """moto answers ?location&uploads with ListMultipartUploads: the listing's scope check applies."""
    url, t1, t2 = env["url"], env["t1"], env["t2"]
    upload_id = _client_for(url, t1).create_multipart_upload(Bucket=BUCKET, Key=f"{t1['s3_path']}/o.csv")["UploadId"]
    for query in ("location&uploads", "uploads&location", "location&list-type=2", "location&prefix="):
        answer = send(url, t2, "GET", f"/{BUCKET}?{query}")
        refused(answer, 403, "AccessDenied", "bucket-level operation is not allowed", "may only write and list")
        assert upload_id.encode() not in answer.body
    located = send(url, t2, "GET", f"/{BUCKET}?location")
    assert located.status == 200 and b"LocationConstraint" in located.body


# ---------------------------------------------------------------------- repeated credentials
def test_two_authorization_headers_or_two_auth_mechanisms_are_refused(env):
    """The check must not read one credential and its signature from two different places."""
    url, t1, t2 = env["url"], env["t1"], env["t2"]
    target = _path(t1, "x.csv")
    signed = {}
    for who in (t1, t2):
        request = AWSRequest(method="GET", url=f"{url}{target}")
        S3SigV4Auth(Credentials(who["aws_access_key"], who["aws_secret_key"]), "s3", "us-east-1").add_auth(request)
        signed[who["id"]] = dict(request.headers)
    conn = http.client.HTTPConnection(url.split("//", 1)[1], timeout=30)
    conn.putrequest("GET", target, skip_accept_encoding=True)
    for name, value in signed[t1["id"]].items():
        conn.putheader(name, value)
    conn.putheader("Authorization", signed[t2["id"]]["Authorization"])
    conn.endheaders()
    resp = conn.getresponse()
    refused(Answer(resp.status, resp.read()), 400, "AuthorizationHeaderMalformed", "must appear once")
    conn.close()
    presigned = _presign(url, t2, f"{t2['s3_path']}/x.csv", 60)
    query = presigned.split("?", 1)[1]
    refused(send(url, t1, "GET", f"{target}?{query}"), 400, "InvalidArgument", "Only one auth mechanism")


# ---------------------------------------------------------------------- item 3: Host forms
@pytest.mark.parametrize("host", ["www.optimizely-import.example.test", "www.optimizely-import.localhost",
                                  "dcp.example.test", "optimizely-import.s3-accesspoint.example.test"])
def test_a_host_moto_reads_differently_is_refused(env, host):
    url, t1, t2 = env["url"], env["t1"], env["t2"]
    s1 = _client_for(url, t1)
    s1.put_object(Bucket=BUCKET, Key=f"{t1['s3_path']}/secret.csv", Body=b"customerId\nx\n")
    upload_id = s1.create_multipart_upload(Bucket=BUCKET, Key=f"{t1['s3_path']}/open.csv")["UploadId"]
    assert len(_wait(url)) == 1
    own = quote(t2["s3_path"] + "/", safe="")
    for method, target, body in (("GET", "/", b""), ("GET", "/?uploads", b""),
                                 ("GET", f"/?list-type=2&prefix={own}", b""),
                                 ("GET", f"/{BUCKET}?list-type=2&prefix={own}", b""),
                                 ("PUT", _path(t2, "x.csv"), b"customerId\nhost\n")):
        answer = send(url, t2, method, target, body, host=host)
        error = refused(answer, 400, "InvalidArgument", "Ambiguous request", host)
        assert error["ArgumentName"] == "Host"
        assert b"secret.csv" not in answer.body and upload_id.encode() not in answer.body
    # nothing was stored, anywhere in the bucket (the service key may list its whole service)
    assert [o["Key"] for o in _client_for(url, env["service"]).list_objects_v2(
        Bucket=BUCKET, Prefix=f"dcp/{t1['dcp_service_id']}/").get("Contents", [])] == [f"{t1['s3_path']}/secret.csv"]
    assert _wait(url) == []  # no upload was queued since the first wait (wait reports only new ones)


def test_a_percent_encoded_bucket_name_is_refused(env):
    """The check decodes the path, moto takes the bucket from the raw path: the two would differ."""
    url, t2 = env["url"], env["t2"]
    for target in (f"/optimizely%2Dimport/{t2['s3_path']}/x.csv", f"/{BUCKET}%2F{t2['s3_path']}%2Fx.csv"):
        refused(send(url, t2, "PUT", target, b"customerId\nenc\n"), 400, "InvalidArgument", "Ambiguous request")
    _nothing_stored(url)


def test_a_raw_path_moto_reads_differently_is_refused(client, auth):
    """A server that passes ``//optimizely-import/KEY`` on as the raw path: moto keeps the bucket in the key.

    (werkzeug's server collapses the leading slashes before anything sees them; other servers need not.)
    """
    from dcp_api import create_service, create_table

    table = create_table(client, auth, create_service(client, auth)["id"])
    path = f"/{BUCKET}/{table['s3_path']}/x.csv"
    status, body = _signed(client, table, "PUT", path, "", {}, b"customerId\nraw\n", raw_path="/" + path)
    answer = Answer(status, body)
    refused(answer, 400, "InvalidArgument", "Ambiguous request", f"key '{BUCKET}/{table['s3_path']}/x.csv'")
    assert client.get("/_emulator/uploads").get_json() == []


def test_a_server_without_raw_uri_stores_keys_with_percent_signs_under_their_own_name(client, auth):
    """waitress passes the undecoded path as REQUEST_URI only; moto would decode the key twice."""
    from dcp_api import create_service, create_table

    table = create_table(client, auth, create_service(client, auth)["id"])
    key = f"{table['s3_path']}/100%41.csv"
    path = f"/{BUCKET}/{quote(key, safe='/')}"
    request = AWSRequest(method="PUT", url=f"http://localhost{path}", data=b"customerId\npct\n")
    S3SigV4Auth(Credentials(table["aws_access_key"], table["aws_secret_key"]), "s3", "us-east-1").add_auth(request)
    resp = client.put(path, data=b"customerId\npct\n", headers=dict(request.headers),
                      environ_overrides={"RAW_URI": "", "REQUEST_URI": path})
    assert resp.status_code == 200, resp.get_data()
    client.post("/_emulator/uploads/wait", json={"timeout": 30})
    [upload] = client.get("/_emulator/uploads").get_json()
    assert (upload["key"], upload["status"]) == (key, "succeeded")


def test_path_style_and_virtual_hosted_style_hosts_still_work(env):
    url, t2 = env["url"], env["t2"]
    port = url.rsplit(":", 1)[1]
    own = quote(t2["s3_path"] + "/", safe="")
    for host, target in ((f"localhost:{port}", _path(t2, "a.csv")), (f"127.0.0.1:{port}", _path(t2, "b.csv")),
                         (f"{BUCKET}.localhost:{port}", f"/{t2['s3_path']}/c.csv")):
        assert send(url, t2, "PUT", target, b"customerId\nok\n", host=host).status == 200
    listed = send(url, t2, "GET", f"/?list-type=2&prefix={own}", host=f"{BUCKET}.localhost:{port}")
    assert listed.status == 200 and listed.body.count(b"<Key>") == 3
    assert [u["status"] for u in _wait(url)] == ["succeeded"] * 3


# ---------------------------------------------------------------------- item 14: S3's errors, not 500s
MALFORMED = [
    # (method, path name or None for the bucket, query, body, status, code, words in the message[, headers])
    ("GET", None, "list-type=2&prefix=@&max-keys=abc", b"", 400, "InvalidArgument", "max-keys"),
    ("GET", None, "prefix=@&max-keys=-1", b"", 400, "InvalidArgument", "max-keys"),
    ("GET", None, "uploads&prefix=@&max-uploads=99999999999", b"", 400, "InvalidArgument", "max-uploads"),
    ("GET", None, "list-type=2&prefix=@&continuation-token=bogus", b"", 400, "InvalidArgument",
     "continuation token"),
    ("GET", "a.csv", "partNumber=abc", b"", 400, "InvalidArgument", "Part number"),
    ("GET", "a.csv", "partNumber=10001", b"", 400, "InvalidArgument", "Part number"),
    ("POST", "a.csv", "", b"", 405, "MethodNotAllowed", "POST"),
    ("POST", "a.csv", "", b"customerId\nx\n", 405, "MethodNotAllowed", "POST"),
    ("PUT", "a.csv", "tagging", b"<Tagging><TagSet>", 400, "MalformedXML", "not well-formed"),
    ("PUT", "a.csv", "tagging", b"<Tagging/>", 400, "MalformedXML", "not well-formed"),
    ("PUT", "a.csv", "acl", b"not xml", 400, "MalformedXML", "not well-formed"),
    ("POST", "a.csv", "restore", b"<RestoreRequest", 400, "MalformedXML", "not well-formed"),
    ("POST", "a.csv", "restore", b"<RestoreRequest/>", 400, "MalformedXML", "not well-formed"),
    ("DELETE", "missing.csv", "tagging", b"", 404, "NoSuchKey", "does not exist"),
    ("PUT", "missing.csv", "tagging", b"<Tagging><TagSet/></Tagging>", 404, "NoSuchKey", "does not exist"),
    ("GET", "missing.csv", "acl", b"", 404, "NoSuchKey", "does not exist"),
    ("GET", "a.csv", "tagging&versionId=nope", b"", 404, "NoSuchVersion", "version does not exist"),
    ("PATCH", "a.csv", "", b"", 405, "MethodNotAllowed", "not allowed"),
    ("POST", "b.csv", "uploads", b"<x/>", 400, "InvalidRequest", "takes no request body"),
    ("GET", "a.csv", "tagging=%FF", b"", 400, "InvalidArgument", "not percent-encoded UTF-8"),
    ("PUT", "b.csv", "", b"customerId\nx\n", 400, "InvalidArgument", "x-amz-acl must be one of",
     {"x-amz-acl": "everyone"}),
    ("PUT", "b.csv", "", b"", 400, "InvalidArgument", "Copy Source must mention", {"x-amz-copy-source": "nokey"}),
]


@pytest.mark.parametrize("case", MALFORMED, ids=lambda c: f"{c[0]} {c[2] or c[1]} {c[3][:12]!r}")
def test_malformed_signed_requests_get_s3s_error(env, case):
    method, name, query, body, status, code, words, *headers = case
    url, t1 = env["url"], env["t1"]
    _client_for(url, t1).put_object(Bucket=BUCKET, Key=f"{t1['s3_path']}/a.csv", Body=b"customerId\nx\n")
    target = (_path(t1, name) if name else f"/{BUCKET}") + (
        "?" + query.replace("@", quote(t1["s3_path"] + "/", safe="")) if query else "")
    refused(send(url, t1, method, target, body, headers=headers[0] if headers else None), status, code, words)
    if method in ("PUT", "POST") and name == "b.csv":
        assert "Contents" not in _client_for(url, t1).list_objects_v2(Bucket=BUCKET, Prefix=_path(t1, "b")[len(BUCKET) + 2:])


@pytest.mark.parametrize("since, when", [("garbage", None), ("Sun, 06 Nov 1994 08:49:37 GMT", "past"),
                                         ("Sunday, 06-Nov-94 08:49:37 GMT", "past"),  # RFC 850
                                         ("Fri Dec 31 23:59:59 2100", "future"),  # asctime
                                         ("Fri, 31 Dec 2100 23:59:59 +0000", "future")])
def test_conditional_dates_are_read_as_http_dates_and_garbage_is_ignored(env, since, when):
    """As HTTP says and S3 does, a date that is not an HTTP date is ignored (moto failed on it)."""
    url, t1 = env["url"], env["t1"]
    _client_for(url, t1).put_object(Bucket=BUCKET, Key=f"{t1['s3_path']}/a.csv", Body=b"customerId\nx\n")
    for method in ("GET", "HEAD"):
        answer = send(url, t1, method, _path(t1, "a.csv"), headers={"If-Modified-Since": since})
        assert answer.status == (304 if when == "future" else 200), answer.body
        if method == "GET" and when != "future":
            assert answer.body == b"customerId\nx\n"
    unmodified = send(url, t1, "GET", _path(t1, "a.csv"), headers={"If-Unmodified-Since": since})
    assert unmodified.status == (412 if when == "past" else 200), unmodified.body


def test_well_formed_subresource_requests_still_work(env):
    url, t1 = env["url"], env["t1"]
    s3 = _client_for(url, t1)
    key = f"{t1['s3_path']}/a.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b"customerId\nx\n")
    s3.put_object_tagging(Bucket=BUCKET, Key=key, Tagging={"TagSet": [{"Key": "k", "Value": "v"}]})
    assert s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"] == [{"Key": "k", "Value": "v"}]
    s3.delete_object_tagging(Bucket=BUCKET, Key=key)
    page = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/", MaxKeys=1)
    assert page["KeyCount"] == 1
    s3.put_object(Bucket=BUCKET, Key=f"{t1['s3_path']}/b.csv", Body=b"customerId\ny\n")
    page = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/", MaxKeys=1)
    rest = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/", ContinuationToken=page["NextContinuationToken"])
    assert [o["Key"] for o in page["Contents"] + rest["Contents"]] == [key, f"{t1['s3_path']}/b.csv"]


def _presign(url: str, entity: dict, key: str, expires) -> str:
    request = AWSRequest(method="GET", url=f"{url}/{BUCKET}/{key}")
    S3SigV4QueryAuth(Credentials(entity["aws_access_key"], entity["aws_secret_key"]), "s3", "us-east-1",
                     expires=expires).add_auth(request)
    return request.url


@pytest.mark.parametrize("expires, words", [(7 * 24 * 3600 + 1, "less than a week"), (10**15, "less than a week"),
                                            (-1, "non-negative"), ("abc", "should be a number"),
                                            ("--5", "should be a number")])
def test_presigned_expiry_beyond_seven_days_is_authorization_query_parameters_error(env, expires, words):
    url, t1 = env["url"], env["t1"]
    key = f"{t1['s3_path']}/a.csv"
    _client_for(url, t1).put_object(Bucket=BUCKET, Key=key, Body=b"customerId\nx\n")
    resp = requests.get(_presign(url, t1, key, expires))
    answer = Answer(resp.status_code, resp.content)
    refused(answer, 400, "AuthorizationQueryParametersError", "X-Amz-Expires", words)
    assert requests.get(_presign(url, t1, key, 7 * 24 * 3600)).content == b"customerId\nx\n"


def test_a_presigned_url_without_x_amz_expires_is_refused(env):
    url, t1 = env["url"], env["t1"]
    presigned = _presign(url, t1, f"{t1['s3_path']}/a.csv", 60)
    base, query = presigned.split("?", 1)
    stripped = "&".join(p for p in query.split("&") if not p.startswith("X-Amz-Expires="))
    resp = requests.get(f"{base}?{stripped}")
    refused(Answer(resp.status_code, resp.content), 400, "AuthorizationQueryParametersError", "X-Amz-Expires must be given")


# ---------------------------------------------------------------------- fuzz: signed, never a 5xx
PARAMS = ["uploads", "uploadId", "partNumber", "tagging", "acl", "restore", "select", "select-type", "attributes",
          "retention", "legal-hold", "versionId", "versions", "list-type", "prefix", "delimiter", "max-keys",
          "marker", "continuation-token", "start-after", "encoding-type", "fetch-owner", "max-uploads",
          "key-marker", "upload-id-marker", "max-parts", "part-number-marker", "location", "delete", "cors",
          "policy", "versioning", "lifecycle", "response-content-type", "response-expires", "x-id", "torrent",
          "object-lock", "encryption", "website", "notification", "ownershipControls", "publicAccessBlock",
          "logging", "id", "renameObject", "bucket-region", "max-buckets"]
HEADERS = ["If-Modified-Since", "If-Unmodified-Since", "If-Match", "If-None-Match", "Range", "Content-Type",
           "Content-MD5", "x-amz-copy-source", "x-amz-copy-source-range", "x-amz-metadata-directive",
           "x-amz-tagging", "x-amz-acl", "x-amz-storage-class", "x-amz-server-side-encryption",
           "x-amz-object-lock-mode", "x-amz-object-lock-retain-until-date", "x-amz-checksum-crc32",
           "x-amz-checksum-algorithm", "x-amz-sdk-checksum-algorithm", "x-amz-decoded-content-length",
           "x-amz-meta-note", "Expect"]
_TEXT = st.text(st.characters(min_codepoint=32, max_codepoint=126), max_size=24)
_VALUES = st.one_of(st.sampled_from(["", "abc", "-1", "0", "1", "2", "10001", "99999999999999999999", "@prefix",
                                     "@upload", "dcp/", "true", "url", "%", "GLACIER"]), _TEXT)
_HEADER_VALUES = st.one_of(st.sampled_from([
    "garbage", "Sun, 06 Nov 1994 08:49:37 GMT", "Sunday, 06-Nov-94 08:49:37 GMT", "Sun Nov  6 08:49:37 1994",
    "bytes=0-1", "bytes=zz", "bytes=5-1", "*", '"abc"', "@copy", "@copy?versionId=x", "text/csv",
    "application/xml", "application/x-www-form-urlencoded", "REPLACE", "COPY", "a=b&c", "private",
    "public-read", "GOVERNANCE", "AES256", "aws:kms", "CRC32", "-1", "7", "100-continue"]), _TEXT)
_BODIES = st.one_of(st.sampled_from([
    b"", b"<bad", b"<Tagging/>", b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>",
    b"<Tagging><TagSet><Tag><Key>a</Key></Tag></TagSet></Tagging>", b"<RestoreRequest><Days>1</Days></RestoreRequest>",
    b"<RestoreRequest><Days>x</Days></RestoreRequest>", b"<CompleteMultipartUpload/>",
    b"<CompleteMultipartUpload><Part><PartNumber>x</PartNumber></Part></CompleteMultipartUpload>",
    b"<AccessControlPolicy/>", b"<Retention><Mode>X</Mode></Retention>", b"<LegalHold><Status>ON</Status></LegalHold>",
    b"<Delete><Object><Key>x</Key></Object></Delete>", b"customerId\nfuzz\n", b"<?xml version='1.0'?><a/>"]),
    st.binary(max_size=40))


@pytest.fixture
def fuzz_target(client, auth):
    """A table on the in-process app, an object and an open multipart upload of it; its key pair."""
    from dcp_api import create_service, create_table

    from dcp_emulator.s3 import IMPORT_BUCKET

    service = create_service(client, auth)
    table = create_table(client, auth, service["id"])
    target = {"table": table, "prefix": f"{table['s3_path']}/", "key": f"{table['s3_path']}/fuzz.csv"}
    assert _signed(client, table, "PUT", f"/{IMPORT_BUCKET}/{target['key']}", "", {}, b"customerId\nx\n")[0] == 200
    _, body = _signed(client, table, "POST", f"/{IMPORT_BUCKET}/{target['key']}", "uploads", {}, b"")
    target["upload"] = ET.fromstring(body).findtext("{*}UploadId")
    return client, target


def _signed(client, table: dict, method: str, path: str, query: str, headers: dict, body: bytes,
            raw_path: str | None = None):
    """A signed request through the WSGI app; ``raw_path`` is the path as a server passes it on (RAW_URI)."""
    url = f"http://localhost{raw_path or path}" + (f"?{query}" if query else "")
    request = AWSRequest(method=method, url=url, data=body, headers=headers)
    S3SigV4Auth(Credentials(table["aws_access_key"], table["aws_secret_key"]), "s3", "us-east-1").add_auth(request)
    resp = client.open(path + (f"?{query}" if query else ""), method=method, data=body,
                       headers=dict(request.headers), environ_overrides={
                           "CONTENT_LENGTH": str(len(body)), **({"RAW_URI": raw_path} if raw_path else {})})
    return resp.status_code, resp.get_data()


@settings(max_examples=400, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(method=st.sampled_from(["GET", "PUT", "POST", "DELETE", "HEAD", "GET", "PUT", "POST", "OPTIONS", "PATCH"]),
       where=st.sampled_from(["key", "key", "key", "missing", "bucket", "bucket", "root"]),
       params=st.dictionaries(st.sampled_from(PARAMS), _VALUES, max_size=4),
       repeat=st.sampled_from([False] * 5 + [True]),
       headers=st.dictionaries(st.sampled_from(HEADERS), _HEADER_VALUES, max_size=3),
       body=_BODIES,
       host=st.sampled_from(["localhost"] * 4 + ["optimizely-import.localhost", "www.optimizely-import.localhost",
                                                 "dcp.example.test", "127.0.0.1:9", "localhost,optimizely-import.x"]),
       slashes=st.sampled_from(["/"] * 4 + ["//", "%2F"]))
def test_fuzzed_signed_requests_never_get_a_5xx_or_a_non_xml_error(fuzz_target, method, where, params, repeat,
                                                                     headers, body, host, slashes):
    client, target = fuzz_target
    fill = {"@prefix": target["prefix"], "@upload": target["upload"], "@copy": f"/{BUCKET}/{target['key']}"}
    params = {name: fill.get(value, value) for name, value in params.items()}
    headers = {name: fill.get(value, value) for name, value in headers.items()}
    path = {"key": f"/{BUCKET}/{target['key']}", "missing": f"/{BUCKET}/{target['prefix']}missing.csv",
            "bucket": f"/{BUCKET}", "root": "/"}[where]
    if host.startswith(BUCKET) and path.startswith(f"/{BUCKET}"):  # virtual-hosted style
        path = path[len(BUCKET) + 1:] or "/"
    raw_path = slashes + path[1:] if slashes != "/" and path != "/" else None  # as a server may pass it on
    query = urlencode(list(params.items()), quote_via=quote)
    if repeat and params:
        query += "&" + urlencode([next(iter(params.items()))], quote_via=quote)
    status, answer = _signed(client, target["table"], method, path, query, {**headers, "Host": host}, body,
                             raw_path=raw_path)
    assert status < 500, (status, answer[:800])
    if status >= 400 and method != "HEAD":
        root = ET.fromstring(answer)  # an S3 XML error document, never HTML or an empty body
        assert root.tag == "Error" and root.findtext("Code") and root.findtext("Message"), answer[:800]
    if repeat and params:
        assert status == 400 and (method == "HEAD" or b"<Code>InvalidArgument</Code>" in answer), answer[:800]


# ---------------------------------------------------------------------- garbage bytes in an uploaded file
@pytest.mark.parametrize("tail, offset_from_end", [(b"\xe3\x81", 2), (b"\xe3", 1)])
def test_a_file_ending_inside_a_utf8_sequence_fails_saying_where(client, auth, tail, offset_from_end):
    """The fuzz found it: an unfinished sequence at the very end made the UTF-8 check itself fail."""
    from bulk_helpers import make_table, upload

    _, table = make_table(client, auth, [("n", "long", None)])
    data = b"customerId,n\nc1,1\n" + tail
    up = upload(client, table, "cut.csv", data)
    assert up["status"] == "failed", up
    assert f"invalid byte 0xe3 at byte offset {len(data) - offset_from_end} (line 3)" in up["failure"], up


def test_an_invalid_sequence_across_a_read_boundary_is_reported_at_its_first_byte(client, auth):
    from bulk_helpers import make_table, upload

    from dcp_emulator.ingest import _CHUNK

    _, table = make_table(client, auth, [("n", "long", None)])
    head = b"customerId,n\n"
    data = head + b"c,1\n" * ((_CHUNK - len(head) - 1) // 4)
    data += b"x" * (_CHUNK - 1 - len(data)) + b"\xe3A\n"  # 0xe3 is the last byte of the first read
    up = upload(client, table, "split.csv", data)
    assert up["status"] == "failed", up
    line = data[:_CHUNK - 1].count(b"\n") + 1
    assert f"invalid byte 0xe3 at byte offset {_CHUNK - 1} (line {line})" in up["failure"], up
