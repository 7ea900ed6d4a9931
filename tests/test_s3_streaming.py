"""Object bytes of the S3 endpoint on disk (dcp_emulator/s3_body.py, s3_objects.py), over real sockets.

Bodies are streamed to files in the spool directory: aws-chunked framing is undone on the fly and
its trailing checksum checked, Content-MD5 and x-amz-checksum-* are verified (BadDigest), a full disk
is an S3 error, concurrent writes to one key all succeed, and every buffer is deleted once nothing
needs it. The last test sends a body larger than the memory the served process may use.
"""

from __future__ import annotations

import base64
import errno
import hashlib
import os
import threading
import time
import xml.etree.ElementTree as ET
import zlib

import boto3
import psutil
import pytest
import requests
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.config import Config as BotoConfig
from botocore.credentials import Credentials
from botocore.exceptions import ClientError
from served import ServedEmulator
from test_s3 import _post  # the same helper: POST a management entity, expect 201

from dcp_emulator import s3_body
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config
from dcp_emulator.server import EmulatorServer

H = {"Token": DEFAULT_TOKENS["classic"]}
BUCKET = "optimizely-import"
MGMT = "/experiment/v1"


@pytest.fixture(scope="module")
def server():
    srv = EmulatorServer(Config(port=0, log_requests=False)).start()
    yield srv
    srv.shutdown()


@pytest.fixture
def url(server):
    requests.post(f"{server.url}/_emulator/reset").raise_for_status()
    return server.url


def _table(url: str) -> dict:
    svc = _post(url, f"{MGMT}/dcp_services", {"name": "Shop"})
    table = _post(url, f"{MGMT}/dcp_services/{svc['id']}/dcp_datasources", {"name": "T", "keyfield_locator_type": "uid"})
    _post(url, f"{MGMT}/dcp_datasources/{table['id']}/dcp_datasource_attributes", {"name": "n", "datatype": "long"})
    return table


def _s3(url: str, table: dict, trailer: bool = False):
    client = boto3.client("s3", endpoint_url=url, aws_access_key_id=table["aws_access_key"],
                          aws_secret_access_key=table["aws_secret_key"], region_name="us-east-1",
                          config=BotoConfig(signature_version="s3v4", retries={"max_attempts": 1}))
    if trailer:  # what boto3 sends over https: an aws-chunked body with a trailing CRC32
        def to_trailer(params, **_):
            algorithm = params.get("context", {}).get("checksum", {}).get("request_algorithm")
            if isinstance(algorithm, dict) and algorithm.get("in") == "header":
                algorithm["in"] = "trailer"

        client.meta.events.register_last("before-call.s3.*", to_trailer)
    return client


def _wait(url: str) -> list[dict]:
    resp = requests.post(f"{url}/_emulator/uploads/wait", json={"timeout": 120})
    assert resp.status_code == 200, resp.text
    return resp.json()["uploads"]


def _csv(rows: int, prefix: str = "c") -> bytes:
    return b"customerId,n\n" + b"".join(b"%s%07d,%d\n" % (prefix.encode(), i, i) for i in range(rows))


def _spool_files(server) -> list[str]:
    return sorted(os.listdir(server.emulator.ingestor.spool_dir))


def _error(resp) -> tuple[str, str]:
    root = ET.fromstring(resp.content)
    return root.findtext("Code"), root.findtext("Message")


def _signed_put(url: str, table: dict, key: str, body: bytes, headers: dict, trailer: bool = True):
    target = f"{url}/{BUCKET}/{key}"
    request = AWSRequest(method="PUT", url=target, headers=headers)
    if trailer:
        request.context["checksum"] = {"request_algorithm": {"in": "trailer", "name": "x-amz-checksum-crc32"}}
    S3SigV4Auth(Credentials(table["aws_access_key"], table["aws_secret_key"]), "s3", "us-east-1").add_auth(request)
    return requests.put(target, data=body, headers=dict(request.headers))


def _framed(data: bytes, chunk: int, trailer: str = "", signed: bool = False) -> bytes:
    out = b""
    for i in range(0, len(data), chunk):
        piece = data[i:i + chunk]
        out += f"{len(piece):x}".encode() + (b";chunk-signature=" + b"0" * 64 if signed else b"") + b"\r\n" + piece + b"\r\n"
    out += b"0" + (b";chunk-signature=" + b"0" * 64 if signed else b"") + b"\r\n" + trailer.encode() + b"\r\n"
    return out


