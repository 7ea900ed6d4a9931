"""S3's error answers: one exception class, rendered as S3's XML error document by the gateway."""

from __future__ import annotations

from typing import Any


class S3Error(Exception):
    """An S3 error answered as S3's XML error document."""

    def __init__(self, code: str, message: str, status: int = 403, **extra: Any):
        super().__init__(message)
        self.code, self.message, self.status, self.extra = code, message, status, extra
