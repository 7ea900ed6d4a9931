"""Request bodies of S3 object writes, streamed from the socket to disk in fixed-size chunks.

``BufferDir.receive`` reads a PutObject or UploadPart body from ``wsgi.input`` chunk by chunk (a
known ``Content-Length``, or the server's de-chunked stream), undoes ``aws-chunked`` framing on the
fly, computes the MD5 (the object's ETag) and any ``x-amz-checksum-*`` the client sent (in a header
or a trailer) as the bytes pass, and writes them to a ``DiskBuffer``: no path holds a whole body in
memory. A mismatch is S3's ``BadDigest``; a full disk is S3's ``InternalError`` saying so, and the
partial buffer is removed.

A ``DiskBuffer`` is a file in the emulator's spool directory that moto reads as an object's bytes. It
keeps no file descriptor open (an emulator may hold many thousands of objects): each read opens the
file, and readers that stream it (GET, completion, copies) open their own. Closing it deletes the
file; the ingest holds its own hard link to an object's file, so the bytes stay on disk exactly as
long as the object or its pending upload needs them.
"""

from __future__ import annotations

import base64
import binascii
import errno
import hashlib
import io
import os
import queue
import shutil
import threading
import uuid
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO

from .s3_errors import S3Error

CHUNK = 1 << 20  # bytes copied at a time between files
RECEIVE_CHUNK = 256 << 10  # bytes read from the socket at a time: x ~4 in flight per request, x concurrent parts
BUFFER_PREFIX = "incoming-"  # the ingest's reset and restart leave these alone; we clean them ourselves
_MAX_LINE = 8192  # an aws-chunked size line or trailer line (a signed chunk's line is ~90 bytes)