# ---------------------------------------------------------------------- aws-chunked, digests
def test_boto3_aws_chunked_body_with_trailing_crc32_is_stored_and_ingested(url):
    table = _table(url)
    data = _csv(200_000)  # ~2.6 MB: several of boto3's 1 MiB chunks
    key = f"{table['s3_path']}/chunked.csv"
    put = _s3(url, table, trailer=True).put_object(Bucket=BUCKET, Key=key, Body=data)
    assert put["ETag"] == f'"{hashlib.md5(data).hexdigest()}"'
    assert put["ChecksumCRC32"] == base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    [up] = _wait(url)
    assert (up["status"], up["rows_stored"], up["size_bytes"]) == ("succeeded", 200_000, len(data))
    got = _s3(url, table).get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == data and got["ContentLength"] == len(data)


def test_signed_streaming_chunks_are_decoded(url):
    table = _table(url)
    data = _csv(1000)
    headers = {"x-amz-content-sha256": "STREAMING-AWS4-HMAC-SHA256-PAYLOAD", "Content-Encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(len(data))}
    resp = _signed_put(url, table, f"{table['s3_path']}/sig.csv", _framed(data, 4096, signed=True), headers,
                       trailer=False)
    assert resp.status_code == 200, resp.text
    [up] = _wait(url)
    assert (up["status"], up["rows_stored"]) == ("succeeded", 1000)


def test_a_wrong_trailing_checksum_is_bad_digest_and_nothing_is_stored(server, url):
    table = _table(url)
    data = _csv(100)
    wrong = base64.b64encode(zlib.crc32(data + b"x").to_bytes(4, "big")).decode()
    headers = {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(len(data)), "x-amz-trailer": "x-amz-checksum-crc32"}
    resp = _signed_put(url, table, f"{table['s3_path']}/bad.csv", _framed(data, 100, f"x-amz-checksum-crc32:{wrong}\r\n"),
                       headers)
    assert resp.status_code == 400
    code, message = _error(resp)
    assert code == "BadDigest" and "CRC32" in message and wrong in message
    # framing that ends early is IncompleteBody, not a 500
    resp = _signed_put(url, table, f"{table['s3_path']}/cut.csv", b"ff\r\nabc", headers)
    assert resp.status_code == 400 and _error(resp)[0] == "IncompleteBody"
    assert requests.get(f"{url}/_emulator/uploads").json() == []
    assert "Contents" not in _s3(url, table).list_objects_v2(Bucket=BUCKET, Prefix=table["s3_path"] + "/")
    assert _spool_files(server) == []


def test_content_md5_and_header_checksums_are_verified(url):
    table = _table(url)
    s3 = _s3(url, table)
    data = _csv(10)
    good = base64.b64encode(hashlib.md5(data).digest()).decode()
    s3.put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/ok.csv", Body=data, ContentMD5=good)
    cases = [({"ContentMD5": base64.b64encode(hashlib.md5(b"other").digest()).decode()}, "BadDigest", "Content-MD5"),
             ({"ContentMD5": "not-base64!"}, "InvalidDigest", "not valid"),
             ({"ChecksumCRC32": "AAAAAA=="}, "BadDigest", "CRC32"),
             ({"ChecksumSHA256": base64.b64encode(hashlib.sha256(b"x").digest()).decode()}, "BadDigest", "SHA256")]
    for extra, code, word in cases:
        with pytest.raises(ClientError) as e:
            s3.put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/bad.csv", Body=data, **extra)
        err = e.value.response["Error"]
        assert (err["Code"], e.value.response["ResponseMetadata"]["HTTPStatusCode"]) == (code, 400), err
        assert word in err["Message"], err
    assert [u["key"] for u in _wait(url)] == [f"{table['s3_path']}/ok.csv"]


# ---------------------------------------------------------------------- reads and copies from disk
def test_get_streams_ranges_conditionals_and_overrides(url):
    table = _table(url)
    s3 = _s3(url, table)
    data = _csv(50_000)
    key = f"{table['s3_path']}/get.csv"
    etag = s3.put_object(Bucket=BUCKET, Key=key, Body=data)["ETag"]
    assert s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=13-22")["Body"].read() == data[13:23]
    assert s3.get_object(Bucket=BUCKET, Key=key, Range="bytes=-5")["Body"].read() == data[-5:]
    got = s3.get_object(Bucket=BUCKET, Key=key, ResponseContentType="text/csv")
    assert got["ContentType"] == "text/csv" and got["Body"].read() == data
    with pytest.raises(ClientError) as e:
        s3.get_object(Bucket=BUCKET, Key=key, IfNoneMatch=etag)
    assert e.value.response["ResponseMetadata"]["HTTPStatusCode"] == 304
    for call, code in ((lambda: s3.get_object(Bucket=BUCKET, Key=key, IfMatch='"nope"'), "PreconditionFailed"),
                       (lambda: s3.get_object(Bucket=BUCKET, Key=key + ".missing"), "NoSuchKey"),
                       (lambda: s3.get_object(Bucket=BUCKET, Key=key, Range=f"bytes={len(data) + 5}-"), "InvalidRange")):
        with pytest.raises(ClientError) as e:
            call()
        assert e.value.response["Error"]["Code"] == code


def test_upload_part_copy_and_copy_object_copy_bytes_on_disk(server, url):
    table = _table(url)
    s3 = _s3(url, table)
    src = _csv(400_000)  # ~6 MB
    src_key = f"{table['s3_path']}/src.csv"
    s3.put_object(Bucket=BUCKET, Key=src_key, Body=src)
    key = f"{table['s3_path']}/assembled.csv"
    mpu = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    cut = src.index(b"\n", 5 * 2**20) + 1
    parts = []
    for n, rng in ((1, f"bytes=0-{cut - 1}"), (2, f"bytes={cut}-{len(src) - 1}")):
        got = s3.upload_part_copy(Bucket=BUCKET, Key=key, UploadId=mpu, PartNumber=n, CopySourceRange=rng,
                                  CopySource={"Bucket": BUCKET, "Key": src_key})
        parts.append({"PartNumber": n, "ETag": got["CopyPartResult"]["ETag"]})
    assert parts[0]["ETag"] == f'"{hashlib.md5(src[:cut]).hexdigest()}"'
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=mpu, MultipartUpload={"Parts": parts[::-1]})
    assert e.value.response["Error"]["Code"] == "InvalidPartOrder"
    s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=mpu, MultipartUpload={"Parts": parts})
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == src
    copied = s3.copy_object(Bucket=BUCKET, Key=f"{table['s3_path']}/copy.csv",
                            CopySource={"Bucket": BUCKET, "Key": src_key})
    assert copied["CopyObjectResult"]["ETag"] == f'"{hashlib.md5(src).hexdigest()}"'
    assert s3.get_object(Bucket=BUCKET, Key=f"{table['s3_path']}/copy.csv")["Body"].read() == src
    uploads = _wait(url)
    assert [(u["file_name"], u["status"], u["rows_stored"]) for u in uploads] == [
        ("src.csv", "succeeded", 400_000), ("assembled.csv", "succeeded", 400_000), ("copy.csv", "succeeded", 400_000)]
    with pytest.raises(ClientError) as e:
        s3.upload_part_copy(Bucket=BUCKET, Key=key, UploadId=s3.create_multipart_upload(Bucket=BUCKET, Key=key)[
            "UploadId"], PartNumber=1, CopySource={"Bucket": BUCKET, "Key": src_key}, CopySourceRange="bytes=5-1")
    assert e.value.response["Error"]["Code"] == "InvalidArgument"


