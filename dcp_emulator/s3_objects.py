"""Object bytes of the S3 endpoint: the requests that write or read them, without holding them in memory.

moto answers every S3 request (headers, errors, metadata, listing, multipart bookkeeping), but it
reads a request body whole and builds an object's value in memory. For the requests that carry
object bytes the gateway calls ``ObjectBodies.handle`` instead, which

* PutObject / UploadPart: streams the body to a ``DiskBuffer`` (``s3_body``), then lets moto process
  the same request with an empty body and attaches the buffer to the object (or part) moto created;
* UploadPartCopy / CopyObject: copies the source's buffer in chunks, then asks moto the same way;
* CompleteMultipartUpload: checks the part list as S3 does and concatenates the parts' buffers on disk;
* GetObject: asks moto for the answer of the same request as HEAD (status, headers, preconditions,
  range) and streams the bytes from the buffer;
* DeleteObject / AbortMultipartUpload: releases the buffers moto drops (it never closes them itself).

Writes to the bucket happen under one lock, held only while moto records the request and the buffer
is attached (never while bytes are read or copied): each request knows the very object it created,
so concurrent writes to one key cannot read or release each other's buffers.
"""

from __future__ import annotations

import hashlib
import io
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any, BinaryIO
from urllib.parse import parse_qsl, quote, unquote
from xml.etree import ElementTree as ET
from xml.sax.saxutils import escape

from . import s3_moto
from .s3_body import CHUNK, BufferDir, Received
from .s3_errors import S3Error

# moto's answer to a request: (status line, headers, body pieces)
Answer = tuple[str, list[tuple[str, str]], list[bytes]]
MotoCall = Callable[[dict], Answer]
# called under the write lock when an object is stored: (key, moto's object)
OnStored = Callable[[str, Any], None]

_PUT_SUBRESOURCES = {"acl", "tagging", "retention", "legal-hold", "restore"}
_GET_PLAIN_PARAMS = {"partNumber", "versionId", "x-id"}
_RESPONSE_OVERRIDES = {"response-cache-control": "Cache-Control", "response-content-disposition":
                       "Content-Disposition", "response-content-encoding": "Content-Encoding",
                       "response-content-language": "Content-Language", "response-content-type": "Content-Type",
                       "response-expires": "Expires"}
_MAX_COMPLETE_BODY = 4 << 20  # a CompleteMultipartUpload list of 10,000 parts is ~1 MB of XML
_FORGET_EVERY = 1000  # released objects between two prunings of moto's instance trackers


