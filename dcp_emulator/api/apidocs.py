"""The browsable API reference under /_emulator/docs: Swagger UI rendering the OpenAPI 3.1 document of
/_emulator/openapi.json, with "try it out" requests sent to this emulator (the document's server is "/").

Swagger UI is vendored in ``static/apidocs/`` (``make vendor-swagger-ui``) and served from the package, so
the page works offline and nothing is loaded from a CDN. The page's own script is a static file: the
Content-Security-Policy allows scripts from this origin only.
"""

from __future__ import annotations

import functools
import mimetypes
from pathlib import Path

from flask import Blueprint, Response, render_template, send_from_directory, url_for

from ..errors import NotFound
from . import emulator

ASSETS = Path(__file__).resolve().parent.parent / "static" / "apidocs"

bp = Blueprint("apidocs", __name__, template_folder="../templates")

# Swagger UI styles its widgets with style attributes (React), and its CSS embeds icons as data: URIs; it
# fetches the document and sends "try it out" requests to this origin (connect-src 'self'). No other site
# may frame the page or receive its requests.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
                               "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


@functools.cache
def asset_names() -> frozenset[str]:
    """The files the page may load: exactly those in the package's static/apidocs/ directory."""
    return frozenset(p.name for p in ASSETS.iterdir() if p.is_file())


@bp.route("/", methods=["GET"], strict_slashes=False)
def page() -> Response:
    """The Swagger UI page over /_emulator/openapi.json."""
    html = render_template("apidocs.html", openapi_url=url_for("control.openapi_document"),
                           version=emulator().version)
    resp = Response(html, mimetype="text/html")
    resp.headers.update(_PAGE_HEADERS)
    return resp


@bp.route("/assets/<path:name>", methods=["GET"])
def asset(name: str) -> Response:
    """One vendored file; any other name (a subdirectory, ``..``) is a 404 naming the files there are."""
    if name not in asset_names():
        raise NotFound(f"No API-docs asset named {name[:200]!r}; the assets are: {', '.join(sorted(asset_names()))}.",
                       field="name")
    # ETag and Last-Modified with Cache-Control: no-cache (as the dashboard's static files): a browser
    # revalidates the 1.7 MB bundle with a 304 and never runs a stale copy after an upgrade.
    resp = send_from_directory(ASSETS, name, mimetype=mimetypes.guess_type(name)[0] or "text/plain")
    resp.headers["X-Content-Type-Options"] = "nosniff"
    return resp
