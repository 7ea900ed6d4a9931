"""pytest plugin (registered through the ``pytest11`` entry point): the ``dcp_emulator`` fixture.

One real emulator is served per test session (per xdist worker, each worker being a process) on a
free loopback port; before every test its state is reset — by default to the built-in default state
(account 1001 and its tokens, no services), or to that state plus a seed chosen with
``@pytest.mark.dcp_seed(...)`` or by overriding the ``dcp_emulator_seed`` fixture. With
``DCP_EMULATOR_URL`` set, the fixture uses that already-running emulator (a CI service container)
instead of starting one; the reset goes to the default state there too, whatever seed that
emulator was started with.

The fixture talks to the emulator only over HTTP (the /_emulator/ control plane), so it behaves the
same in both modes. A seeded state is saved as a named snapshot the first time it is needed; later
tests with the same seed restore that snapshot in one request (about a millisecond) instead of
parsing and applying the seed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from typing import Any

import pytest

# The plugin is an HTTP client of the control plane, like a partner's own code, and imports nothing of
# the emulator at load time (pytest loads it in every session, and pytester re-runs it in-process): it
# writes the control plane's paths as a client would.
ENV_URL = "DCP_EMULATOR_URL"
ENV_WAIT = "DCP_EMULATOR_WAIT"  # seconds to wait for an external emulator to become ready (default 30)
MARKER = "dcp_seed"

SeedSpec = str | os.PathLike | Mapping[str, Any] | None
UPLOADS_PAGE = 1000  # uploads per GET /_emulator/uploads page (the largest the emulator serves)

class DcpEmulatorError(RuntimeError):
    """A control-plane request failed; ``status`` and ``body`` are the emulator's answer."""

    def __init__(self, message: str, status: int, body: Any):
        super().__init__(message)
        self.status = status
        self.body = body


