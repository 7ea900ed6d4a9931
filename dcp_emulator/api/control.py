"""The emulator's own control plane under /_emulator/ (no authentication): health, info, reset, seed,
state export, snapshots, request journal and fault injection."""

from __future__ import annotations

import json
import time

from flask import Blueprint, Response, current_app, jsonify, request

from .. import urls
from ..bulk import IMPORT_BUCKET
from ..errors import InvalidField, NotFound, SeedError, UnsupportedMediaType
from ..resources import RESET, SNAPSHOT
from . import emulator, json_object, optional_json_object, route, same_origin_only

MAX_SEED_BYTES = 512 * 1024 * 1024  # seeds may be far larger than API bodies (10,000s of profiles)
YAML_TYPES = ("application/yaml", "application/x-yaml", "text/yaml", "text/x-yaml")

bp = Blueprint("control", __name__)
same_origin_only(bp)


@route(bp, "/health", methods=["GET"])
def health():
    """200 when every part is ready, else 503; the body says which part is not and why."""
    parts = emulator().readiness()
    ready = all(p["ready"] for p in parts.values())
    return jsonify({"status": "ok" if ready else "unavailable", "parts": parts}), 200 if ready else 503


@route(bp, "/info", methods=["GET"])
def info():
    """How to talk to this emulator: URLs, default account and tokens, version."""
    emu = emulator()
    base = request.host_url.rstrip("/")
    return jsonify({
        "version": emu.version,
        "base_url": base,
        "rest_api_url": f"{base}{urls.MANAGEMENT}",
        "profile_api_url": f"{base}{urls.PROFILES}",
        "s3_endpoint_url": base,  # S3 is served on the same port (see dcp_emulator/s3.py)
        "import_bucket": IMPORT_BUCKET,
        "default_account_id": emu.default_account_id,
        "tokens": emu.default_tokens(),
        "db": emu.config.db,
        "ui_url": f"{base}{urls.DASHBOARD}",  # the web dashboard
        "openapi_url": f"{base}{urls.CONTROL}/openapi.json",  # the OpenAPI 3.1 document of every API served here
        "api_docs_url": f"{base}{urls.API_DOCS}",  # that document, browsable (Swagger UI)
    })


@route(bp, "/openapi.json", methods=["GET"])
def openapi_document():
    """The OpenAPI 3.1 document of the vendor APIs and of this control plane."""
    from .. import openapi  # built on first request only: no start-up cost

    return jsonify(openapi.document(current_app))


def _credentials() -> dict:
    """What a client needs after the state changed under it: the default account and its tokens."""
    emu = emulator()
    return {"default_account_id": emu.default_account_id, "tokens": emu.default_tokens()}




@route(bp, "/reset", methods=["POST"])
def reset():
    """Back to the start-up state, {"to": "default"} (no start-up seed) or {"snapshot": name}; also clears
    the journal, faults, S3 and uploads."""
    # The query string (?to=, ?snapshot=) says the same as the body, for clients that send no body.
    body = RESET.parse_create({**optional_json_object(), **{k: v for k, v in request.args.items()
                                                            if k in RESET.by_name}})
    name, to = body["snapshot"], body["to"]
    if name is not None and to is not None:
        raise InvalidField("Give either snapshot or to, not both.", field="to")
    to = "snapshot" if name is not None else to or "startup"
    started = time.perf_counter()
    emulator().reset(name, default=to == "default")
    return jsonify({"status": "reset", "to": to, "snapshot": name,
                    "duration_ms": round((time.perf_counter() - started) * 1000, 3), **_credentials()})


def _seed_reset() -> str | None:
    """?reset= of POST /_emulator/seed: None (add to the current state), "startup" or "default"."""
    value = request.args.get("reset", "").lower()
    if value in ("", "0", "false", "no"):
        return None
    if value in ("1", "true", "yes", "startup"):
        return "startup"
    if value == "default":
        return "default"
    raise InvalidField(f"reset must be true (the start-up state), default (the default state, no start-up "
                       f"seed) or false, got {value!r}.", field="reset")


