"""The emulator's own control plane under /_emulator/ (no authentication): health, info, ..."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from . import emulator, route

bp = Blueprint("control", __name__)


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
        "rest_api_url": f"{base}/experiment/v1",
        "profile_api_url": f"{base}/api",
        "s3_endpoint_url": base,  # S3 is served on the same port (see dcp_emulator/s3.py)
        "import_bucket": "optimizely-import",
        "default_account_id": emu.default_account_id,
        "tokens": emu.default_tokens(),
        "db": emu.config.db,
    })
