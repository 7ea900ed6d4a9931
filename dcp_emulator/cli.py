"""The command line: ``python -m dcp_emulator serve`` (every option also from DCP_EMULATOR_* variables)."""

from __future__ import annotations

import argparse
import signal
import sys

from .config import ENV_PREFIX, Config


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (its help documents every option and its environment variable)."""
    parser = argparse.ArgumentParser(
        prog="python -m dcp_emulator",
        description="Local emulator of Optimizely's Dynamic Customer Profiles (DCP) APIs.",
    )
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
                       help=f"YAML seed applied at start-up and on reset, repeatable ({ENV_PREFIX}SEED, "
                            "comma-separated)")
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
    serve.add_argument("--ingest-batch-rows", type=int, default=None, metavar="N",
                       help=f"rows applied per transaction by the bulk ingest ({ENV_PREFIX}INGEST_BATCH_ROWS; "
                            f"default {d.ingest_batch_rows})")
    serve.add_argument("--oauth-strict-redirects", action="store_true", default=None,
                       help="refuse loopback http:// redirect URIs (localhost, 127.0.0.1) for the OAuth code grant, "
                            f"as the vendor does ({ENV_PREFIX}OAUTH_STRICT_REDIRECTS=1; default: accepted)")
    serve.add_argument("--quiet", action="store_true", default=None,
                       help=f"do not log each request ({ENV_PREFIX}LOG_REQUESTS=0)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``python -m dcp_emulator``; returns the process exit code."""
    args = build_parser().parse_args(argv)
    try:
        config = Config.from_env(
            host=args.host, port=args.port, db=args.db, seed=args.seed,
            max_services_per_account=args.max_services_per_account, max_body_bytes=args.max_body_bytes,
            max_object_bytes=args.max_object_bytes, journal_size=args.journal_size,
            upload_error_limit=args.upload_error_limit, ingest_batch_rows=args.ingest_batch_rows,
            log_requests=False if args.quiet else None, oauth_strict_redirects=args.oauth_strict_redirects,
        )
    except ValueError as e:
        print(f"dcp-emulator: {e}", file=sys.stderr)
        return 2
    return serve(config)


def serve(config: Config) -> int:
    """Serve until Ctrl-C or SIGTERM; errors at start-up are one readable line, not a traceback."""
    import sqlite3

    from .errors import SeedError
    from .server import EmulatorServer

    def _terminate(signum, frame):  # container runtimes stop with SIGTERM: treat it like Ctrl-C
        raise KeyboardInterrupt

    # Install both handlers before anything else, so a signal during start-up or right after the banner
    # still ends cleanly. SIGINT is set explicitly because a parent that started us in the background
    # (a shell's '&', some CI runners) leaves it ignored, and Ctrl-C would then do nothing.
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _terminate)
    server = None
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
        server.serve_forever()  # werkzeug's returns quietly on KeyboardInterrupt
    except KeyboardInterrupt:
        pass  # a signal before or after serve_forever proper
    finally:
        if server is not None:
            print("dcp-emulator: stopping.", flush=True)
            server.server.server_close()
            server.emulator.close()
    return 0
