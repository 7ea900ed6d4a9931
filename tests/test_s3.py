"""The S3 endpoint of a served emulator (real sockets): boto3, the real AWS CLI, SigV4 and key scopes.

Every refusal must be S3's AccessDenied (or EntityTooLarge) XML with a message that says why, and
must leave nothing stored and nothing queued.
"""

from __future__ import annotations

import datetime
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from unittest import mock

import boto3
import pytest
import requests
from botocore.config import Config as BotoConfig
from botocore.exceptions import ClientError

from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import Config
from dcp_emulator.server import EmulatorServer

H = {"Token": DEFAULT_TOKENS["classic"]}
BUCKET = "optimizely-import"
MGMT = "/experiment/v1"


def _start(**overrides) -> EmulatorServer:
    return EmulatorServer(Config(port=0, log_requests=False, **overrides)).start()


@pytest.fixture(scope="module")
def server():
    srv = _start()
    yield srv
    srv.shutdown()


@pytest.fixture(scope="module")
def small_server():
    """A second emulator in the same process, with a 6 MiB object limit."""
    srv = _start(max_object_bytes=6 * 1024 * 1024)
    yield srv
    srv.shutdown()


@pytest.fixture
def small_url(small_server):
    requests.post(f"{small_server.url}/_emulator/reset").raise_for_status()
    return small_server.url


@pytest.fixture
def url(server):
    requests.post(f"{server.url}/_emulator/reset").raise_for_status()
    return server.url


def _post(url: str, path: str, payload: dict) -> dict:
    resp = requests.post(url + path, json=payload, headers=H)
    assert resp.status_code == 201, resp.text
    return resp.json()


def _setup(url: str) -> dict:
    """A service with two tables, each with attributes name (string) and n (long)."""
    svc = _post(url, f"{MGMT}/dcp_services", {"name": "Shop"})
    tables = [_post(url, f"{MGMT}/dcp_services/{svc['id']}/dcp_datasources",
                    {"name": f"T{i}", "keyfield_locator_type": "uid"}) for i in range(2)]
    for t in tables:
        _post(url, f"{MGMT}/dcp_datasources/{t['id']}/dcp_datasource_attributes", {"name": "name", "datatype": "string"})
        _post(url, f"{MGMT}/dcp_datasources/{t['id']}/dcp_datasource_attributes", {"name": "n", "datatype": "long"})
    return {"service": svc, "t1": tables[0], "t2": tables[1]}


def _s3(url: str, access: str, secret: str, **config):
    return boto3.client("s3", endpoint_url=url, aws_access_key_id=access, aws_secret_access_key=secret,
                        region_name="us-east-1", config=BotoConfig(signature_version="s3v4", **config))


def _client_for(url: str, entity: dict):
    return _s3(url, entity["aws_access_key"], entity["aws_secret_key"])


def _wait(url: str) -> list[dict]:
    resp = requests.post(f"{url}/_emulator/uploads/wait", json={"timeout": 60})
    assert resp.status_code == 200, resp.text
    return resp.json()["uploads"]


def _profile(url: str, table: dict, customer: str) -> dict | None:
    resp = requests.get(f"{url}/api/customer_profile/{table['dcp_service_id']}/{table['id']}/{customer}", headers=H)
    return resp.json()["data"] if resp.status_code == 200 else None


def _denied(excinfo, *words: str) -> str:
    err = excinfo.value.response["Error"]
    assert err["Code"] == "AccessDenied", err
    for w in words:
        assert w in err["Message"], err["Message"]
    return err["Message"]


def _nothing_stored(url: str) -> None:
    assert requests.get(f"{url}/_emulator/uploads").json() == []


# ---------------------------------------------------------------------- discovery
def test_info_advertises_the_s3_endpoint_and_bucket(url):
    info = requests.get(f"{url}/_emulator/info").json()
    assert info["s3_endpoint_url"] == url and info["import_bucket"] == BUCKET
    health = requests.get(f"{url}/_emulator/health").json()
    assert health["parts"]["s3"]["ready"] and health["parts"]["ingest"]["ready"]


def test_bucket_exists_from_the_start(url):
    env = _setup(url)
    s3 = _client_for(url, env["t1"])
    assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [BUCKET]
    s3.head_bucket(Bucket=BUCKET)


