"""The OpenAPI 3.1 document of the emulator, derived from the resource descriptions (placeholder until
``resources.py`` lands: only the document's frame)."""

from __future__ import annotations

import functools

from . import __version__


@functools.cache
def document() -> dict:
    """The OpenAPI 3.1 document of every API the emulator serves (built once per process)."""
    return {
        "openapi": "3.1.0",
        "info": {"title": "dcp-emulator", "version": __version__},
        "servers": [{"url": "/"}],
        "paths": {},
    }