@route(bp, "/seed", methods=["POST"])
def seed():
    """Add a seed's state (YAML with Content-Type: application/yaml, or JSON); ?reset=true (or
    ?reset=default) resets first, all or nothing: a refused seed leaves the state as it was."""
    request.max_content_length = MAX_SEED_BYTES
    reset_to = _seed_reset()
    from ..seed import InvalidSeed, parse_seed  # PyYAML only when seeds are used (faster start-up)

    raw = request.get_data(cache=True)
    source = "request body"
    mimetype = request.mimetype or ""
    is_json = mimetype == "application/json" or mimetype.endswith("+json")
    if raw.strip() and not is_json and mimetype not in YAML_TYPES:
        raise UnsupportedMediaType(f"A seed is sent as YAML with Content-Type: application/yaml (or "
                                   f"{', '.join(YAML_TYPES[1:])}), or as JSON with Content-Type: application/json; "
                                   f"got {mimetype!r}.", field="Content-Type")
    try:
        if is_json:
            try:
                data = json.loads(raw.decode("utf-8-sig") or "{}")
            except (UnicodeDecodeError, ValueError, RecursionError) as e:
                raise SeedError(source, "", f"invalid JSON: {e}") from None
        else:
            data = parse_seed(raw, source)
        if reset_to is None:
            counts = emulator().apply_seed(data, source=source)
        else:
            counts = emulator().reset_and_seed(data, source=source, default=reset_to == "default")
    except SeedError as e:
        raise InvalidSeed(f"Invalid seed: {e}", field=e.path or None) from None
    return jsonify({"status": "seeded", "reset": reset_to, "created": counts, **_credentials()}), 201


@route(bp, "/credentials/<int:entity_id>", methods=["GET"])
def credentials(entity_id: int):
    """The AWS key pair of a table (datasource) or DCP service by id, whatever its account (for S3 clients)."""
    keys = emulator().store.credentials.aws_credentials(entity_id)
    if keys is None:
        raise NotFound(f"No table or DCP service with id {entity_id}.", field="id")
    return jsonify(keys)


@route(bp, "/state", methods=["GET"])
def state():
    """The whole state as a seed: YAML, or JSON with ?format=json or Accept: application/json."""
    fmt = request.args.get("format")
    if fmt is None:
        best = request.accept_mimetypes.best_match(["application/yaml", "application/json"], default=None)
        fmt = "json" if best == "application/json" and request.accept_mimetypes.quality("application/yaml") == 0 \
            else "yaml"
    if fmt not in ("yaml", "json"):
        raise InvalidField(f"format must be yaml or json, got {fmt!r}.", field="format")
    from ..seed import dump_yaml, export_state

    data = export_state(emulator().store)
    if fmt == "json":
        return jsonify(data)
    header = f"# dcp-emulator {emulator().version} state export; load it with --seed FILE or POST /_emulator/seed\n"
    return Response(header + dump_yaml(data), mimetype="application/yaml")


@route(bp, "/snapshots", methods=["GET"])
def list_snapshots():
    """Names of the saved snapshots."""
    return jsonify({"snapshots": emulator().snapshot_names()})


@route(bp, "/snapshots", methods=["POST"])
def save_snapshot():
    """Save the current state as {"name": ...}; POST /_emulator/reset {"snapshot": name} returns to it."""
    name = SNAPSHOT.parse_create(json_object())["name"]
    emulator().save_snapshot(name)
    return jsonify({"name": name}), 201


@route(bp, "/snapshots/<path:name>", methods=["DELETE"])
def delete_snapshot(name: str):
    """Forget a saved snapshot."""
    if not emulator().delete_snapshot(name.rstrip("/")):
        raise NotFound(f"No snapshot named {name!r}.")
    return "", 204


@route(bp, "/requests", methods=["GET"])
def list_requests():
    """Journaled API requests, oldest first; filters: method, path (regex), status (429 or 4xx), header, limit."""
    limit = request.args.get("limit")
    if limit is not None and not (limit.isascii() and limit.isdigit() and len(limit) <= 18):
        raise InvalidField(f"limit must be a non-negative integer, got {limit!r}.", field="limit")
    journal = emulator().journal
    entries = journal.entries(method=request.args.get("method"), path=request.args.get("path"),
                              status=request.args.get("status"), headers=request.args.getlist("header"),
                              limit=int(limit) if limit is not None else None)
    return jsonify({"requests": entries, "count": len(entries), "kept": len(journal), "capacity": journal.maxlen,
                    "dropped": journal.dropped})


@route(bp, "/requests", methods=["DELETE"])
def clear_requests():
    """Empty the journal."""
    emulator().journal.clear()
    return "", 204


@route(bp, "/faults", methods=["GET"])
def list_faults():
    """Fault rules with their remaining budget and how often each fired."""
    return jsonify({"faults": emulator().faults.list()})


@route(bp, "/faults", methods=["POST"])
def add_fault():
    """Add a rule: {method?, path?, status?, retry_after?, latency_ms?, times?, probability?, seed?}."""
    return jsonify(emulator().faults.add(json_object())), 201


@route(bp, "/faults", methods=["DELETE"])
def clear_faults():
    """Delete every fault rule."""
    emulator().faults.clear()
    return "", 204


@route(bp, "/faults/<int:rule_id>", methods=["DELETE"])
def delete_fault(rule_id: int):
    """Delete one fault rule."""
    if not emulator().faults.remove(rule_id):
        raise NotFound(f"No fault rule {rule_id}.")
    return "", 204