# ---------------------------------------------------------------------- boto3
def test_boto3_upload_is_ingested_and_readable_through_the_profile_api(url):
    env = _setup(url)
    t1 = env["t1"]
    s3 = _client_for(url, t1)
    key = f"{t1['s3_path']}/batch 1+ü.csv"
    s3.put_object(Bucket=BUCKET, Key=key, Body=b'customerId,name,n\n"c1", "Ann Lee", 7\nc2,Bob,x\n')
    [up] = _wait(url)
    assert (up["status"], up["key"], up["rows_stored"], up["rows_rejected"]) == ("completed_with_errors", key, 1, 1)
    assert _profile(url, t1, "c1") == {"name": "Ann Lee", "n": 7}
    assert _profile(url, t1, "c2") is None
    listed = s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/")
    assert [o["Key"] for o in listed["Contents"]] == [key]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read().startswith(b"customerId")


def test_an_empty_object_is_answered_and_its_upload_fails_saying_why(url):
    # boto3 sends it with Expect: 100-continue and Content-Length: 0, which used to hang the connection
    env = _setup(url)
    s3 = _s3(url, env["t1"]["aws_access_key"], env["t1"]["aws_secret_key"], read_timeout=10,
             retries={"max_attempts": 1})
    key = f"{env['t1']['s3_path']}/empty.csv"
    assert s3.put_object(Bucket=BUCKET, Key=key, Body=b"")["ResponseMetadata"]["HTTPStatusCode"] == 200
    [up] = _wait(url)
    assert (up["key"], up["status"], up["rows_total"]) == (key, "failed", 0) and up["failure"]


def test_boto3_multipart_upload(url):
    env = _setup(url)
    t1 = env["t1"]
    s3 = _client_for(url, t1)
    key = f"{t1['s3_path']}/multi.csv"
    part = b"".join(b"c%07d,n,%d\n" % (i, i) for i in range(400_000))  # ~6.4 MB per part
    mpu = s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    etags = []
    for n, body in enumerate([b"customerId,name,n\n" + part, part.replace(b"c", b"d")], start=1):
        etags.append(s3.upload_part(Bucket=BUCKET, Key=key, UploadId=mpu["UploadId"], PartNumber=n, Body=body)["ETag"])
    assert _wait(url) == []  # parts alone are not an upload
    s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=mpu["UploadId"], MultipartUpload={
        "Parts": [{"ETag": e, "PartNumber": n} for n, e in enumerate(etags, start=1)]})
    [up] = _wait(url)
    assert up["status"] == "succeeded" and up["rows_stored"] == 800_000
    assert _profile(url, t1, "d0399999") == {"name": "n", "n": 399999}
    # the object was assembled by the emulator (on disk, streaming): same bytes, S3's multipart ETag
    got = s3.get_object(Bucket=BUCKET, Key=key)
    assert got["Body"].read() == b"customerId,name,n\n" + part + part.replace(b"c", b"d")
    assert got["ETag"].strip('"').endswith("-2")
    assert s3.list_multipart_uploads(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/").get("Uploads", []) == []


def test_malformed_multipart_completions_get_s3_errors(url):
    env = _setup(url)
    t1 = env["t1"]
    s3 = _client_for(url, t1)
    key = f"{t1['s3_path']}/bad-multi.csv"
    mpu = s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    small = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=mpu["UploadId"], PartNumber=1, Body=b"customerId\n")
    last = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=mpu["UploadId"], PartNumber=2, Body=b"x\n")
    for parts, code in ([{"ETag": '"0000"', "PartNumber": 1}], "InvalidPart"), (
            [{"ETag": small["ETag"], "PartNumber": 1}, {"ETag": last["ETag"], "PartNumber": 2}], "EntityTooSmall"):
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=mpu["UploadId"],
                                         MultipartUpload={"Parts": parts})
        assert e.value.response["Error"]["Code"] == code
    _nothing_stored(url)