class DcpEmulator:
    """A handle on a running emulator: its URLs, default credentials and control plane.

    This is what the ``dcp_emulator`` fixture returns; it can also be built directly from a base
    URL (``DcpEmulator("http://127.0.0.1:8080")``) in scripts.
    """

    def __init__(self, url: str, timeout: float = 30.0, wait: float = 0.0):
        self.url = url.rstrip("/")
        self.timeout = timeout
        if wait:
            self.wait_until_ready(wait)
        info = self._call("GET", "/_emulator/info")
        self.info: dict = info
        self.rest_api_url: str = info.get("rest_api_url", f"{self.url}/experiment/v1")
        self.profile_api_url: str = info.get("profile_api_url", f"{self.url}/api")
        self.s3_endpoint_url: str = info.get("s3_endpoint_url", self.url)
        self.bucket: str = info.get("import_bucket", "optimizely-import")
        self._default_account_id: int = 1001
        self._tokens: dict = {}
        self._remember_credentials(info)

    def _remember_credentials(self, answer: Any) -> None:
        """Take the default account and tokens from an info, reset or seed answer (a seed may revoke
        or add tokens, so ``token`` must follow the state instead of the session's first look)."""
        if isinstance(answer, dict):
            if answer.get("default_account_id") is not None:
                self._default_account_id = answer["default_account_id"]
            if answer.get("tokens") is not None:
                self._tokens = answer["tokens"]

    # ------------------------------------------------------------------ HTTP plumbing
    def _call(self, verb: str, path: str, body: Any = None, *, raw: bytes | None = None,
              content_type: str | None = None, query: Mapping[str, Any] | None = None) -> Any:
        """One control-plane request; returns the parsed JSON (or text), raises DcpEmulatorError otherwise."""
        params = [(k, v) for k, vs in (query or {}).items() if vs is not None
                  for v in (vs if isinstance(vs, (list, tuple)) else [vs])]
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        data = raw
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode()
            content_type = "application/json"
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(url, data=data, method=verb, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                status, payload, ctype = resp.status, resp.read(), resp.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            status, payload, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
        except urllib.error.URLError as e:
            raise DcpEmulatorError(f"cannot reach the emulator at {self.url}: {e.reason}", 0, None) from None
        parsed: Any = payload.decode("utf-8", errors="replace")
        if "json" in ctype and payload:
            parsed = json.loads(payload)
        if status >= 300:
            message = parsed.get("message") if isinstance(parsed, dict) else parsed
            raise DcpEmulatorError(f"{verb} {path} answered {status}: {message}", status, parsed)
        return parsed

    def wait_until_ready(self, timeout: float = 30.0) -> dict:
        """Poll /_emulator/health until every part is ready (a service container may still be starting)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                return self._call("GET", "/_emulator/health")
            except DcpEmulatorError as e:
                if time.monotonic() >= deadline:
                    raise DcpEmulatorError(f"the emulator at {self.url} was not ready after {timeout:g} s: {e}",
                                           e.status, e.body) from None
            time.sleep(0.2)

    # ------------------------------------------------------------------ credentials
    @property
    def account_id(self) -> int:
        """The default account's id (1001)."""
        return self._default_account_id

    @property
    def token(self) -> str:
        """The default account's first unrevoked classic token, as of the last reset or seed
        (send it as ``Token: <token>``)."""
        return self._tokens.get("classic") or ""

    @property
    def oauth_token(self) -> str:
        """The default account's OAuth access token (send it as ``Authorization: Bearer <token>``)."""
        return self._tokens.get("oauth") or ""

    @property
    def headers(self) -> dict[str, str]:
        """Headers that authenticate with the classic token: ``requests.get(url, headers=emu.headers)``."""
        return {"Token": self.token}

    # ------------------------------------------------------------------ state
    def reset(self, snapshot: str | None = None, *, to: str = "default") -> None:
        """Back to the default state (``to="startup"``: the emulator's start-up state, with the seeds it
        was started with; or a saved snapshot); clears journal, faults, S3, uploads."""
        out = self._call("POST", "/_emulator/reset", {"snapshot": snapshot} if snapshot else {"to": to})
        self._remember_credentials(out)

    def seed(self, seed: SeedSpec, *, base: str | os.PathLike | None = None) -> dict:
        """Add a seed's state: a YAML/JSON file path or a mapping. Returns what was created."""
        if seed is None:
            return {}
        if isinstance(seed, Mapping):
            out = self._call("POST", "/_emulator/seed", dict(seed))
        else:
            path = resolve_seed_path(seed, base)
            out = self._call("POST", "/_emulator/seed", raw=path.read_bytes(), content_type="application/yaml")
        self._remember_credentials(out)
        return out.get("created", {})

    def use_seed(self, seed: SeedSpec, *, base: str | os.PathLike | None = None) -> None:
        """Reset to the default state plus ``seed``, fast: the seeded state is snapshotted on first use."""
        if seed is None:
            self.reset()
            return
        if isinstance(seed, Mapping):
            content = json.dumps(seed, sort_keys=True, default=str).encode()
            key = "pytest-seed:" + hashlib.sha256(content).hexdigest()[:32]
        else:
            path = resolve_seed_path(seed, base)
            content = path.read_bytes()
            key = "pytest-seed:" + hashlib.sha256(content).hexdigest()[:32]
        try:
            self.reset(key)
            return
        except DcpEmulatorError as e:
            if e.status != 404:
                raise
        # The default state, not the start-up one: an external emulator may have been started with a
        # seed, and this seed goes on top of the default state. One request, all or nothing.
        reset = {"reset": "default"}
        if isinstance(seed, Mapping):
            out = self._call("POST", "/_emulator/seed", dict(seed), query=reset)
        else:
            out = self._call("POST", "/_emulator/seed", raw=content, content_type="application/yaml", query=reset)
        self._remember_credentials(out)
        self._call("POST", "/_emulator/snapshots", {"name": key})

    def state(self) -> dict:
        """The whole state as a seed mapping (GET /_emulator/state?format=json)."""
        return self._call("GET", "/_emulator/state", query={"format": "json"})

    # ------------------------------------------------------------------ S3 bulk upload
    def credentials(self, entity_id: int) -> tuple[str, str]:
        """(aws_access_key, aws_secret_key) of a table (datasource) id, or of a DCP service id, any account."""
        try:
            # One indexed lookup, not a state export: that would cost ~60 ms with 10,000 profiles.
            keys = self._call("GET", f"/_emulator/credentials/{int(entity_id)}")
        except DcpEmulatorError as e:
            if e.status == 404:
                raise LookupError(f"no table or DCP service with id {entity_id} in the emulator") from None
            raise
        return keys["aws_access_key"], keys["aws_secret_key"]

    def s3_client(self, datasource_id: int):
        """A boto3 S3 client signed with that table's keys (or a service's), pointed at the emulator."""
        import boto3
        from botocore.config import Config as BotoConfig

        access, secret = self.credentials(datasource_id)
        return boto3.client("s3", endpoint_url=self.s3_endpoint_url, aws_access_key_id=access,
                            aws_secret_access_key=secret, region_name="us-east-1",
                            config=BotoConfig(s3={"addressing_style": "path"}, retries={"max_attempts": 1}))

    def uploads(self, datasource_id: int | None = None) -> list[dict]:
        """The Upload History (oldest first), optionally of one table: every page of GET /_emulator/uploads."""
        out: list[dict] = []
        while True:
            query = {"datasource_id": datasource_id, "limit": UPLOADS_PAGE, "after": out[-1]["id"] if out else None}
            page = self._call("GET", "/_emulator/uploads", query=query)
            out.extend(page)
            if len(page) < UPLOADS_PAGE:
                return out

    def wait_for_uploads(self, timeout: float = 30.0, after: int | None = None) -> list[dict]:
        """Block until no upload is pending or processing; returns the uploads finished since the previous
        wait (or with an id above ``after``; ``uploads()`` has the whole history). TimeoutError if not."""
        try:
            body: dict[str, Any] = {"timeout": timeout}
            if after is not None:
                body["after"] = after
            out = self._call("POST", "/_emulator/uploads/wait", body)
        except DcpEmulatorError as e:
            if e.status == 504:
                raise TimeoutError(str(e)) from None
            raise
        return out["uploads"]

    # ------------------------------------------------------------------ journal and faults
    def requests(self, method: str | None = None, path: str | None = None, status: int | str | None = None,
                 header: str | list[str] | None = None, limit: int | None = None) -> list[dict]:
        """Journaled API requests, oldest first, filtered like GET /_emulator/requests."""
        out = self._call("GET", "/_emulator/requests", query={"method": method, "path": path, "status": status,
                                                               "header": header, "limit": limit})
        return out["requests"]

    def clear_requests(self) -> None:
        """Empty the request journal."""
        self._call("DELETE", "/_emulator/requests")

    def fault(self, method: str | None = None, path: str | None = None, status: int | None = None,
              times: int | None = None, probability: float | None = None, latency_ms: int | None = None,
              retry_after: int | None = None, seed: int | None = None) -> dict:
        """Add a fault rule (path is a regular expression); returns it with its id."""
        rule = {"method": method, "path": path, "status": status, "times": times, "probability": probability,
                "latency_ms": latency_ms, "retry_after": retry_after, "seed": seed}
        return self._call("POST", "/_emulator/faults", {k: v for k, v in rule.items() if v is not None})

    def faults(self) -> list[dict]:
        """The fault rules with their remaining budgets."""
        return self._call("GET", "/_emulator/faults")["faults"]

    def clear_faults(self) -> None:
        """Delete every fault rule."""
        self._call("DELETE", "/_emulator/faults")

    # ------------------------------------------------------------------ clock
    def clock(self) -> dict:
        """The emulator's time: {"now", "offset_seconds", "real_time"}."""
        return self._call("GET", "/_emulator/clock")

    def advance_clock(self, seconds: float) -> dict:
        """Move the emulator's clock by ``seconds`` (tokens, codes and presigned URLs expire; timestamps
        move); every test starts on real time again."""
        return self._call("POST", "/_emulator/clock", {"advance": seconds})

    def set_clock(self, now: str) -> dict:
        """Set the emulator's clock to a UTC timestamp such as ``"2030-01-01T00:00:00Z"`` (it keeps running)."""
        return self._call("POST", "/_emulator/clock", {"now": now})

    # ------------------------------------------------------------------ OAuth 2.0
    @property
    def authorize_url(self) -> str:
        """The OAuth authorization endpoint (the vendor's https://app.optimizely.com/oauth2/authorize)."""
        return f"{self.url}/oauth2/authorize"

    @property
    def token_url(self) -> str:
        """The OAuth token endpoint (the vendor's https://app.optimizely.com/oauth2/token)."""
        return f"{self.url}/oauth2/token"

    def oauth_app(self, name: str = "Partner app", redirect_uris: list[str] | tuple[str, ...] | str =
                  ("https://partner.example/oauth/callback",), client_type: str = "confidential",
                  client_id: str | None = None, client_secret: str | None = None,
                  account_id: int | None = None) -> dict:
        """Register an OAuth application; returns it with its client_id and (confidential) client_secret."""
        fields = {"name": name, "redirect_uris": [redirect_uris] if isinstance(redirect_uris, str)
                  else list(redirect_uris), "client_type": client_type, "client_id": client_id,
                  "client_secret": client_secret, "account_id": account_id}
        return self._call("POST", "/_emulator/oauth/apps", {k: v for k, v in fields.items() if v is not None})

    def authorize(self, app: Mapping[str, Any] | str, account: int | None = None, accept: bool = True, *,
                  response_type: str = "code", redirect_uri: str | None = None,
                  state: str | None = None) -> Any:
        """Run the user's part of the flow without a browser: open the authorization URL, then accept (or
        deny) for ``account`` (default: the default account). Returns the code for an accepted code
        grant, else the parameters the redirect carries (the implicit grant's fragment, or the error)."""
        client_id = app if isinstance(app, str) else app["client_id"]
        if redirect_uri is None:
            uris = ([] if isinstance(app, str) else app.get("redirect_uris")) or \
                self._call("GET", f"/_emulator/oauth/apps/{urllib.parse.quote(client_id, safe='')}")["redirect_uris"]
            redirect_uri = uris[0]
        query = {"client_id": client_id, "redirect_uri": redirect_uri, "response_type": response_type,
                 "scopes": "all", "state": state}
        url = self.authorize_url + "?" + urllib.parse.urlencode({k: v for k, v in query.items() if v is not None})
        opener = urllib.request.build_opener(_NoRedirect)  # an error redirect points at the partner's server
        try:
            with opener.open(url, timeout=self.timeout) as resp:
                authorization = resp.headers.get("X-Dcp-Emulator-Authorization")
        except urllib.error.HTTPError as e:
            where = e.headers.get("Location") or e.read().decode("utf-8", errors="replace")
            raise DcpEmulatorError(f"GET /oauth2/authorize answered {e.code}: {where}", e.code, where) from None
        outcome = self.decide_authorization(authorization, account, accept)
        if accept and response_type == "code":
            return outcome["params"]["code"]
        return outcome["params"]

    def pending_authorizations(self) -> list[dict]:
        """Authorization requests waiting on the consent page (e.g. opened by the code under test)."""
        return self._call("GET", "/_emulator/oauth/authorizations")["authorizations"]

    def decide_authorization(self, authorization_id: str, account: int | None = None, accept: bool = True) -> dict:
        """Accept or deny a pending authorization for ``account``: {"redirect_to", "params", ...}."""
        body: dict[str, Any] = {"accept": accept}
        if account is not None:
            body["account_id"] = account
        return self._call("POST", f"/_emulator/oauth/authorizations/{urllib.parse.quote(authorization_id, safe='')}",
                          body)

    def revoke_oauth_app(self, app: Mapping[str, Any] | str, account: int | None = None) -> dict:
        """What the user does in "API Access" settings: the app's tokens for ``account`` stop working (403)."""
        client_id = app if isinstance(app, str) else app["client_id"]
        body = {"account_id": account} if account is not None else {}
        return self._call("POST", f"/_emulator/oauth/apps/{urllib.parse.quote(client_id, safe='')}/revoke", body)


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """Hand a redirect back as an HTTPError instead of following it."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def resolve_seed_path(seed: str | os.PathLike, base: str | os.PathLike | None = None) -> pathlib.Path:
    """A seed file: absolute, or relative to ``base`` (the test's directory), then the working directory;
    else a built-in seed by name (``"example"``)."""
    from .seeds import resolve_seed

    return resolve_seed(seed, base)


# ---------------------------------------------------------------------- pytest hooks and fixtures
def pytest_configure(config: pytest.Config) -> None:
    """Register the marker so ``--strict-markers`` accepts it; refuse xdist workers sharing one emulator."""
    config.addinivalue_line(
        "markers", f"{MARKER}(seed): reset the dcp_emulator fixture to this seed (a YAML file path, relative to "
                   "the test file or the working directory, or a built-in seed name such as \"example\", or a "
                   "mapping) before each test")
    urls = external_urls()
    workers = _xdist_workers(config)
    if urls and workers > len(urls):
        # Every test resets the emulator it uses: workers sharing one would wipe each other's state at
        # random moments. Refuse before any test runs rather than fail at random.
        raise pytest.UsageError(
            f"dcp_emulator: {ENV_URL} names {len(urls)} emulator(s) but pytest-xdist runs {workers} workers, and "
            "each test resets the emulator it uses, so workers sharing one would reset each other's state "
            f"mid-test. Give one emulator per worker ({ENV_URL}=http://host:8080,http://host:8081,...), unset "
            f"{ENV_URL} to let each worker start its own, or run without -n.")


def external_urls() -> list[str]:
    """The emulators named by $DCP_EMULATOR_URL (comma-separated: one per pytest-xdist worker)."""
    return [u.strip().rstrip("/") for u in os.environ.get(ENV_URL, "").split(",") if u.strip()]


def _xdist_workers(config: pytest.Config) -> int:
    """How many pytest-xdist workers this (controller) session starts; 0 without xdist or inside a worker."""
    if hasattr(config, "workerinput"):
        return 0
    workers = getattr(config.option, "numprocesses", None)
    if isinstance(workers, str):  # "auto"/"logical" not resolved yet: as many as CPUs
        workers = os.cpu_count() or 2
    return int(workers or 0) or len(getattr(config.option, "tx", None) or [])


@pytest.fixture(scope="session")
def dcp_emulator_url():
    """Base URL of the session's emulator: $DCP_EMULATOR_URL (this xdist worker's, when it names several),
    else one served in this process."""
    urls = external_urls()
    if urls:
        worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
        index = int(worker[2:]) if worker[2:].isdecimal() else 0
        yield urls[index % len(urls)]
        return
    from .config import Config
    from .server import EmulatorServer

    server = EmulatorServer(Config(host="127.0.0.1", port=0, log_requests=False)).start()
    try:
        yield server.url
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
def _dcp_emulator_handle(dcp_emulator_url: str) -> DcpEmulator:
    external = bool(external_urls())
    wait = float(os.environ.get(ENV_WAIT) or 30) if external else 0.0
    try:
        return DcpEmulator(dcp_emulator_url, wait=wait)
    except DcpEmulatorError as e:
        pytest.fail(f"dcp_emulator: {e}", pytrace=False)


@pytest.fixture
def dcp_emulator_seed() -> SeedSpec:
    """The seed every test of this scope starts from (None: the default state). Override it, or use the marker."""
    return None


@pytest.fixture
def dcp_emulator(request: pytest.FixtureRequest, _dcp_emulator_handle: DcpEmulator,
                 dcp_emulator_seed: SeedSpec) -> DcpEmulator:
    """The session's emulator, reset for this test (to the marked or fixture-chosen seed)."""
    marker = request.node.get_closest_marker(MARKER)
    seed = dcp_emulator_seed
    if marker is not None:
        if len(marker.args) != 1 or marker.kwargs:
            raise pytest.UsageError(f"@pytest.mark.{MARKER} takes exactly one argument: a seed path or mapping")
        seed = marker.args[0]
    base = pathlib.Path(str(request.path)).parent
    try:
        _dcp_emulator_handle.use_seed(seed, base=base)
    except FileNotFoundError as e:
        pytest.fail(f"dcp_emulator: {e}", pytrace=False)
    except DcpEmulatorError as e:
        pytest.fail(f"dcp_emulator: could not prepare the emulator: {e}", pytrace=False)
    return _dcp_emulator_handle
