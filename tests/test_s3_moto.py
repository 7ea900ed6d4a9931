"""The moto adapter (dcp_emulator/s3_moto.py) against moto itself: what the emulator relies on still holds.

When moto's next minor version changes an internal, these tests say which one.
"""

from __future__ import annotations

import io
import secrets

import pytest

from dcp_emulator import s3_moto
from dcp_emulator.s3_body import DiskBuffer


@pytest.fixture
def account():
    account_id = str(secrets.randbelow(9 * 10**11) + 10**11)
    yield account_id
    s3_moto.empty_bucket(s3_moto.ensure_bucket(account_id, "b"))
    s3_moto.drop_account(account_id)


def _buffer(tmp_path, data: bytes, name: str = "buf") -> DiskBuffer:
    path = tmp_path / name
    path.write_bytes(data)
    return DiskBuffer(str(path), len(data))


def _put(account: str, key: str, tmp_path, data: bytes):
    bucket = s3_moto.ensure_bucket(account, "b")
    obj = s3_moto.backend(account).put_object("b", key, b"")
    s3_moto.attach_buffer(obj, _buffer(tmp_path, data, key.replace("/", "_")), len(data), "0" * 32)
    return bucket, obj


def test_the_app_is_out_of_debug_mode():
    assert s3_moto.create_app().debug is False


def test_buckets_are_per_account_and_created_once(account):
    bucket = s3_moto.ensure_bucket(account, "b")
    assert s3_moto.ensure_bucket(account, "b") is bucket and s3_moto.has_bucket(account, "b")
    other = str(int(account) + 1)
    try:
        assert s3_moto.ensure_bucket(other, "b") is not bucket
    finally:
        s3_moto.drop_account(other)


def test_an_attached_buffer_is_the_objects_bytes_for_moto_and_for_readers(account, tmp_path):
    data = b"customerId\n" + b"x\n" * 1000
    bucket, obj = _put(account, "k", tmp_path, data)
    assert s3_moto.current_object(bucket, "k") is obj and s3_moto.object_versions(bucket, "k") == [obj]
    assert s3_moto.size(obj) == len(data) and s3_moto.etag(obj) == "0" * 32
    assert obj.value == data  # moto's own reads see the file
    with s3_moto.open_reader(obj) as reader:
        reader.seek(11)
        assert reader.read(4) == b"x\nx\n"
    with s3_moto.bytes_hidden(obj):
        assert obj.value == b""
    assert obj.value == data
    path = s3_moto.buffer_of(obj).path
    s3_moto.dispose(obj)
    assert not (tmp_path / "k").exists() and path.endswith("k")


def test_multipart_helpers_and_completion(account, tmp_path):
    bucket = s3_moto.ensure_bucket(account, "b")
    backend = s3_moto.backend(account)
    upload = backend.create_multipart_upload("b", "big", {}, "STANDARD", {}, None, None, None)
    upload_id = upload if isinstance(upload, str) else upload.id
    mp = s3_moto.multipart(bucket, upload_id)
    assert s3_moto.multipart_key(bucket, upload_id) == "big" and s3_moto.multipart_key(bucket, "nope") is None
    part = s3_moto.new_part(mp, 1)
    s3_moto.attach_buffer(part, _buffer(tmp_path, b"abc", "p1"), 3, "1" * 32)
    assert s3_moto.part(mp, 1) is part and s3_moto.parts_total(mp) == 3 and s3_moto.min_part_size() >= 1
    obj = s3_moto.complete(account, bucket, mp, upload_id, _buffer(tmp_path, b"abc", "whole"), 3, "2" * 32 + "-1")
    assert s3_moto.current_object(bucket, "big") is obj and obj.value == b"abc"
    assert s3_moto.multipart(bucket, upload_id) is None
    assert not (tmp_path / "p1").exists()  # the parts' buffers are released with the upload


def test_emptying_deletes_buffers_and_moto_forgets_released_objects(account, tmp_path):
    from moto.s3.models import FakeKey

    other = str(int(account) + 1)
    try:
        _put(other, "kept", tmp_path, b"other account")
        for i in range(20):
            _put(account, f"k{i}", tmp_path, b"x")
        bucket = s3_moto.ensure_bucket(account, "b")
        s3_moto.empty_bucket(bucket)
        assert not list(tmp_path.glob("k[0-9]*")) and s3_moto.current_object(bucket, "k0") is None
        assert s3_moto.forget_released(account) >= 20
        assert not [o for o in FakeKey.instances_tracked if getattr(o, "account_id", None) == account]
        assert [o for o in FakeKey.instances_tracked if getattr(o, "account_id", None) == other]  # untouched
    finally:
        s3_moto.empty_bucket(s3_moto.ensure_bucket(other, "b"))
        s3_moto.drop_account(other)


def test_disk_buffer_reads_like_a_file_and_refuses_writes(tmp_path):
    buf = _buffer(tmp_path, b"0123456789")
    assert buf.read(3) == b"012" and buf.tell() == 3 and buf.read() == b"3456789"
    buf.seek(-2, io.SEEK_END)
    assert buf.read() == b"89"
    buf.truncate()
    buf.write(b"")
    with pytest.raises(io.UnsupportedOperation):
        buf.write(b"x")
    buf.link(str(tmp_path / "second"))
    buf.close()
    assert (tmp_path / "second").read_bytes() == b"0123456789" and not (tmp_path / "buf").exists()
    with pytest.raises(ValueError):
        buf.read()
