"""Where each API family lives under the emulator's one base URL: the one place that knows the prefixes.

No Flask here: the S3 gateway (which must tell its requests from the APIs') and the journal use it too.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

MANAGEMENT = "/experiment/v1"  # the vendor's https://www.optimizelyapis.com/experiment/v1/
PROFILES = "/api"  # the vendor's https://vis.optimizely.com/api/
OAUTH = "/oauth2"  # the vendor's authorization server
CONTROL = "/_emulator"  # the emulator's own control plane
DASHBOARD = CONTROL + "/ui"
API_DOCS = CONTROL + "/docs"  # Swagger UI over the OpenAPI document

# First path segments that belong to the HTTP APIs (every other path may be an S3 request).
OWN_PREFIXES: tuple[str, ...] = tuple(sorted({"/" + p.split("/")[1] + "/" for p in
                                             (MANAGEMENT, PROFILES, OAUTH, CONTROL)}))


def is_control_path(path: str) -> bool:
    """Whether a request path is the emulator's own control plane (not a vendor API)."""
    return path == CONTROL or path.startswith(CONTROL + "/")


_STRIPPED = "dcp_emulator.stripped_slash"  # environ key: the client's path ended with the slash taken off


def client_path(path: str, environ: dict) -> str:
    """The path as the client sent it (with its trailing slash), for the journal and fault rules."""
    return path + "/" if environ.get(_STRIPPED) else path


def without_trailing_slash(app: Callable) -> Callable:
    """WSGI middleware: every API path answers with and without one trailing slash, never redirecting.

    Published clients POST to ``dcp_services/`` with the slash, and a 308 breaks them; normalising here,
    once, lets each route be one URL rule. S3 paths are left alone: there a trailing slash is part of the key.
    """

    def normalised(environ: dict, start_response: Callable) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or "/"
        if len(path) > 1 and path.endswith("/") and path.startswith(OWN_PREFIXES):
            environ["PATH_INFO"] = path[:-1]
            environ[_STRIPPED] = True
        return app(environ, start_response)

    return normalised