def test_presigned_urls_work_and_expire(url):
    env = _setup(url)
    t1 = env["t1"]
    s3 = _client_for(url, t1)
    key = f"{t1['s3_path']}/presigned.csv"
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": key})
    assert requests.put(put_url, data=b"customerId,n\np1,1\n").status_code == 200
    assert _wait(url)[0]["status"] == "succeeded"
    assert requests.get(s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key})).ok
    tampered = put_url.replace(key.split("/")[-1], "other.csv")
    resp = requests.put(tampered, data=b"customerId\nx\n")
    assert resp.status_code == 403 and "Signature mismatch" in resp.text
    # signed an hour ago for 60 s (a negative ExpiresIn is S3's AuthorizationQueryParametersError)
    an_hour_ago = datetime.datetime.now(datetime.UTC).replace(tzinfo=None) - datetime.timedelta(hours=1)
    with mock.patch("botocore.auth.get_current_datetime", return_value=an_hour_ago):
        expired = s3.generate_presigned_url("get_object", Params={"Bucket": BUCKET, "Key": key}, ExpiresIn=60)
    resp = requests.get(expired)
    assert resp.status_code == 403 and "expired" in resp.text


# ---------------------------------------------------------------------- the AWS CLI
def _aws(url: str, entity: dict, *args: str) -> subprocess.CompletedProcess:
    # the CLI installed with the test extra sits next to this interpreter (a venv's bin need not be on PATH)
    beside = os.path.join(os.path.dirname(sys.executable), "aws")
    aws = beside if os.access(beside, os.X_OK) else shutil.which("aws")
    if aws is None:
        pytest.skip("the AWS CLI is not installed (pip install awscli)")
    env = dict(os.environ, AWS_ACCESS_KEY_ID=entity["aws_access_key"], AWS_SECRET_ACCESS_KEY=entity["aws_secret_key"],
               AWS_DEFAULT_REGION="us-east-1", AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull,
               AWS_PAGER="")
    return subprocess.run([aws, *args, "--endpoint-url", url], env=env, capture_output=True, text=True, timeout=120,
                          check=False)


def test_aws_cli_cp_small_and_multipart_then_ls(url, tmp_path):
    env = _setup(url)
    t1 = env["t1"]
    small = tmp_path / "small.csv"
    small.write_text("customerId,name,n\ncli-1,Cli,1\n")
    big = tmp_path / "big.csv"  # over the CLI's 8 MB multipart threshold
    with big.open("w") as f:
        f.write("customerId,n\n")
        for i in range(700_000):
            f.write(f"big-{i},{i}\n")
    assert big.stat().st_size > 9 * 1024 * 1024
    dest = f"s3://{BUCKET}/{t1['s3_path']}/"
    for path in (small, big):
        proc = _aws(url, t1, "s3", "cp", str(path), dest)
        assert proc.returncode == 0, proc.stderr
    uploads = _wait(url)
    assert [(u["file_name"], u["status"], u["rows_stored"]) for u in uploads] == [
        ("small.csv", "succeeded", 1), ("big.csv", "succeeded", 700_000)]
    assert uploads[1]["size_bytes"] == big.stat().st_size
    assert _profile(url, t1, "cli-1") == {"name": "Cli", "n": 1}
    assert _profile(url, t1, "big-699999") == {"n": 699999}
    proc = _aws(url, t1, "s3", "ls", dest)
    assert proc.returncode == 0 and "big.csv" in proc.stdout and "small.csv" in proc.stdout


def test_aws_cli_refusal_says_why(url, tmp_path):
    env = _setup(url)
    f = tmp_path / "x.csv"
    f.write_text("customerId\nx\n")
    proc = _aws(url, env["t1"], "s3", "cp", str(f), f"s3://{BUCKET}/{env['t2']['s3_path']}/")
    assert proc.returncode != 0
    assert "AccessDenied" in proc.stderr and f"may only write and list under s3://{BUCKET}/{env['t1']['s3_path']}/" \
        in proc.stderr
    _nothing_stored(url)


# ---------------------------------------------------------------------- credential scope matrix
def test_table_key_writes_its_own_path_only(url):
    env = _setup(url)
    t1, t2 = env["t1"], env["t2"]
    s3 = _client_for(url, t1)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key=f"{t2['s3_path']}/x.csv", Body=b"customerId\nx\n")
    _denied(e, f"table {t1['id']}", f"s3://{BUCKET}/{t1['s3_path']}/")
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key=f"dcp/{t1['dcp_service_id']}/x.csv", Body=b"customerId\nx\n")
    _denied(e)
    _nothing_stored(url)
    assert "Contents" not in _client_for(url, t2).list_objects_v2(Bucket=BUCKET, Prefix=f"{t2['s3_path']}/")


