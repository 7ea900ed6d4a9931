"""One error hierarchy for the whole emulator: each class carries its HTTP status and error code.

The store and the validators raise these; one Flask handler (see ``app.py``) renders every one of
them, and every werkzeug HTTP error, into the single JSON error envelope.
"""

from __future__ import annotations


class DcpError(Exception):
    """Base of every error the emulator reports to a client."""

    status: int = 400
    code: str = "bad_request"

    def __init__(self, message: str, field: str | None = None, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.message = message
        self.field = field
        self.headers = headers or {}

    def to_dict(self) -> dict:
        """The envelope body, without the request id (added by the handler)."""
        body: dict = {"status": self.status, "code": self.code, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        return body


class BadRequest(DcpError):
    """A request that cannot be understood as a whole."""

    status, code = 400, "bad_request"


class InvalidJson(DcpError):
    """The body is not valid JSON (or not the JSON object the endpoint expects)."""

    status, code = 400, "invalid_json"


class InvalidField(DcpError):
    """One named field is missing, of the wrong type or has a forbidden value."""

    status, code = 400, "invalid_field"


class LimitExceeded(DcpError):
    """A documented account limit (such as one DCP service per account) is reached."""

    status, code = 400, "limit_exceeded"


class Archived(DcpError):
    """The target is archived: it can be read but not written."""

    status, code = 400, "archived"


class Unauthorized(DcpError):
    """No credentials were sent in a header."""

    status, code = 401, "unauthorized"


class AuthenticationFailed(DcpError):
    """The token is unknown, revoked or expired."""

    status, code = 403, "authentication_failed"


class CrossOriginRefused(DcpError):
    """A state-changing control-plane request sent by a web page of another origin (CSRF)."""

    status, code = 403, "cross_origin_refused"


class PersonalTokenRefused(DcpError):
    """A personal (v2) token was sent; DCP accepts classic and OAuth tokens only."""

    status, code = 403, "personal_token_not_accepted"


class NotFound(DcpError):
    """The resource does not exist (or belongs to another account)."""

    status, code = 404, "not_found"


class MethodNotAllowed(DcpError):
    """The route exists but not with this HTTP method."""

    status, code = 405, "method_not_allowed"


class PayloadTooLarge(DcpError):
    """The request body is over the configured limit."""

    status, code = 413, "payload_too_large"


class UnsupportedMediaType(DcpError):
    """A body was sent with a content type other than JSON."""

    status, code = 415, "unsupported_media_type"


class TooManyRequests(DcpError):
    """Rate limited (only produced by fault injection)."""

    status, code = 429, "rate_limited"


class ServiceUnavailable(DcpError):
    """The service is unavailable (fault injection, or a part of the emulator not ready)."""

    status, code = 503, "service_unavailable"


class InjectedError(DcpError):
    """An arbitrary status produced by a fault-injection rule."""

    code = "injected_fault"

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message, headers=headers)
        self.status = status


class OAuthError(DcpError):
    """An RFC 6749 error of the token endpoint: ``{"error": code, "error_description": message}``."""

    def __init__(self, error: str, description: str, status: int = 400, headers: dict[str, str] | None = None):
        super().__init__(description, headers=headers)
        self.code, self.status = error, status

    def to_dict(self) -> dict:
        """The RFC 6749 body (the handler adds the request id)."""
        return {"error": self.code, "error_description": self.message}


class InternalError(DcpError):
    """An unexpected failure inside the emulator; always a bug worth reporting."""

    status, code = 500, "internal_error"


class SeedError(Exception):
    """A seed file or mapping is invalid; the message names the file, the path inside it and the problem."""

    def __init__(self, source: str, path: str, problem: str):
        self.source, self.path, self.problem = source, path, problem
        where = f"{source}: {path}" if path else source
        super().__init__(f"{where}: {problem}")


# Werkzeug HTTP status -> our class, so routing errors share the envelope.
HTTP_STATUS_CLASSES: dict[int, type[DcpError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: AuthenticationFailed,
    404: NotFound,
    405: MethodNotAllowed,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    429: TooManyRequests,
    503: ServiceUnavailable,
}
