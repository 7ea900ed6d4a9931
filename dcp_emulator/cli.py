"""The command line: ``dcp-emulator serve`` (every option also from DCP_EMULATOR_* variables) and
``dcp-emulator health`` (a container's health check that needs nothing but Python)."""

from __future__ import annotations

import argparse
import signal
import sys

from . import __version__
from .config import ENV_PREFIX, Config
from .urls import CONTROL


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its help documents every option and its environment variable)."""
    parser = argparse.ArgumentParser(
        prog="dcp-emulator",
        description="Local emulator of Optimizely's Dynamic Customer Profiles (DCP) APIs "
                    "(also run as: python -m dcp_emulator).",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    serve = sub.add_parser(
        "serve", help="serve the emulator on a port until interrupted",
        description="Serve the management API, the profile API, the S3 import endpoint and the /_emulator/ "
                    f"control plane from one port. Every option can also be set by the {ENV_PREFIX}<NAME> "
                    "environment variable shown with it; options win over variables.",
    )
    d = Config()
    serve.add_argument("--host", help=f"interface to bind ({ENV_PREFIX}HOST); 0.0.0.0 in a container",
                       default=None, metavar="HOST")
    serve.add_argument("--port", type=int, default=None,
                       help=f"port to listen on, 0 picks a free one ({ENV_PREFIX}PORT; default {d.port})")
    serve.add_argument("--db", default=None, metavar="PATH",
                       help=f"SQLite file that keeps state across restarts ({ENV_PREFIX}DB; default: in memory)")
    serve.add_argument("--seed", action="append", default=None, metavar="FILE",
                       help=f"YAML seed applied at start-up and on reset: a file, or a built-in seed's name "
                            f"('example'); repeatable ({ENV_PREFIX}SEED, comma-separated)")
    serve.add_argument("--max-services-per-account", type=int, default=None, metavar="N",
                       help=f"DCP services allowed per account ({ENV_PREFIX}MAX_SERVICES_PER_ACCOUNT; "
                            f"default {d.max_services_per_account})")
    serve.add_argument("--max-body-bytes", type=int, default=None, metavar="N",
                       help=f"largest JSON request body ({ENV_PREFIX}MAX_BODY_BYTES; default {d.max_body_bytes})")
    serve.add_argument("--max-object-bytes", type=int, default=None, metavar="N",
                       help=f"largest S3 object accepted ({ENV_PREFIX}MAX_OBJECT_BYTES; default {d.max_object_bytes})")
    serve.add_argument("--journal-size", type=int, default=None, metavar="N",
                       help=f"request journal entries kept ({ENV_PREFIX}JOURNAL_SIZE; default {d.journal_size})")
    serve.add_argument("--upload-error-limit", type=int, default=None, metavar="N",
                       help=f"row errors kept per bulk upload, the total is always counted "
                            f"({ENV_PREFIX}UPLOAD_ERROR_LIMIT; default {d.upload_error_limit})")
    serve.add_argument("--upload-history-size", type=int, default=None, metavar="N",
                       help=f"finished uploads kept in the Upload History, oldest dropped first "
                            f"({ENV_PREFIX}UPLOAD_HISTORY_SIZE; default {d.upload_history_size})")
    serve.add_argument("--snapshot-memory-bytes", type=int, default=None, metavar="N",
                       help=f"bytes of named snapshots kept in memory, the others go to temporary files "
                            f"({ENV_PREFIX}SNAPSHOT_MEMORY_BYTES; default {d.snapshot_memory_bytes})")
    serve.add_argument("--ingest-batch-rows", type=int, default=None, metavar="N",
                       help=f"rows applied per transaction by the bulk ingest ({ENV_PREFIX}INGEST_BATCH_ROWS; "
                            f"default {d.ingest_batch_rows})")
    serve.add_argument("--oauth-strict-redirects", action="store_true", default=None,
                       help="refuse loopback http:// redirect URIs (localhost, 127.0.0.1) for the OAuth code grant, "
                            f"as the vendor does ({ENV_PREFIX}OAUTH_STRICT_REDIRECTS=1; default: accepted)")
    serve.add_argument("--threads", type=int, default=None, metavar="N",
                       help=f"requests handled at once; slow clients never hold one ({ENV_PREFIX}THREADS; "
                            f"default {d.threads})")
    serve.add_argument("--idle-timeout", type=int, default=None, metavar="SECONDS",
                       help=f"close a connection idle or stalled this long ({ENV_PREFIX}IDLE_TIMEOUT; "
                            f"default {d.idle_timeout})")
    serve.add_argument("--validate-responses", action="store_true", default=None,
                       help="check every API response against the OpenAPI document and answer 500 naming the "
                            f"violation; for tests, needs jsonschema ({ENV_PREFIX}VALIDATE_RESPONSES=1)")
    serve.add_argument("--quiet", action="store_true", default=None,
                       help=f"do not log each request ({ENV_PREFIX}LOG_REQUESTS=0)")
    health = sub.add_parser(
        "health", help="exit 0 if a running emulator is healthy, 1 (with the reason) if not",
        description="Ask a running emulator's /_emulator/health; exit 0 on 200, else 1 with one line saying "
                    "why. Needs nothing but Python: it is the container image's HEALTHCHECK.",
    )
    health.add_argument("--url", default=None,
                        help=f"the emulator's base URL (default: from {ENV_PREFIX}HOST and {ENV_PREFIX}PORT, "
                             f"as serve reads them: http://127.0.0.1:{d.port} if unset)")
    health.add_argument("--timeout", type=float, default=2.0, metavar="SECONDS",
                        help="give up after this long (default 2)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m dcp_emulator``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    if args.command == "health":
        return health(args.url, args.timeout)
    try:
        config = Config.from_env(
            host=args.host, port=args.port, db=args.db, seed=args.seed,
            max_services_per_account=args.max_services_per_account, max_body_bytes=args.max_body_bytes,
            max_object_bytes=args.max_object_bytes, journal_size=args.journal_size,
            upload_error_limit=args.upload_error_limit, ingest_batch_rows=args.ingest_batch_rows,
            threads=args.threads, idle_timeout=args.idle_timeout, log_requests=False if args.quiet else None,
            oauth_strict_redirects=args.oauth_strict_redirects, upload_history_size=args.upload_history_size,
            snapshot_memory_bytes=args.snapshot_memory_bytes, validate_responses=args.validate_responses,
        )
    except ValueError as e:
        print(f"dcp-emulator: {e}", file=sys.stderr)
        return 2
    return serve(config)


def health(url: str | None, timeout: float = 2.0) -> int:
    """Exit code 0 when ``url``'s /_emulator/health answers 200; else 1, printing one line saying why."""
    import json
    import os
    import urllib.error
    import urllib.request

    if not url:  # where `serve` with the same DCP_EMULATOR_* variables listens (the container's case)
        host = os.environ.get(ENV_PREFIX + "HOST") or "127.0.0.1"
        host = "127.0.0.1" if host in ("0.0.0.0", "::") else f"[{host}]" if ":" in host else host
        url = f"http://{host}:{os.environ.get(ENV_PREFIX + 'PORT') or Config().port}"
    target = url.rstrip("/") + CONTROL + "/health"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as resp:
            status, body = resp.status, resp.read()
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read()
    except (urllib.error.URLError, OSError) as e:
        reason = getattr(e, "reason", None) or e
        print(f"dcp-emulator: unhealthy: cannot reach {target}: {getattr(reason, 'strerror', None) or reason}",
              file=sys.stderr)
        return 1
    if status == 200:
        print(f"dcp-emulator: healthy ({target})")
        return 0
    try:  # name the parts that are not ready, as /_emulator/health reports them
        parts = json.loads(body).get("parts") or {}
        why = "; ".join(f"{name}: {p.get('detail')}" for name, p in parts.items() if not p.get("ready"))
    except (ValueError, AttributeError):
        why = ""
    print(f"dcp-emulator: unhealthy: {target} answered {status}{': ' + why if why else ''}", file=sys.stderr)
    return 1