class ObjectBodies:
    """The object-bytes side of one emulator's S3 bucket."""

    def __init__(self, account_id: str, bucket_name: str, buffers: BufferDir, call_moto: MotoCall,
                 max_object_bytes: int):
        self.account_id = account_id
        self.bucket_name = bucket_name
        self.buffers = buffers
        self.call_moto = call_moto
        self.max_object_bytes = max_object_bytes
        self.lock = threading.RLock()
        self._released = 0

    @property
    def bucket(self) -> Any:
        """moto's bucket (re-created if a moto reset dropped it)."""
        return s3_moto.ensure_bucket(self.account_id, self.bucket_name)

    # ------------------------------------------------------------------ dispatch
    def handle(self, method: str, key: str, query: dict, environ: dict, on_stored: OnStored) -> Answer | None:
        """Answer a request on an object that carries or returns its bytes; None: moto answers it alone."""
        copy_source = environ.get("HTTP_X_AMZ_COPY_SOURCE")
        if method == "PUT" and not (_PUT_SUBRESOURCES & query.keys()):
            if "uploadId" in query or "partNumber" in query:
                if "uploadId" in query and "partNumber" in query:
                    return self._upload_part(environ, key, query, copy_source)
                return None
            if copy_source:
                return self._copy_object(environ, key, copy_source, on_stored)
            return self._put_object(environ, key, on_stored)
        if method == "POST" and "uploadId" in query:
            return self._complete(environ, key, query["uploadId"], on_stored)
        if method == "GET" and all(k in _GET_PLAIN_PARAMS or k.startswith(("response-", "X-Amz-"))
                                   for k in query):
            return self._get_object(environ, key, query)
        if method == "DELETE":
            return self._delete(environ, key, query)
        return None

    # ------------------------------------------------------------------ writes
    def _put_object(self, environ: dict, key: str, on_stored: OnStored) -> Answer:
        received = self.buffers.receive(environ, self.max_object_bytes)
        return self._store(environ, key, received, on_stored)

    def _store(self, environ: dict, key: str, received: Received, on_stored: OnStored) -> Answer:
        """Let moto record a PutObject (without its body), then give moto's new object the received bytes."""
        attached = False
        try:
            with self.lock:
                bucket = self.bucket
                previous = s3_moto.object_versions(bucket, key)
                status, headers, body = self.call_moto(_bodiless(environ, received))
                if not status.startswith("200"):
                    return status, headers, body
                obj = self._attach_to_new_object(bucket, key, previous, received)
                attached = True
                self._stored(key, obj, previous, on_stored)
                return status, _with_etag(headers, received.md5), body
        finally:
            if not attached:
                received.buffer.close()

    def _upload_part(self, environ: dict, key: str, query: dict, copy_source: str | None) -> Answer:
        try:
            number = int(query["partNumber"])
        except ValueError:
            raise S3Error("InvalidArgument", f"Part number must be an integer between 1 and 10000, inclusive "
                          f"(got {query['partNumber']!r}).", 400, ArgumentName="partNumber") from None
        upload_id = query["uploadId"]
        if copy_source:
            received = self._copy_range(copy_source, environ.get("HTTP_X_AMZ_COPY_SOURCE_RANGE"))
        else:
            received = self.buffers.receive(environ, self.max_object_bytes)
        attached = False
        try:
            with self.lock:
                moto_env = _bodiless(environ, received)
                moto_env.pop("HTTP_X_AMZ_COPY_SOURCE", None)
                moto_env.pop("HTTP_X_AMZ_COPY_SOURCE_RANGE", None)
                status, headers, body = self.call_moto(moto_env)  # moto's UploadPart: checks, records the part
                if not status.startswith("200"):
                    return status, headers, body
                upload = s3_moto.multipart(self.bucket, upload_id)
                part = None if upload is None else s3_moto.part(upload, number)
                if part is None:
                    raise RuntimeError(f"moto answered 200 but holds no part {number} of upload {upload_id}")
                s3_moto.attach_buffer(part, received.buffer, received.buffer.size, received.md5)
                attached = True
                if copy_source:
                    xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<CopyPartResult xmlns="http://s3.amazonaws.com/'
                           f'doc/2006-03-01/"><LastModified>{s3_moto.last_modified_iso(part)}</LastModified>'
                           f"<ETag>&quot;{received.md5}&quot;</ETag></CopyPartResult>").encode()
                    return status, _xml_headers(headers, xml), [xml]
                return status, _with_etag(headers, received.md5), body
        finally:
            if not attached:
                received.buffer.close()

    @staticmethod
    def _attach_to_new_object(bucket: Any, key: str, previous: list, received: Received) -> Any:
        """Give the object moto has just stored under ``key`` (after its 200) the received bytes; returns it."""
        obj = s3_moto.current_object(bucket, key)
        if obj is None or any(obj is p for p in previous):
            raise RuntimeError(f"moto answered 200 but stored no new object {key!r}")
        s3_moto.attach_buffer(obj, received.buffer, received.buffer.size, received.md5)
        return obj

    def _copy_object(self, environ: dict, key: str, copy_source: str, on_stored: OnStored) -> Answer:
        """CopyObject: the source's bytes copied on disk; moto records the copy with the source's bytes hidden."""
        received = self._copy_range(copy_source, None)
        attached = False
        try:
            with self.lock:
                bucket = self.bucket
                source = s3_moto.current_object(bucket, _copy_source_key(copy_source))
                previous = s3_moto.object_versions(bucket, key)
                with s3_moto.bytes_hidden(source):  # moto would read the whole source into memory
                    status, headers, body = self.call_moto(environ)
                if not status.startswith("200"):
                    return status, headers, body
                obj = self._attach_to_new_object(bucket, key, previous, received)
                attached = True
                self._stored(key, obj, previous, on_stored)
                # moto's CopyObjectResult names the ETag of the empty stand-in it copied
                body = [b.replace(s3_moto.EMPTY_MD5.encode(), received.md5.encode()) for b in body]
                headers = [(k, v) if k.lower() != "content-length" else (k, str(sum(map(len, body))))
                           for k, v in headers]
                return status, headers, body
        finally:
            if not attached:
                received.buffer.close()

    def _copy_range(self, copy_source: str, range_header: str | None) -> Received:
        """A new buffer with the bytes of a copy source (all of them, or ``bytes=first-last``)."""
        src_bucket, src_key = _copy_source(copy_source)
        with self.lock:
            obj = s3_moto.current_object(self.bucket, src_key) if src_bucket == self.bucket_name else None
            if obj is None:
                raise S3Error("NoSuchKey", "The specified key does not exist.", 404, Key=src_key)
            size = s3_moto.size(obj)
            reader = s3_moto.open_reader(obj)  # its own descriptor: the source may be replaced meanwhile
        with reader:
            start, length = 0, size
            if range_header:
                first, last = _byte_range(range_header, size)
                start, length = first, last - first + 1
            return self.buffers.copy(reader, start, length)

    # ------------------------------------------------------------------ CompleteMultipartUpload
    def _complete(self, environ: dict, key: str, upload_id: str, on_stored: OnStored) -> Answer:
        listed = _parse_part_list(_read_small_body(environ))
        with self.lock:
            upload = self._open_upload(key, upload_id)
            parts = self._check_parts(upload, listed)
            readers = [s3_moto.open_reader(p) for p in parts]
        etag = (f"{hashlib.md5(b''.join(bytes.fromhex(s3_moto.etag(p)) for p in parts), usedforsecurity=False).hexdigest()}"
                f"-{len(parts)}")
        buffer, size = self.buffers.concatenate(readers)  # on disk, outside the lock
        attached = False
        try:
            with self.lock:
                upload = self._open_upload(key, upload_id)  # aborted or completed meanwhile?
                if [s3_moto.part(upload, n) for n, _ in listed] != parts:
                    raise S3Error("InvalidPart", "A part was uploaded again while the upload was being completed; "
                                  "complete it again with the new part's ETag.", 400)
                bucket = self.bucket
                previous = s3_moto.object_versions(bucket, key)
                obj = s3_moto.complete(self.account_id, bucket, upload, upload_id, buffer, size, etag)
                attached = True
                self._stored(key, obj, previous, on_stored)
        finally:
            if not attached:
                buffer.close()
        host = environ.get("HTTP_HOST", "")
        xml = (f'<?xml version="1.0" encoding="UTF-8"?>\n<CompleteMultipartUploadResult '
               f'xmlns="http://s3.amazonaws.com/doc/2006-03-01/"><Location>http://{escape(host)}/{self.bucket_name}/'
               f"{escape(quote(key))}</Location><Bucket>{self.bucket_name}</Bucket><Key>{escape(key)}</Key>"
               f"<ETag>&quot;{etag}&quot;</ETag></CompleteMultipartUploadResult>").encode()
        return "200 OK", [("Content-Type", "application/xml"), ("Content-Length", str(len(xml)))], [xml]

    def _open_upload(self, key: str, upload_id: str) -> Any:
        upload = s3_moto.multipart(self.bucket, upload_id)
        if upload is None or s3_moto.multipart_key(self.bucket, upload_id) != key:
            raise S3Error("NoSuchUpload", "The specified upload does not exist. The upload ID may be invalid, or the "
                          "upload may have been aborted or completed.", 404, UploadId=upload_id)
        return upload

    @staticmethod
    def _check_parts(upload: Any, listed: list[tuple[int, str]]) -> list:
        """The parts a completion names, checked as S3 checks them (order, ETags, sizes)."""
        numbers = [n for n, _ in listed]
        if numbers != sorted(set(numbers)):
            raise S3Error("InvalidPartOrder", "The list of parts was not in ascending order. Parts must be ordered "
                          "by part number.", 400)
        parts = []
        for n, etag in listed:
            part = s3_moto.part(upload, n)
            if part is None or s3_moto.etag(part) != etag:
                raise S3Error("InvalidPart", "One or more of the specified parts could not be found. The part might "
                              "not have been uploaded, or the specified entity tag might not have matched the part's "
                              f"entity tag (part {n}, ETag {etag!r}).", 400, PartNumber=n, ETag=etag)
            parts.append(part)
        minimum = s3_moto.min_part_size()
        for n, part in zip(numbers[:-1], parts[:-1]):
            if s3_moto.size(part) < minimum:
                raise S3Error("EntityTooSmall", "Your proposed upload is smaller than the minimum allowed object "
                              f"size: part {n} is {s3_moto.size(part)} bytes, and every part but the last must be "
                              f"at least {minimum} bytes.", 400, ProposedSize=s3_moto.size(part), MinSizeAllowed=minimum)
        return parts

    # ------------------------------------------------------------------ reads
    def _get_object(self, environ: dict, key: str, query: dict) -> Answer:
        """GetObject: moto answers it as HEAD (status, headers, preconditions, range); we stream the bytes."""
        head = dict(environ, REQUEST_METHOD="HEAD")
        with self.lock:  # the object answered for is the one we open
            status, headers, _ = self.call_moto(head)
            code = int(status.split()[0])
            reader = None
            if code in (200, 206):
                obj = s3_moto.current_object(self.bucket, key)
                if obj is None:
                    code = 404
                else:
                    reader = s3_moto.open_reader(obj)
        if code == 404:
            raise S3Error("NoSuchKey", "The specified key does not exist.", 404, Key=key)
        if code == 412:
            raise S3Error("PreconditionFailed", "At least one of the pre-conditions you specified did not hold.", 412,
                          Condition="If-Match" if environ.get("HTTP_IF_MATCH") else "If-Unmodified-Since")
        if code == 416:
            raise S3Error("InvalidRange", "The requested range is not satisfiable.", 416,
                          RangeRequested=environ.get("HTTP_RANGE", ""))
        if reader is None:
            return status, headers, []  # 304 Not Modified, or another answer without a body
        length = int(_get_header(headers, "content-length") or 0)
        start = 0
        content_range = _get_header(headers, "content-range")
        if code == 206 and content_range:
            start = int(content_range.split()[1].split("-")[0])
        for param, header in _RESPONSE_OVERRIDES.items():
            if param in query:
                headers = [(k, v) for k, v in headers if k.lower() != header.lower()] + [(header, query[param])]
        return status, headers, _stream(reader, start, length)

    def _delete(self, environ: dict, key: str, query: dict) -> Answer:
        """DeleteObject / AbortMultipartUpload by moto, then release what moto dropped."""
        with self.lock:
            bucket = self.bucket
            upload_id = query.get("uploadId")
            upload = s3_moto.multipart(bucket, upload_id) if upload_id else None
            previous = s3_moto.object_versions(bucket, key)
            answer = self.call_moto(environ)
            if upload is not None and s3_moto.multipart(bucket, upload_id) is not upload:
                upload.dispose()
                self._count_released(1)
            now = s3_moto.object_versions(bucket, key)
            self._release([p for p in previous if not any(p is o for o in now)])
            return answer

    # ------------------------------------------------------------------ releasing
    def _stored(self, key: str, obj: Any, previous: list, on_stored: OnStored) -> None:
        """``obj`` now stands under ``key``: report it, and release the versions it replaced."""
        on_stored(key, obj)
        self._release([p for p in previous if p is not obj])

    def _release(self, objects: list) -> None:
        for obj in objects:
            s3_moto.dispose(obj)
        self._count_released(len(objects))

    def _count_released(self, n: int) -> None:
        self._released += n
        if self._released >= _FORGET_EVERY:
            self._released = 0
            s3_moto.forget_released(self.account_id)

    def reset(self) -> None:
        """Delete every object and upload (and their files), and let moto's trackers forget them."""
        with self.lock:
            s3_moto.empty_bucket(self.bucket)
            s3_moto.forget_released(self.account_id)
            self._released = 0