def test_service_key_writes_any_table_of_its_service(url):
    env = _setup(url)
    svc, t2 = env["service"], env["t2"]
    s3 = _client_for(url, svc)
    s3.put_object(Bucket=BUCKET, Key=f"{t2['s3_path']}/by-service.csv", Body=b"customerId,n\ns1,5\n")
    assert _wait(url)[0]["status"] == "succeeded"
    assert _profile(url, t2, "s1") == {"n": 5}
    with pytest.raises(ClientError) as e:  # a path under the service but not a table of it
        s3.put_object(Bucket=BUCKET, Key=f"dcp/{svc['id']}/999999/x.csv", Body=b"customerId\nx\n")
    _denied(e, "not a table of DCP service")
    with pytest.raises(ClientError) as e:  # another service's path
        s3.put_object(Bucket=BUCKET, Key="dcp/1/2/x.csv", Body=b"customerId\nx\n")
    _denied(e, f"DCP service {svc['id']}", f"dcp/{svc['id']}/")
    assert len(requests.get(f"{url}/_emulator/uploads").json()) == 1


@pytest.mark.parametrize("case", ["unknown key", "wrong secret", "unsigned", "sigv2"])
def test_bad_credentials_are_access_denied_with_the_reason(url, case):
    env = _setup(url)
    t1 = env["t1"]
    key = f"{t1['s3_path']}/x.csv"
    if case == "unknown key":
        s3 = _s3(url, "AKIAUNKNOWN000000000", t1["aws_secret_key"])
        words = ["Unknown AWS access key", "AKIAUNKNOWN000000000"]
    elif case == "wrong secret":
        s3 = _s3(url, t1["aws_access_key"], "x" * 40)
        words = ["Signature mismatch", t1["aws_access_key"]]
    else:
        resp = requests.put(f"{url}/{BUCKET}/{key}", data=b"customerId\nx\n",
                            headers={"Authorization": "AWS AKIA:abc"} if case == "sigv2" else {})
        assert resp.status_code == 403
        error = ET.fromstring(resp.content)
        assert error.findtext("Code") == "AccessDenied"
        assert ("Anonymous" if case == "unsigned" else "Signature Version 2") in error.findtext("Message")
        _nothing_stored(url)
        return
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key=key, Body=b"customerId\nx\n")
    _denied(e, *words)
    with pytest.raises(ClientError) as e:
        s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/")
    _denied(e)
    _nothing_stored(url)
    assert "Contents" not in _client_for(url, t1).list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/")


def test_listing_needs_a_prefix_inside_the_scope(url):
    env = _setup(url)
    t1 = env["t1"]
    s3 = _client_for(url, t1)
    for prefix in ("", "dcp/", f"dcp/{t1['dcp_service_id']}/", env["t2"]["s3_path"] + "/"):
        with pytest.raises(ClientError) as e:
            s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix)
        _denied(e, "outside this key's scope")
    s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/sub/")


def test_other_buckets_and_bucket_operations_are_denied(url):
    env = _setup(url)
    s3 = _client_for(url, env["t1"])
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket="another-bucket", Key=f"{env['t1']['s3_path']}/x.csv", Body=b"x")
    _denied(e, "not the import bucket")
    with pytest.raises(ClientError) as e:
        s3.create_bucket(Bucket="mine")
    _denied(e)
    with pytest.raises(ClientError) as e:
        s3.delete_bucket(Bucket=BUCKET)
    _denied(e)
    with pytest.raises(ClientError) as e:
        s3.copy_object(Bucket=BUCKET, Key=f"{env['t1']['s3_path']}/copy.csv",
                       CopySource={"Bucket": BUCKET, "Key": f"{env['t2']['s3_path']}/secret.csv"})
    _denied(e, "Copy source")
    _nothing_stored(url)


def test_archived_table_or_service_refuses_uploads(url):
    env = _setup(url)
    t1, t2, svc = env["t1"], env["t2"], env["service"]
    assert requests.delete(f"{url}{MGMT}/dcp_datasources/{t1['id']}", headers=H).status_code == 204
    with pytest.raises(ClientError) as e:
        _client_for(url, t1).put_object(Bucket=BUCKET, Key=f"{t1['s3_path']}/x.csv", Body=b"customerId\nx\n")
    _denied(e, "archived")
    with pytest.raises(ClientError) as e:  # the service key cannot write into the archived table either
        _client_for(url, svc).put_object(Bucket=BUCKET, Key=f"{t1['s3_path']}/x.csv", Body=b"customerId\nx\n")
    _denied(e, "archived")
    assert requests.delete(f"{url}{MGMT}/dcp_services/{svc['id']}", headers=H).status_code == 204
    with pytest.raises(ClientError) as e:
        _client_for(url, t2).put_object(Bucket=BUCKET, Key=f"{t2['s3_path']}/x.csv", Body=b"customerId\nx\n")
    _denied(e, "archived")
    _nothing_stored(url)


