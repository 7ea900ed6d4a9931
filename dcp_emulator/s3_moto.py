"""Every use of moto's internals, in one place: the next moto minor version is a change to this file only.

The emulator serves S3 with moto's S3 implementation (listing, HEAD, multipart bookkeeping, errors,
metadata, tags) but keeps object bytes out of moto's memory: bodies are streamed to on-disk buffers
(``s3_body.DiskBuffer``) and attached to the ``FakeKey`` moto created for the request, in place of the
in-memory buffer moto would have filled. What this module relies on, by moto version 5.2:

* ``moto.server.create_backend_app("s3")``: the WSGI app, with Flask's debug mode left on by moto;
* ``s3_backends[account]["aws"]``: the per-account backend; ``FakeBucket(name, account_id, region_name)``
  and ``backend.buckets``; ``bucket.keys`` (``get``, ``getlist``, ``iterlists``, ``setlist``, ``clear``)
  and ``bucket.multiparts`` (``FakeMultipart`` with ``key_name``, ``parts``, ``set_part``, ``metadata``,
  ``storage``, ``acl``, ``tags``, ``sse_encryption``, ``kms_key_id``, ``dispose``);
* ``FakeKey``: ``_value_buffer`` (any file object with seek/read/close), ``contentsize``, ``_etag``,
  ``lock``, ``multipart``, ``last_modified``, ``dispose()``, ``set_metadata``, ``set_acl``;
* ``BaseModel.instances_tracked``: moto keeps every model object it ever created in a class-level list
  (for its dashboard), so disposed objects are never freed unless they are dropped from it;
* ``moto.settings.S3_UPLOAD_PART_MIN_SIZE``.
"""

from __future__ import annotations

import contextlib
import io
import threading
from collections.abc import Iterator
from typing import Any, BinaryIO

REGION = "us-east-1"
_bucket_lock = threading.Lock()


def create_app() -> Any:
    """moto's S3 WSGI app, out of Flask's debug mode.

    moto turns debug on; in debug mode every request leaves a reference cycle (Flask keeps the request
    context for the debugger), so whatever the request held is freed only by the cycle collector.
    """
    from moto.server import create_backend_app

    app = create_backend_app("s3")
    app.debug = False
    # Debug mode also made moto's exceptions propagate to the gateway, which answers them with S3's XML
    # (MalformedXML for a body moto cannot read, InternalError otherwise): keep that without the debugger.
    app.config["PROPAGATE_EXCEPTIONS"] = True
    return app


def backend(account_id: str) -> Any:
    """moto's S3 backend of an account, looked up anew each time.

    moto's ``mock_aws`` (used by integrators in the same process) resets its process-global backends on
    start and stop: the account's backend object is replaced by a new, empty one, and moto's request
    handlers use the new one. Holding on to the old object would split us from moto.
    """
    from moto.s3.models import s3_backends

    return s3_backends[account_id]["aws"]


def drop_account(account_id: str) -> None:
    """Forget an account's backend (its buckets must be emptied first)."""
    from moto.s3.models import s3_backends

    try:
        del s3_backends[account_id]
    except KeyError:
        pass


def ensure_bucket(account_id: str, name: str) -> Any:
    """The account's bucket ``name``, created (empty) if missing."""
    buckets = backend(account_id).buckets
    bucket = buckets.get(name)
    if bucket is None:
        from moto.s3.models import FakeBucket

        with _bucket_lock:
            bucket = buckets.get(name)
            if bucket is None:
                # Not backend.create_bucket(): moto keeps one global bucket namespace and would refuse the
                # same name in a second emulator's account. A bucket object of our own in the account's
                # backend is found first by every lookup of this account.
                bucket = FakeBucket(name=name, account_id=account_id, region_name=REGION)
                buckets[name] = bucket
    return bucket


def has_bucket(account_id: str, name: str) -> bool:
    """Whether the account's backend holds the bucket."""
    return name in backend(account_id).buckets


# ---------------------------------------------------------------------- objects
def current_object(bucket: Any, key: str) -> Any | None:
    """The object stored under ``key`` (None when there is none)."""
    return bucket.keys.get(key)


def object_versions(bucket: Any, key: str) -> list:
    """Every object moto holds under ``key`` (one unless the bucket is versioned)."""
    return list(bucket.keys.getlist(key, []))


def attach_buffer(fake_key: Any, buffer: Any, size: int, md5_hex: str) -> None:
    """Make ``buffer`` (the streamed body on disk) the bytes of ``fake_key``; moto's own buffer is closed."""
    with fake_key.lock:
        old = fake_key._value_buffer
        fake_key._value_buffer = buffer
        fake_key.contentsize = size
        fake_key._etag = md5_hex
    old.close()


def buffer_of(fake_key: Any) -> Any:
    """The file object holding a stored object's or part's bytes."""
    return fake_key._value_buffer


def open_reader(fake_key: Any) -> BinaryIO:
    """A private reader of an object's bytes (its own file position), for reading in chunks."""
    buffer = fake_key._value_buffer
    if hasattr(buffer, "open_reader"):  # one of ours (s3_body.DiskBuffer)
        return buffer.open_reader()
    return io.BytesIO(fake_key.value)  # a buffer moto filled itself (bounded by what moto was sent)


def etag(fake_key: Any) -> str:
    """The object's ETag without quotes."""
    return fake_key.etag.strip('"')


def size(fake_key: Any) -> int:
    """The object's size in bytes."""
    return fake_key.size