# ---------------------------------------------------------------------- helpers
def _bodiless(environ: dict, received: Received) -> dict:
    """The request as moto should see it: same headers, no body (it is on disk), checksum already verified."""
    env = dict(environ)
    env["wsgi.input"] = io.BytesIO(b"")
    env["CONTENT_LENGTH"] = "0"
    env["wsgi.input_terminated"] = True
    for name in ("HTTP_TRANSFER_ENCODING", "HTTP_X_AMZ_DECODED_CONTENT_LENGTH", "HTTP_CONTENT_MD5",
                 "HTTP_X_AMZ_TRAILER"):
        env.pop(name, None)
    env["HTTP_X_AMZ_CONTENT_SHA256"] = "UNSIGNED-PAYLOAD"
    encodings = [e for e in (env.pop("HTTP_CONTENT_ENCODING", "") or "").split(",")
                 if e.strip() and e.strip().lower() != "aws-chunked"]
    if encodings:
        env["HTTP_CONTENT_ENCODING"] = ",".join(encodings)
    if received.checksum is not None:  # moto records (and echoes) the value; it would hash the empty body
        name, value = received.checksum
        env["HTTP_" + name.upper().replace("-", "_")] = value
        env.setdefault("HTTP_X_AMZ_SDK_CHECKSUM_ALGORITHM", name.rsplit("-", 1)[1].upper())
    return env