# ---------------------------------------------------------------------- size limit, isolation
def test_entity_too_large_for_put_and_for_completed_multipart(small_url):
    url = small_url
    env = _setup(url)
    t1 = env["t1"]
    s3 = _client_for(url, t1)
    with pytest.raises(ClientError) as e:
        s3.put_object(Bucket=BUCKET, Key=f"{t1['s3_path']}/big.csv", Body=b"x" * (7 * 1024 * 1024))
    assert e.value.response["Error"]["Code"] == "EntityTooLarge"
    key = f"{t1['s3_path']}/parts.csv"
    mpu = s3.create_multipart_upload(Bucket=BUCKET, Key=key)
    parts = []
    for n in (1, 2):  # each part is under the limit, the object is not
        etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=mpu["UploadId"], PartNumber=n,
                              Body=b"y" * (5 * 1024 * 1024))["ETag"]
        parts.append({"ETag": etag, "PartNumber": n})
    with pytest.raises(ClientError) as e:
        s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=mpu["UploadId"],
                                     MultipartUpload={"Parts": parts})
    assert e.value.response["Error"]["Code"] == "EntityTooLarge"
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/")
    _nothing_stored(url)


def test_two_emulators_in_one_process_do_not_share_objects(url, small_url):
    a, b = _setup(url), _setup(small_url)
    # Both emulators number their entities the same way, so the paths are identical.
    assert a["t1"]["s3_path"] == b["t1"]["s3_path"]
    _client_for(url, a["t1"]).put_object(Bucket=BUCKET, Key=f"{a['t1']['s3_path']}/only-a.csv",
                                         Body=b"customerId\nx\n")
    listed = _client_for(small_url, b["t1"]).list_objects_v2(Bucket=BUCKET, Prefix=f"{b['t1']['s3_path']}/")
    assert "Contents" not in listed


def test_virtual_host_style_requests_reach_the_bucket(server, url):
    env = _setup(server.url)
    t1 = env["t1"]
    s3 = _client_for(server.url, t1)
    req_url = f"{server.url}/{t1['s3_path']}/vh.csv"
    # Send a virtual-host request (Host: optimizely-import.<host>) to the emulator's socket.
    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    host = f"{BUCKET}.{server.url.split('//')[1]}"
    request = AWSRequest(method="PUT", url=f"http://{host}/{t1['s3_path']}/vh.csv", data=b"customerId,n\nvh,1\n")
    S3SigV4Auth(Credentials(t1["aws_access_key"], t1["aws_secret_key"]), "s3", "us-east-1").add_auth(request)
    resp = requests.put(req_url, data=b"customerId,n\nvh,1\n",
                        headers={**dict(request.headers), "Host": host})
    assert resp.status_code == 200, resp.text
    assert _wait(server.url)[-1]["key"] == f"{t1['s3_path']}/vh.csv"
    assert _profile(server.url, t1, "vh") == {"n": 1}
    assert s3.head_object(Bucket=BUCKET, Key=f"{t1['s3_path']}/vh.csv")["ContentLength"] == 18


def test_api_routes_are_not_captured_by_s3(url):
    assert requests.get(f"{url}/_emulator/health").status_code == 200
    resp = requests.get(f"{url}/nothing-here")
    assert resp.status_code == 404 and resp.json()["code"] == "not_found"
    assert sys.modules.get("dcp_emulator.s3") is not None