# ---------------------------------------------------------------------- buffers' lifetime
def test_buffers_are_deleted_when_overwritten_deleted_aborted_ingested_or_reset(server, url):
    table = _table(url)
    s3 = _s3(url, table)
    key = f"{table['s3_path']}/a.csv"
    for i in range(3):
        s3.put_object(Bucket=BUCKET, Key=key, Body=_csv(10, f"v{i}"))
    _wait(url)
    assert len(_spool_files(server)) == 1  # the current object only: overwritten ones and ingested copies are gone
    s3.delete_object(Bucket=BUCKET, Key=key)
    assert _spool_files(server) == []
    mpu = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=mpu, PartNumber=1, Body=b"part")
    assert len(_spool_files(server)) == 1
    s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=mpu)
    assert _spool_files(server) == []
    s3.put_object(Bucket=BUCKET, Key=key, Body=_csv(10))
    mpu = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    s3.upload_part(Bucket=BUCKET, Key=key, UploadId=mpu, PartNumber=1, Body=b"part")
    _wait(url)
    requests.post(f"{url}/_emulator/reset").raise_for_status()
    assert _spool_files(server) == []


def test_reset_lets_moto_forget_every_object(server, url):
    from moto.s3.models import FakeAcl, FakeKey

    table = _table(url)
    s3 = _s3(url, table)
    account = server.emulator.s3.account_id
    for i in range(50):
        s3.put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/o{i}.csv", Body=b"customerId,n\nc,1\n")
    _wait(url)
    assert len([o for o in FakeKey.instances_tracked if getattr(o, "account_id", None) == account]) >= 50
    requests.post(f"{url}/_emulator/reset").raise_for_status()
    assert [o for o in FakeKey.instances_tracked if getattr(o, "account_id", None) == account] == []
    assert FakeAcl.instances_tracked == []  # each object's ACL was tracked too