def last_modified_iso(fake_key: Any) -> str:
    """The object's Last-Modified as S3's XML answers write it."""
    return fake_key.last_modified_ISO8601


def dispose(fake_key: Any) -> None:
    """Release an object's (or part's) buffer now rather than when moto lets go of it (never, see module doc)."""
    fake_key.dispose()
    if getattr(fake_key, "multipart", None) is not None:
        fake_key.multipart = None  # moto links an assembled object to its upload's parts: let them go


# ---------------------------------------------------------------------- multipart uploads
def multipart(bucket: Any, upload_id: str) -> Any | None:
    """The open multipart upload ``upload_id`` (None when unknown, completed or aborted)."""
    return bucket.multiparts.get(upload_id)


def multipart_key(bucket: Any, upload_id: str) -> str | None:
    """The key an open multipart upload writes (None when there is no such upload)."""
    upload = bucket.multiparts.get(upload_id)
    return None if upload is None else upload.key_name


def part(upload: Any, number: int) -> Any | None:
    """Part ``number`` of an upload (None when not uploaded)."""
    return upload.parts.get(number)


def parts_total(upload: Any) -> int:
    """Bytes uploaded so far in an upload's parts."""
    return sum(p.size for p in list(upload.parts.values()))


def new_part(upload: Any, number: int) -> Any:
    """An empty part ``number`` in an upload (replacing and releasing one of that number)."""
    return upload.set_part(number, b"")


def min_part_size() -> int:
    """The smallest size S3 allows for a part that is not the last one."""
    from moto.settings import S3_UPLOAD_PART_MIN_SIZE

    return S3_UPLOAD_PART_MIN_SIZE


def complete(account_id: str, bucket: Any, upload: Any, upload_id: str, buffer: Any, size: int,
             etag_value: str) -> Any:
    """Store the assembled object of a multipart upload (its bytes in ``buffer``); returns the new object.

    What moto's own completion does, minus concatenating the parts in memory. Not reproduced: the
    full-object checksum moto computes for x-amz-checksum-* uploads.
    """
    from moto.s3.models import FakeKey

    obj = FakeKey(name=upload.key_name, value=b"", account_id=account_id, region_name=REGION,
                  storage=upload.storage, etag=etag_value, bucket_name=bucket.name,
                  encryption=upload.sse_encryption, kms_key_id=upload.kms_key_id)
    attach_buffer(obj, buffer, size, etag_value)
    metadata = dict(upload.metadata)
    metadata.pop("x-amz-checksum-algorithm", None)
    metadata.pop("x-amz-checksum-type", None)
    obj.set_metadata(metadata)
    if upload.acl is not None:
        obj.set_acl(upload.acl)
    if upload.tags:
        backend(account_id).put_object_tagging(obj, upload.tags)
    bucket.keys.setlist(upload.key_name, [obj])
    bucket.multiparts.pop(upload_id, None)
    upload.dispose()
    return obj


# ---------------------------------------------------------------------- emptying
def empty_bucket(bucket: Any) -> None:
    """Delete every object and unfinished multipart upload of a bucket, releasing their buffers."""
    for _name, versions in list(bucket.keys.iterlists()):
        for key in versions:
            dispose(key)
    bucket.keys.clear()
    for upload in list(bucket.multiparts.values()):
        upload.dispose()
    bucket.multiparts.clear()


def forget_released(account_id: str) -> int:
    """Drop this account's released objects and uploads from moto's instance trackers; returns how many.

    moto appends every object, part and upload it creates to a class-level list and never removes
    them, so without this every object ever stored stays in memory (RSS grew by ~280 MB per round of
    10,000 objects and a reset). Only objects of this account that are disposed of (and uploads no
    longer open) are dropped; other accounts' (another emulator's, an integrator's mock_aws) stay.
    """
    from moto.s3.models import FakeAcl, FakeGrant, FakeGrantee, FakeKey, FakeMultipart

    dropped = 0
    open_uploads: set[int] = set()
    try:
        for bucket in backend(account_id).buckets.values():
            open_uploads.update(id(u) for u in bucket.multiparts.values())
    except KeyError:
        pass
    for cls, dead in ((FakeKey, lambda o: getattr(o, "disposed", False)),
                      (FakeMultipart, lambda o: id(o) not in open_uploads)):
        tracked = cls.instances_tracked
        kept = [o for o in tracked if getattr(o, "account_id", None) != account_id or not dead(o)]
        dropped += len(tracked) - len(kept)
        tracked[:] = kept
    # Every object also gets an ACL (three tracked models) that names no account. The trackers only feed
    # moto's dashboard (an ACL in use stays referenced by its object), so they are dropped whole.
    for cls in (FakeAcl, FakeGrant, FakeGrantee):
        dropped += len(cls.instances_tracked)
        cls.instances_tracked[:] = []
    return dropped


EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"  # the ETag moto computes for an object it saw empty


@contextlib.contextmanager
def bytes_hidden(fake_key: Any | None) -> Iterator[None]:
    """Make moto see an object as empty while it handles a request that would read all of its bytes
    (CopyObject reads the source's whole value); the caller copies the bytes itself, in chunks."""
    if fake_key is None:
        yield
        return
    with fake_key.lock:
        real = fake_key._value_buffer
        fake_key._value_buffer = io.BytesIO()
    try:
        yield
    finally:
        with fake_key.lock:
            fake_key._value_buffer = real
