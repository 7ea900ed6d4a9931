"""OAuth 2.0 on the emulator's base URL (the vendor's app.optimizely.com): /oauth2/authorize with its
consent page and /oauth2/token; and their control plane under /_emulator/: applications, pending
authorizations decided without a browser, revocation, and the clock."""

from __future__ import annotations

import urllib.parse

from flask import Blueprint, Response, jsonify, redirect, render_template, request

from .. import urls
from ..clock import parse_timestamp
from ..errors import InvalidField, NotFound
from ..oauth import (
    SCOPE,
    AuthorizeError,
    OAuthServer,
    account_choices,
    get_app,
    list_apps,
    register_app,
    revoke,
)
from ..resources import CLOCK_MOVE, DECISION, REVOCATION
from . import cross_site_refusal, emulator, json_object, optional_json_object, route, same_origin_only

bp = Blueprint("oauth", __name__)
control_bp = Blueprint("oauth_control", __name__)
same_origin_only(control_bp)  # part of the control plane: no cross-site app registration or clock moves

AUTHORIZATION_HEADER = "X-Dcp-Emulator-Authorization"  # the consent page's pending request id, for scripts
# The consent page loads nothing from anywhere, and no other site may frame it (clickjacking the Accept button).
# Referrer-Policy same-origin, not no-referrer: with no-referrer browsers post the form with "Origin: null",
# which the cross-site check must refuse.
_PAGE_HEADERS = {"Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'",
                 "X-Frame-Options": "DENY", "Cache-Control": "no-store", "Referrer-Policy": "same-origin"}


def server() -> OAuthServer:
    """This emulator's authorization server."""
    return emulator().oauth


def _params() -> dict[str, str]:
    """OAuth parameters from the query string (as the vendor documents them) and a form body (as OAuth
    clients send them); the body wins."""
    params = request.args.to_dict()
    params.update(request.form.to_dict())
    return params


def _page(template: str, status: int = 200, **context) -> Response:
    resp = Response(render_template(template, **context), status=status, mimetype="text/html")
    resp.headers.update(_PAGE_HEADERS)
    return resp


def _error_page(error: str, description: str, status: int = 400) -> Response:
    return _page("oauth_error.html", status, error=error, description=description)


# ---------------------------------------------------------------------- /oauth2/authorize
@route(bp, "/authorize", methods=["GET", "POST"])
def authorize():
    """GET (or POST of the parameters): the consent page; POST from the page: the user's decision."""
    params = _params()
    if request.method == "POST" and "authorization" in request.form:
        return _decision(params)
    try:
        pending = server().start_authorization(params)
    except AuthorizeError as e:
        if e.redirect is not None:
            return redirect(e.redirect, 302)
        return _error_page(e.error, e.description, e.status)
    resp = _page("consent.html", app=pending["app"], pending=pending, accounts=account_choices(emulator().store),
                 default_account_id=emulator().default_account_id, scope=SCOPE,
                 redirect_host=urllib.parse.urlsplit(pending["redirect_uri"]).netloc or pending["redirect_uri"])
    resp.headers[AUTHORIZATION_HEADER] = pending["id"]
    return resp


def _decision(params: dict[str, str]) -> Response:
    """The consent form's Accept or Deny: redirect the browser to the client with the outcome."""
    if cross_site_refusal(use_referer=True) is not None:  # the control plane's rule, for an HTML form
        return _error_page("access_denied", "Refused: the consent form was posted from another site. Only the "
                                            "emulator's own consent page can accept or deny an authorization.", 403)
    decision = params.get("decision")
    if decision not in ("accept", "deny"):
        return _error_page("invalid_request", f"decision must be accept or deny, got {decision!r}.")
    try:
        outcome = server().decide(params["authorization"], params.get("account_id"), decision == "accept")
    except (InvalidField, NotFound) as e:  # a bad account, or a request unknown, decided or expired
        return _error_page("invalid_request", e.message)
    return redirect(outcome["redirect_to"], 303)  # 303: the browser follows with a GET