def test_concurrent_puts_to_one_key_all_succeed_and_all_are_ingested(server, url):
    table = _table(url)
    key = f"{table['s3_path']}/same.csv"
    bodies = {f"t{t}r{r}": b"customerId,n\n%s,%d\n" % (f"t{t}r{r}".encode(), r) for t in range(8) for r in range(25)}
    failures: list[str] = []

    def worker(t: int) -> None:
        s3 = _s3(url, table)
        for r in range(25):
            try:
                s3.put_object(Bucket=BUCKET, Key=key, Body=bodies[f"t{t}r{r}"])
            except ClientError as e:
                failures.append(str(e))

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert failures == []
    uploads = _wait(url)
    assert len(uploads) == 200 and {u["status"] for u in uploads} == {"succeeded"}
    last = _s3(url, table).get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert last in bodies.values()
    assert len(_spool_files(server)) == 1


# ---------------------------------------------------------------------- disk full
def test_a_full_disk_is_an_s3_error_and_nothing_is_stored(server, url, monkeypatch):
    table = _table(url)
    s3 = _s3(url, table)
    real_open = open

    class Full:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def write(self, data):
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(s3_body, "open", lambda p, m="r", *a, **k: Full(real_open(p, m, *a, **k)) if "w" in m
                        else real_open(p, m, *a, **k), raising=False)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/full.csv", Body=_csv(10))
    err = e.value.response["Error"]
    assert err["Code"] == "InternalError" and "disk is full" in err["Message"]
    monkeypatch.undo()
    monkeypatch.setattr(s3_body.shutil, "disk_usage", lambda path: type("U", (), {"free": 100})())
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/big.csv", Body=_csv(10))
    err = e.value.response["Error"]
    assert err["Code"] == "EntityTooLarge" and "free disk space" in err["Message"]
    assert requests.get(f"{url}/_emulator/uploads").json() == [] and _spool_files(server) == []


# ---------------------------------------------------------------------- memory
def test_a_body_larger_than_the_memory_allowed_is_stored_and_ingested_whole(tmp_path):
    """The served process may grow by 64 MB; it receives and ingests a 160 MB body (a watchdog kills it if not)."""
    allowed, size = 64 * 2**20, 160 * 2**20
    row = b",%s\n" % (b"v" * 1000)
    rows = size // (len(row) + 8)
    with ServedEmulator("--db", str(tmp_path / "e.db"), "--quiet") as emu:
        table = _table(emu.url)
        requests.post(f"{emu.url}{MGMT}/dcp_datasources/{table['id']}/dcp_datasource_attributes", headers=H,
                      json={"name": "s", "datatype": "string"}).raise_for_status()
        s3 = _s3(emu.url, table)
        s3.put_object(Bucket=BUCKET, Key=f"{table['s3_path']}/warm.csv", Body=b"customerId,s\nw,x\n")
        _wait(emu.url)
        proc = psutil.Process(emu.proc.pid)
        baseline = proc.memory_info().rss
        peak = [baseline]
        done = threading.Event()

        def watchdog() -> None:
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], proc.memory_info().rss)
                except psutil.NoSuchProcess:
                    return
                if peak[0] - baseline > allowed:
                    proc.kill()
                    return
                time.sleep(0.01)

        path = tmp_path / "big.csv"
        with path.open("wb") as f:
            f.write(b"customerId,s\n")
            for start in range(0, rows, 1000):
                f.write(b"".join(b"c%07d" % i + row for i in range(start, min(rows, start + 1000))))
        length = path.stat().st_size
        assert length > size - 2**20
        dog = threading.Thread(target=watchdog, daemon=True)
        dog.start()
        put_url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": f"{table['s3_path']}/big.csv"})
        with path.open("rb") as f:
            resp = requests.put(put_url, data=f)
        assert resp.status_code == 200, resp.text
        [up] = [u for u in _wait(emu.url) if u["file_name"] == "big.csv"]
        done.set()
        dog.join()
        assert (up["status"], up["rows_stored"], up["size_bytes"]) == ("succeeded", rows, length)
        assert peak[0] - baseline < allowed, f"grew by {(peak[0] - baseline) / 2**20:.0f} MB"