def _copy_source(copy_source: str) -> tuple[str, str]:
    """(bucket, key) of an x-amz-copy-source (``bucket/key`` or ``/bucket/key``, URL-encoded, maybe ?versionId)."""
    source = unquote(copy_source.split("?", 1)[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    return bucket, key


def _copy_source_key(copy_source: str) -> str:
    return _copy_source(copy_source)[1]


def _get_header(headers: list[tuple[str, str]], name: str) -> str | None:
    for k, v in headers:
        if k.lower() == name:
            return v
    return None


def _with_etag(headers: list[tuple[str, str]], md5: str) -> list[tuple[str, str]]:
    """moto's headers with the ETag of the bytes received (moto saw an empty body)."""
    return [(k, v) for k, v in headers if k.lower() != "etag"] + [("ETag", f'"{md5}"')]


def _xml_headers(headers: list[tuple[str, str]], xml: bytes) -> list[tuple[str, str]]:
    drop = {"etag", "content-length", "content-type"}
    return [(k, v) for k, v in headers if k.lower() not in drop] + [("Content-Type", "application/xml"),
                                                                    ("Content-Length", str(len(xml)))]


def _stream(reader: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes of ``reader`` from ``start``, in chunks; the reader is closed at the end."""
    try:
        reader.seek(start)
        while length > 0:
            data = reader.read(min(length, CHUNK))
            if not data:
                break
            length -= len(data)
            yield data
    finally:
        reader.close()


def _byte_range(header: str, size: int) -> tuple[int, int]:
    """(first, last) of an x-amz-copy-source-range ``bytes=first-last`` inside an object of ``size`` bytes."""
    spec = header.strip()
    try:
        unit, _, rest = spec.partition("=")
        first_text, _, last_text = rest.partition("-")
        first, last = int(first_text), int(last_text)
        if unit != "bytes" or first < 0 or last < first:
            raise ValueError
    except ValueError:
        raise S3Error("InvalidArgument", f"The x-amz-copy-source-range value must be of the form bytes=first-last "
                      f"where first and last are the zero-based offsets of the first and last bytes to copy "
                      f"(got {header!r}).", 400, ArgumentName="x-amz-copy-source-range") from None
    if last >= size:
        raise S3Error("InvalidRange", f"Range specified is not valid for source object of size: {size}", 416,
                      RangeRequested=header)
    return first, last


def _read_small_body(environ: dict) -> bytes:
    try:
        length = int(environ.get("CONTENT_LENGTH") or -1)
    except ValueError:
        length = -1
    stream = environ["wsgi.input"]
    if length > _MAX_COMPLETE_BODY:
        raise S3Error("MalformedXML", f"The CompleteMultipartUpload list is {length} bytes; at most "
                      f"{_MAX_COMPLETE_BODY} are accepted.", 400)
    if length >= 0:
        return stream.read(length)
    data = stream.read(_MAX_COMPLETE_BODY + 1)
    if len(data) > _MAX_COMPLETE_BODY:
        raise S3Error("MalformedXML", f"The CompleteMultipartUpload list is larger than {_MAX_COMPLETE_BODY} "
                      "bytes.", 400)
    return data


def _parse_part_list(body: bytes) -> list[tuple[int, str]]:
    malformed = S3Error("MalformedXML", "The XML you provided was not well-formed or did not validate against our "
                        "published schema (a CompleteMultipartUpload with one Part, with PartNumber and ETag, per "
                        "part).", 400)
    try:
        root = ET.fromstring(body)
        listed = [(int(p.findtext("{*}PartNumber") or p.findtext("PartNumber")),
                   (p.findtext("{*}ETag") or p.findtext("ETag") or "").strip().strip('"'))
                  for p in root.iter() if p.tag.rsplit("}", 1)[-1] == "Part"]
    except (ET.ParseError, TypeError, ValueError):
        raise malformed from None
    if not listed:
        raise malformed
    return listed


def parse_query(environ: dict) -> dict:
    """The query string as a dict (first value of each name, as moto reads it)."""
    return dict(parse_qsl(environ.get("QUERY_STRING") or "", keep_blank_values=True))


def drain(body: Iterable[bytes]) -> list[bytes]:
    """moto's answer body as a list (moto's bodies for these requests are small XML or empty)."""
    return list(body)