# ---------------------------------------------------------------------- /oauth2/token
@route(bp, "/token", methods=["POST"])
def token():
    """The authorization_code and refresh_token grants; errors as RFC 6749 5.2 bodies."""
    auth = request.authorization
    basic = (auth.username or "", auth.password or "") if auth is not None and auth.type == "basic" else None
    resp = jsonify(server().token(_params(), basic))
    resp.headers["Cache-Control"] = "no-store"  # RFC 6749 5.1: token responses are never cached
    resp.headers["Pragma"] = "no-cache"
    return resp


@bp.after_request
def _no_store(response: Response) -> Response:
    response.headers.setdefault("Cache-Control", "no-store")  # error bodies too: nothing here is cacheable
    return response


# ---------------------------------------------------------------------- control plane
@route(control_bp, "/oauth/apps", methods=["GET"])
def apps():
    """Every registered OAuth application (secrets included: this is the developer's own emulator)."""
    return jsonify({"oauth_apps": list_apps(emulator().store)})


@route(control_bp, "/oauth/apps", methods=["POST"])
def add_app():
    """Register {name, redirect_uris, client_type?, client_id?, client_secret?, account_id?}."""
    emu = emulator()
    return jsonify(register_app(emu.store, json_object(), emu.default_account_id)), 201


@route(control_bp, "/oauth/apps/<client_id>", methods=["GET"])
def one_app(client_id: str):
    """One registered application."""
    return jsonify(get_app(emulator().store, client_id))


@route(control_bp, "/oauth/apps/<client_id>/revoke", methods=["POST"])
def revoke_app(client_id: str):
    """The user revokes the application's access to {account_id} (default: the default account)."""
    emu = emulator()
    account_id = REVOCATION.parse_create(optional_json_object())["account_id"]
    return jsonify(revoke(emu.store, client_id, emu.default_account_id if account_id is None else account_id))


@route(control_bp, "/oauth/authorizations", methods=["GET"])
def authorizations():
    """Authorization requests waiting on the consent page for a decision, oldest first."""
    return jsonify({"authorizations": server().pending_authorizations()})


@route(control_bp, "/oauth/authorizations/<request_id>", methods=["POST"])
def decide(request_id: str):
    """Decide a pending authorization without a browser: {"account_id"?, "accept": true|false}."""
    emu = emulator()
    body = DECISION.parse_create(optional_json_object())
    account_id = emu.default_account_id if body["account_id"] is None else body["account_id"]
    return jsonify(server().decide(request_id, account_id, body["accept"]))


@route(control_bp, "/clock", methods=["GET"])
def clock():
    """The emulator's time: {"now", "offset_seconds", "real_time"}."""
    return jsonify(emulator().clock.state())


@route(control_bp, "/clock", methods=["POST"])
def move_clock():
    """Move the clock: {"advance": seconds} (negative goes back) or {"now": "2030-01-01T00:00:00Z"}."""
    body = CLOCK_MOVE.parse_create(json_object())
    clk = emulator().clock
    if (body["advance"] is None) == (body["now"] is None):
        raise InvalidField("Send exactly one of advance (seconds to move the clock by) or now (the time to set).",
                           field="advance")
    if body["advance"] is not None:
        try:
            clk.advance(body["advance"])
        except ValueError as e:
            raise InvalidField(f"advance: {e}.", field="advance") from None
    else:
        try:
            moment = parse_timestamp(body["now"])
        except ValueError:
            raise InvalidField(f"now must be a UTC timestamp like 2030-01-01T00:00:00Z, got {body['now']!r}.",
                               field="now") from None
        try:
            clk.set(moment)
        except ValueError as e:
            raise InvalidField(f"now: {e}.", field="now") from None
    return jsonify(clk.state())


@route(control_bp, "/clock", methods=["DELETE"])
def real_clock():
    """Back to real time (a reset does this too)."""
    clk = emulator().clock
    clk.reset()
    return jsonify(clk.state())


def install(app, emu) -> None:
    """Give an emulator its authorization server and register the OAuth and clock endpoints."""
    emu.oauth = OAuthServer(emu.store, strict_redirects=emu.config.oauth_strict_redirects)
    app.register_blueprint(bp, url_prefix=urls.OAUTH)
    app.register_blueprint(control_bp, url_prefix=urls.CONTROL)