class DiskBuffer:
    """An object's (or part's) bytes in a file; the file object moto uses as the object's buffer."""

    def __init__(self, path: str, size: int = 0):
        self.path = path
        self.size = size
        self._pos = 0
        self.closed = False

    # -- what moto calls on an object's buffer
    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        """Move the read position (moto reads from 0 when it wants the whole value)."""
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self.size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        """The read position."""
        return self._pos

    def read(self, n: int = -1) -> bytes:
        """Up to ``n`` bytes from the read position (all of the rest when ``n`` < 0)."""
        self._check_open()
        with open(self.path, "rb") as f:
            f.seek(self._pos)
            data = f.read() if n is None or n < 0 else f.read(n)
        self._pos += len(data)
        return data

    def write(self, data: bytes) -> int:
        """Objects' bytes are written once, by ``BufferDir``; moto writes only when it builds a value."""
        if data:
            raise io.UnsupportedOperation("an object's on-disk buffer is read-only")
        return 0

    def truncate(self, size: int | None = None) -> int:
        """A no-op for the empty value moto writes into a new object before we attach the real bytes."""
        return self.size

    def flush(self) -> None:
        """Nothing is buffered."""

    def close(self) -> None:
        """Delete the file (moto closes an object's buffer when the object is disposed of)."""
        if self.closed:
            return
        self.closed = True
        _remove(self.path)

    # -- ours
    def open_reader(self) -> BinaryIO:
        """A reader with its own file position; it keeps reading even if the object is deleted meanwhile."""
        self._check_open()
        return open(self.path, "rb")

    def link(self, path: str) -> None:
        """Give the bytes a second name (the ingest's spooled file): a hard link, or a copy if links fail."""
        self._check_open()
        try:
            os.link(self.path, path)
        except OSError:
            with open(self.path, "rb") as src, open(path, "wb") as dst:
                shutil.copyfileobj(src, dst, CHUNK)

    def _check_open(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on a deleted object buffer")

    def __repr__(self) -> str:
        return f"DiskBuffer({self.path!r}, size={self.size})"


@dataclass
class Received:
    """A body on disk: its buffer, MD5 (hex, the ETag) and the checksum the client sent, verified."""

    buffer: DiskBuffer
    md5: str
    checksum: tuple[str, str] | None = None  # (header name, base64 value)


# ---------------------------------------------------------------------- checksums
def _crc_hasher(update: Callable[[bytes, int], int], width: int) -> Callable[[], Any]:
    class _Crc:
        def __init__(self) -> None:
            self.value = 0

        def update(self, data: bytes) -> None:
            self.value = update(data, self.value)

        def digest(self) -> bytes:
            return self.value.to_bytes(width, "big")

    return _Crc


def _optional_crcs() -> dict[str, Callable[[], Any]]:
    """CRC32C and CRC64NVME when a C implementation is installed (awscrt, or the crc32c package)."""
    found: dict[str, Callable[[], Any]] = {}
    try:
        from awscrt import checksums  # type: ignore[import-not-found]

        found["crc32c"] = _crc_hasher(lambda d, v: checksums.crc32c(d, v), 4)
        found["crc64nvme"] = _crc_hasher(lambda d, v: checksums.crc64nvme(d, v), 8)
    except ImportError:
        try:
            import crc32c  # type: ignore[import-not-found]

            found["crc32c"] = _crc_hasher(lambda d, v: crc32c.crc32c(d, v), 4)
        except ImportError:
            pass
    return found


CHECKSUMS: dict[str, Callable[[], Any]] = {
    "crc32": _crc_hasher(zlib.crc32, 4),
    "sha1": lambda: hashlib.sha1(usedforsecurity=False),
    "sha256": hashlib.sha256,
    **_optional_crcs(),
}
KNOWN_CHECKSUMS = ("crc32", "crc32c", "crc64nvme", "sha1", "sha256")


# ---------------------------------------------------------------------- reading the request body
class _Source:
    """The request body as sent: at most ``remaining`` bytes of ``stream`` (None: until EOF), with lines."""

    def __init__(self, stream: BinaryIO, remaining: int | None):
        self.stream, self.remaining = stream, remaining
        self._pending = b""

    def read(self, n: int) -> bytes:
        if self._pending:
            data, self._pending = self._pending[:n], self._pending[n:]
            return data
        if self.remaining is not None:
            n = min(n, self.remaining)
            if n <= 0:
                return b""
        try:
            data = self.stream.read(n)
        except (OSError, ValueError) as e:  # the client's transfer framing is broken, or it went away
            raise _incomplete(f"the request body could not be read: {e}") from None
        if self.remaining is not None:
            self.remaining -= len(data)
        return data

    def readline(self) -> bytes:
        """One line including its LF, read in small blocks (the rest is kept for the next read)."""
        line = b""
        while True:
            cut = line.find(b"\n")
            if cut >= 0:
                self._pending = line[cut + 1:] + self._pending
                return line[: cut + 1]
            if len(line) > _MAX_LINE:
                raise _incomplete("an aws-chunked framing line is too long")
            block = self.read(256)
            if not block:
                return line
            line += block


def _incomplete(why: str) -> S3Error:
    return S3Error("IncompleteBody", f"The request body ended early or is malformed ({why}).", 400)


def _aws_chunks(src: _Source) -> Any:
    """Yield the data of an aws-chunked body piece by piece; returns the trailer headers (lower-case names)."""
    while True:
        line = src.readline()
        if not line.endswith(b"\n"):
            raise _incomplete("the body ended inside the aws-chunked framing")
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError:
            raise _incomplete(f"bad aws-chunked chunk size {size_text[:20]!r}") from None
        if size == 0:
            break
        while size:
            data = src.read(min(size, RECEIVE_CHUNK))
            if not data:
                raise _incomplete("the body ended inside an aws-chunked chunk")
            size -= len(data)
            yield data
        if src.readline().strip():
            raise _incomplete("an aws-chunked chunk is not followed by CRLF")
    trailers: dict[str, str] = {}
    while True:
        line = src.readline()
        if not line.strip():
            return trailers
        name, sep, value = line.decode("latin-1").partition(":")
        if not sep:
            raise _incomplete("an aws-chunked trailer line has no ':'")
        trailers[name.strip().lower()] = value.strip()


def _plain(src: _Source) -> Any:
    while data := src.read(RECEIVE_CHUNK):
        yield data
    return {}


def _header(environ: dict, name: str) -> str | None:
    return environ.get("HTTP_" + name.upper().replace("-", "_"))


def is_aws_chunked(environ: dict) -> bool:
    """Whether the body carries aws-chunked framing (by Content-Encoding or the streaming payload hash)."""
    encodings = [e.strip().lower() for e in (_header(environ, "content-encoding") or "").split(",")]
    return "aws-chunked" in encodings or (_header(environ, "x-amz-content-sha256") or "").startswith("STREAMING-")


def declared_size(environ: dict) -> int | None:
    """The object's size as the request says it (decoded size for aws-chunked), or None when it does not."""
    raw = _header(environ, "x-amz-decoded-content-length") if is_aws_chunked(environ) else \
        environ.get("CONTENT_LENGTH")
    try:
        return int(raw) if raw not in (None, "") else None
    except ValueError:
        return None


class BufferDir:
    """Where object and part bytes live: files in the emulator's spool directory."""

    def __init__(self, directory: str):
        self.directory = directory
        self._lock = threading.Lock()
        os.makedirs(directory, exist_ok=True)
        self.clean()

    def clean(self) -> None:
        """Remove buffers left by an earlier process (killed before it could): its objects are gone with it."""
        try:
            names = os.listdir(self.directory)
        except OSError:
            return
        for name in names:
            if name.startswith(BUFFER_PREFIX):
                _remove(os.path.join(self.directory, name))

    def new_path(self) -> str:
        """A fresh buffer file name."""
        return os.path.join(self.directory, f"{BUFFER_PREFIX}{uuid.uuid4().hex}")

    def free_bytes(self) -> int | None:
        """Free space on the buffers' disk (None when it cannot be told)."""
        try:
            return shutil.disk_usage(self.directory).free
        except OSError:
            return None

    def check_room(self, size: int) -> None:
        """Refuse (before reading a byte) a body the disk has no room for."""
        free = self.free_bytes()
        if free is not None and size > free:
            raise S3Error("EntityTooLarge", f"Your proposed upload ({size} bytes) exceeds the free disk space of "
                          f"the emulator's spool directory {self.directory} ({free} bytes): nothing was stored. "
                          "Free disk space (or start the emulator with --db on a larger disk).", 400,
                          ProposedSize=size, MaxSizeAllowed=free)

    def receive(self, environ: dict, limit: int) -> Received:
        """Stream a PutObject/UploadPart body to a new buffer, checking Content-MD5 and checksums."""
        framed = is_aws_chunked(environ)
        expected = declared_size(environ)
        if expected is not None:
            if expected > limit:
                raise too_large(expected, limit)
            self.check_room(expected)
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        # A known length bounds what we read (the server's stream may be the raw socket); without one the
        # server has de-chunked Transfer-Encoding: chunked and its stream ends with the body.
        src = _Source(environ["wsgi.input"], length if length >= 0 else None)
        content_md5 = _content_md5(_header(environ, "content-md5"))
        algorithm, sent = _checksum_request(environ)
        md5 = hashlib.md5(usedforsecurity=False)
        hasher = CHECKSUMS[algorithm]() if algorithm in CHECKSUMS else None
        path = self.new_path()
        size = 0
        pieces = _aws_chunks(src) if framed else _plain(src)
        hashers = [md5] if hasher is None else [md5, hasher]
        try:
            with open(path, "wb") as out:
                # Bodies over one chunk are hashed and written by a second thread while the next chunk is
                # read from the socket (both release the GIL): receiving costs little more than writing.
                sink = _Sink(out, hashers, threaded=expected is None or expected > RECEIVE_CHUNK)
                try:
                    while True:
                        try:
                            data = next(pieces)
                        except StopIteration as stop:
                            trailers = stop.value or {}
                            break
                        size += len(data)
                        if size > limit:
                            raise too_large(size, limit)
                        sink.put(data)
                finally:
                    sink.finish()
        except OSError as e:
            _remove(path)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise S3Error("InternalError", f"The emulator's disk is full: no space left in {self.directory} "
                              f"after {size} bytes of this body; nothing was stored. Free disk space and retry.",
                              500) from None
            raise
        except BaseException:
            _remove(path)
            raise
        try:
            if expected is not None and size != expected:
                raise _incomplete(f"{size} bytes received, {expected} announced")
            digest = md5.digest()
            if content_md5 is not None and content_md5 != digest:
                raise S3Error("BadDigest", "The Content-MD5 you specified did not match what we received: "
                              f"sent {base64.b64encode(content_md5).decode()}, computed "
                              f"{base64.b64encode(digest).decode()}.", 400,
                              ExpectedDigest=base64.b64encode(content_md5).decode(),
                              CalculatedDigest=base64.b64encode(digest).decode())
            checksum = None
            if algorithm is not None:
                name = f"x-amz-checksum-{algorithm}"
                value = sent if sent is not None else trailers.get(name)
                if value is None:
                    raise S3Error("InvalidRequest", f"The request names the checksum {name} (in x-amz-trailer or "
                                  "x-amz-sdk-checksum-algorithm) but does not send its value.", 400)
                if hasher is not None:
                    computed = base64.b64encode(hasher.digest()).decode()
                    if computed != value:
                        raise S3Error("BadDigest", f"The {algorithm.upper()} you specified did not match the "
                                      f"calculated checksum: sent {value}, computed {computed}.", 400)
                checksum = (name, value)
        except BaseException:
            _remove(path)
            raise
        return Received(DiskBuffer(path, size), md5.hexdigest(), checksum)

    def copy(self, source: BinaryIO, start: int, length: int) -> Received:
        """A new buffer holding ``length`` bytes of ``source`` from ``start`` (copies: CopyObject, UploadPartCopy)."""
        self.check_room(length)
        path = self.new_path()
        md5 = hashlib.md5(usedforsecurity=False)
        try:
            source.seek(start)
            with open(path, "wb") as out:
                left = length
                while left:
                    data = source.read(min(left, CHUNK))
                    if not data:
                        raise RuntimeError("the copy source is shorter than its recorded size")
                    left -= len(data)
                    md5.update(data)
                    out.write(data)
        except OSError as e:
            _remove(path)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise S3Error("InternalError", f"The emulator's disk is full: no space left in {self.directory}; "
                              "nothing was stored. Free disk space and retry.", 500) from None
            raise
        except BaseException:
            _remove(path)
            raise
        return Received(DiskBuffer(path, length), md5.hexdigest())

    def concatenate(self, readers: list[BinaryIO]) -> tuple[DiskBuffer, int]:
        """A new buffer holding the readers' bytes one after the other (a completed multipart upload)."""
        path = self.new_path()
        size = 0
        try:
            with open(path, "wb") as out:
                for reader in readers:
                    with reader:
                        size += _copy_all(reader, out)
        except OSError as e:
            _remove(path)
            if e.errno in (errno.ENOSPC, errno.EDQUOT):
                raise S3Error("InternalError", f"The emulator's disk is full: no space left in {self.directory} "
                              "to assemble the object; the upload stays open. Free disk space and retry.",
                              500) from None
            raise
        except BaseException:
            _remove(path)
            raise
        return DiskBuffer(path, size), size


class _Sink:
    """Hashes and writes the chunks of a body, in a second thread when ``threaded`` (at most 2 chunks queued)."""

    def __init__(self, out: BinaryIO, hashers: list, threaded: bool):
        self.out, self.hashers = out, hashers
        self.error: BaseException | None = None
        self._queue: queue.Queue | None = None
        if threaded:
            self._queue = queue.Queue(maxsize=2)
            self._thread = threading.Thread(target=self._run, name="dcp-emulator-s3-body", daemon=True)
            self._thread.start()

    def _consume(self, data: bytes) -> None:
        for h in self.hashers:
            h.update(data)
        self.out.write(data)

    def _run(self) -> None:
        while (data := self._queue.get()) is not None:
            if self.error is None:
                try:
                    self._consume(data)
                except BaseException as e:  # noqa: BLE001 - handed to the request thread by put() / finish()
                    self.error = e

    def put(self, data: bytes) -> None:
        """Hash and write ``data`` (now, or queued); raises the error of an earlier write."""
        if self._queue is None:
            self._consume(data)
            return
        if self.error is not None:
            raise self.error
        self._queue.put(data)

    def finish(self) -> None:
        """Wait until every chunk is written; raises the error of a write."""
        if self._queue is not None:
            self._queue.put(None)
            self._thread.join()
            self._queue = None
            if self.error is not None:
                raise self.error


def _copy_all(reader: BinaryIO, out: BinaryIO) -> int:
    """Copy a file to another, in the kernel where it can (os.copy_file_range), else in chunks."""
    total = 0
    copy_range = getattr(os, "copy_file_range", None)
    if copy_range is not None:
        try:
            out.flush()
            while n := copy_range(reader.fileno(), out.fileno(), 1 << 30):
                total += n
            out.seek(0, io.SEEK_END)
            return total
        except (OSError, io.UnsupportedOperation, AttributeError):
            if total:
                raise
    while data := reader.read(CHUNK):
        out.write(data)
        total += len(data)
    return total


def _content_md5(value: str | None) -> bytes | None:
    if value is None:
        return None
    try:
        digest = base64.b64decode(value.strip(), validate=True)
    except (binascii.Error, ValueError):
        digest = b""
    if len(digest) != 16:
        raise S3Error("InvalidDigest", f"The Content-MD5 you specified is not valid: {value[:40]!r} is not the "
                      "base64 encoding of a 16-byte MD5 digest.", 400)
    return digest


def _checksum_request(environ: dict) -> tuple[str | None, str | None]:
    """(algorithm, value sent in a header) of the x-amz-checksum-* the client sends, if any."""
    for algorithm in KNOWN_CHECKSUMS:
        value = _header(environ, f"x-amz-checksum-{algorithm}")
        if value is not None:
            return algorithm, value.strip()
    trailer = (_header(environ, "x-amz-trailer") or "").strip().lower()
    if trailer.startswith("x-amz-checksum-"):
        algorithm = trailer[len("x-amz-checksum-"):]
        if algorithm not in KNOWN_CHECKSUMS:
            raise S3Error("InvalidRequest", f"Unknown checksum trailer {trailer!r}: S3 knows "
                          f"{', '.join('x-amz-checksum-' + a for a in KNOWN_CHECKSUMS)}.", 400)
        return algorithm, None
    return None, None


def too_large(proposed: int, limit: int) -> S3Error:
    return S3Error("EntityTooLarge", f"Your proposed upload ({proposed} bytes) exceeds the maximum allowed object "
                   f"size of {limit} bytes.", 400, ProposedSize=proposed, MaxSizeAllowed=limit)


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError:  # e.g. still open elsewhere on Windows: the spool directory's cleaning removes it later
        pass