# ---------------------------------------------------------------------- multipart uploadId scope
def _no_such_upload(excinfo, upload_id: str) -> None:
    err = excinfo.value.response["Error"]
    assert (err["Code"], excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"]) == ("NoSuchUpload", 404), err
    assert err.get("UploadId") == upload_id, err


def test_upload_id_of_another_key_is_no_such_upload_for_every_multipart_operation(url):
    env = _setup(url)
    t1, t2 = env["t1"], env["t2"]
    s1, s2 = _client_for(url, t1), _client_for(url, t2)
    key1 = f"{t1['s3_path']}/m.csv"
    mpu = s1.create_multipart_upload(Bucket=BUCKET, Key=key1)["UploadId"]
    s2.put_object(Bucket=BUCKET, Key=f"{t2['s3_path']}/src.csv", Body=b"customerId,n\nfrom-t2,7\n")
    assert len(_wait(url)) == 1
    # t2's key, t2's own path, but t1's upload id; and t1's key on another key of its own path
    for s3, key in ((s2, f"{t2['s3_path']}/m.csv"), (s1, f"{t1['s3_path']}/other.csv")):
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket=BUCKET, Key=key, UploadId=mpu, PartNumber=1, Body=b"customerId,n\nfrom-t2,7\n")
        _no_such_upload(e, mpu)
        with pytest.raises(ClientError) as e:
            s3.upload_part_copy(Bucket=BUCKET, Key=key, UploadId=mpu, PartNumber=2,
                                CopySource={"Bucket": BUCKET, "Key": f"{t2['s3_path']}/src.csv"}
                                if s3 is s2 else {"Bucket": BUCKET, "Key": key1})
        _no_such_upload(e, mpu)
        with pytest.raises(ClientError) as e:
            s3.list_parts(Bucket=BUCKET, Key=key, UploadId=mpu)
        _no_such_upload(e, mpu)
        with pytest.raises(ClientError) as e:
            s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=mpu,
                                         MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": '"00"'}]})
        _no_such_upload(e, mpu)
        with pytest.raises(ClientError) as e:
            s3.abort_multipart_upload(Bucket=BUCKET, Key=key, UploadId=mpu)
        _no_such_upload(e, mpu)
    for s3, key in ((s1, key1), (s2, f"{t2['s3_path']}/m.csv")):  # an id that never existed
        with pytest.raises(ClientError) as e:
            s3.upload_part(Bucket=BUCKET, Key=key, UploadId="no-such-id", PartNumber=1, Body=b"x")
        _no_such_upload(e, "no-such-id")
    # nothing reached t1's upload, and it still completes normally, into t1 only
    assert s1.list_parts(Bucket=BUCKET, Key=key1, UploadId=mpu).get("Parts", []) == []
    etag = s1.upload_part(Bucket=BUCKET, Key=key1, UploadId=mpu, PartNumber=1, Body=b"customerId,n\nown,1\n")["ETag"]
    s1.complete_multipart_upload(Bucket=BUCKET, Key=key1, UploadId=mpu,
                                 MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
    uploads = _wait(url)  # the uploads finished since the previous wait (which reported src.csv)
    assert [(u["datasource_id"], u["key"], u["status"]) for u in uploads] == [(t1["id"], key1, "succeeded")]
    assert _profile(url, t1, "own") == {"n": 1} and _profile(url, t1, "from-t2") is None
    assert "Contents" not in s2.list_objects_v2(Bucket=BUCKET, Prefix=f"{t2['s3_path']}/m.csv")
    assert "Contents" not in s1.list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/other.csv")


# ---------------------------------------------------------------------- Content-Length
def _chunked(data: bytes):
    yield data  # a generator body: requests sends it with Transfer-Encoding: chunked, no Content-Length


def test_put_without_content_length_is_missing_content_length(url):
    env = _setup(url)
    t1 = env["t1"]
    s3 = _client_for(url, t1)
    body = b"customerId,n\nc1,1\n"
    put_url = s3.generate_presigned_url("put_object", Params={"Bucket": BUCKET, "Key": f"{t1['s3_path']}/p.csv"})
    key = f"{t1['s3_path']}/mp.csv"
    mpu = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
    part_url = s3.generate_presigned_url("upload_part", Params={"Bucket": BUCKET, "Key": key, "UploadId": mpu,
                                                                "PartNumber": 1})
    for target in (put_url, part_url):
        resp = requests.put(target, data=_chunked(body))
        assert resp.status_code == 411, resp.text
        error = ET.fromstring(resp.content)
        assert error.findtext("Code") == "MissingContentLength" and "Content-Length" in error.findtext("Message")
    _nothing_stored(url)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET, Prefix=f"{t1['s3_path']}/")
    assert s3.list_parts(Bucket=BUCKET, Key=key, UploadId=mpu).get("Parts", []) == []
    # with a length the same URLs work
    assert requests.put(put_url, data=body).status_code == 200
    assert _wait(url)[0]["status"] == "succeeded"