def _raise_fd_limit() -> None:
    """Use the hard file-descriptor limit: each open connection is one descriptor."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = hard if hard == resource.RLIM_INFINITY else min(hard, 65536)
    if soft != resource.RLIM_INFINITY and soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))


def serve(config: Config) -> int:
    """Serve until Ctrl-C or SIGTERM; errors at start-up are one readable line, not a traceback."""
    import sqlite3

    from .errors import SeedError
    from .server import EmulatorServer

    stopping = False

    def _terminate(signum, frame):
        # Container runtimes stop with SIGTERM, and as PID 1 its default action does not apply: handle it
        # like Ctrl-C. Once only: a second signal must not interrupt the clean-up of the first.
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    # Install both handlers before anything else, so a signal during start-up or right after the banner
    # still ends cleanly. SIGINT is set explicitly because a parent that started us in the background
    # (a shell's '&', some CI runners) leaves it ignored, and Ctrl-C would then do nothing.
    signal.signal(signal.SIGINT, _terminate)
    signal.signal(signal.SIGTERM, _terminate)
    server = None
    _raise_fd_limit()
    try:
        try:
            server = EmulatorServer(config)
        except SeedError as e:
            print(f"dcp-emulator: invalid seed: {e}", file=sys.stderr)
            return 2
        except sqlite3.Error as e:
            print(f"dcp-emulator: cannot use database {config.db}: {e}", file=sys.stderr)
            return 1
        except OSError as e:
            print(f"dcp-emulator: cannot listen on {config.host}:{config.port}: {e.strerror or e}", file=sys.stderr)
            return 1
        print(server.banner(), flush=True)
        server.serve_forever()
    except KeyboardInterrupt:
        pass  # SIGTERM or Ctrl-C, while starting or serving
    finally:
        if server is not None:
            print("dcp-emulator: stopping.", flush=True)
            server.shutdown()
    return 0