def test_aws_chunked_body_sent_with_transfer_encoding_chunked_still_works(url):
    """aws-chunked bodies say their size in x-amz-decoded-content-length, so they need no Content-Length."""
    import base64
    import zlib

    from botocore.auth import S3SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    env = _setup(url)
    t1 = env["t1"]
    data = b"customerId,n\nchunky,5\n"
    crc = base64.b64encode(zlib.crc32(data).to_bytes(4, "big")).decode()
    body = f"{len(data):x}\r\n".encode() + data + f"\r\n0\r\nx-amz-checksum-crc32:{crc}\r\n\r\n".encode()
    headers = {"x-amz-content-sha256": "STREAMING-UNSIGNED-PAYLOAD-TRAILER", "Content-Encoding": "aws-chunked",
               "x-amz-decoded-content-length": str(len(data)), "x-amz-trailer": "x-amz-checksum-crc32"}
    target = f"{url}/{BUCKET}/{t1['s3_path']}/chunked.csv"
    request = AWSRequest(method="PUT", url=target, headers=headers)
    request.context["checksum"] = {"request_algorithm": {"in": "trailer", "name": "x-amz-checksum-crc32"}}
    S3SigV4Auth(Credentials(t1["aws_access_key"], t1["aws_secret_key"]), "s3", "us-east-1").add_auth(request)
    resp = requests.put(target, data=_chunked(body), headers=dict(request.headers))
    assert resp.status_code == 200, resp.text
    [up] = _wait(url)
    assert (up["status"], up["size_bytes"]) == ("succeeded", len(data))
    assert _profile(url, t1, "chunky") == {"n": 5}


# ---------------------------------------------------------------------- moto's mock_aws in the same process
def test_emulator_survives_motos_mock_aws_resetting_its_backends():
    """Integrators use moto's mock_aws next to the emulator; moto resets every backend when it starts and stops."""
    from moto import mock_aws
    from moto.s3.models import s3_backends

    srv = _start()
    try:
        url = srv.url
        gateway = srv.app.extensions["dcp_emulator"].s3
        env = _setup(url)
        _client_for(url, env["t1"]).put_object(Bucket=BUCKET, Key=f"{env['t1']['s3_path']}/a.csv",
                                               Body=b"customerId,n\na,1\n")
        assert _wait(url)[0]["status"] == "succeeded"
        backend_before = s3_backends[gateway.account_id]["aws"]
        with mock_aws():
            boto3.client("s3", region_name="us-east-1").create_bucket(Bucket="integrators-own")
        assert s3_backends[gateway.account_id]["aws"] is not backend_before  # moto replaced it
        # straight after the block, without a reset: the bucket is there again (empty)
        s3 = _client_for(url, env["t1"])
        s3.put_object(Bucket=BUCKET, Key=f"{env['t1']['s3_path']}/b.csv", Body=b"customerId,n\nb,2\n")
        assert _wait(url)[-1]["status"] == "succeeded" and _profile(url, env["t1"], "b") == {"n": 2}
        assert [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET, Prefix=env["t1"]["s3_path"] + "/")["Contents"]] == [
            f"{env['t1']['s3_path']}/b.csv"]
        with mock_aws():
            pass
        resp = requests.post(f"{url}/_emulator/reset")
        assert resp.status_code == 200, resp.text
        health = requests.get(f"{url}/_emulator/health")
        assert health.status_code == 200 and health.json()["parts"]["s3"]["ready"], health.text
        env = _setup(url)
        s3 = _client_for(url, env["t2"])
        key = f"{env['t2']['s3_path']}/after.csv"
        mpu = s3.create_multipart_upload(Bucket=BUCKET, Key=key)["UploadId"]
        etag = s3.upload_part(Bucket=BUCKET, Key=key, UploadId=mpu, PartNumber=1, Body=b"customerId,n\nc,3\n")["ETag"]
        s3.complete_multipart_upload(Bucket=BUCKET, Key=key, UploadId=mpu,
                                     MultipartUpload={"Parts": [{"PartNumber": 1, "ETag": etag}]})
        [up] = _wait(url)
        assert up["status"] == "succeeded" and _profile(url, env["t2"], "c") == {"n": 3}
        # the integrator's moto bucket did not leak into the emulator's (separate account)
        assert [b["Name"] for b in s3.list_buckets()["Buckets"]] == [BUCKET]
    finally:
        srv.shutdown()
