"""``python -m dcp_emulator serve``: options, environment variables, banner, signals, start-up errors."""

from __future__ import annotations

import dataclasses
import signal
import socket
import subprocess
import sys

import pytest
import requests
from served import ROOT, ServedEmulator

from dcp_emulator import cli
from dcp_emulator.app import DEFAULT_TOKENS
from dcp_emulator.config import ENV_PREFIX, Config

H = {"Token": DEFAULT_TOKENS["classic"]}

# Config fields whose option is not simply --<field-name>.
OPTION_OF = {"log_requests": "--quiet"}


def _run(*args: str, env: dict[str, str] | None = None, timeout: float = 20) -> subprocess.CompletedProcess:
    import os
    return subprocess.run([sys.executable, "-m", "dcp_emulator", *args], cwd=ROOT, capture_output=True, text=True, check=False,
                          timeout=timeout, env={**os.environ, **(env or {})})


def test_help_documents_every_option_and_its_environment_variable():
    result = _run("serve", "--help")
    assert result.returncode == 0
    text = " ".join(result.stdout.split())  # argparse wraps lines
    for f in dataclasses.fields(Config):
        option = OPTION_OF.get(f.name, "--" + f.name.replace("_", "-"))
        assert option in text, f"{option} missing from --help"
        assert ENV_PREFIX + f.name.upper() in text, f"{ENV_PREFIX}{f.name.upper()} missing from --help"
    top = _run("--help")
    assert top.returncode == 0 and "serve" in top.stdout


def test_every_option_reaches_the_config(monkeypatch):
    seen: list[Config] = []
    monkeypatch.setattr(cli, "serve", lambda config: seen.append(config) or 0)
    for f in dataclasses.fields(Config):
        monkeypatch.delenv(ENV_PREFIX + f.name.upper(), raising=False)
    assert cli.main(["serve", "--host", "0.0.0.0", "--port", "0", "--db", "x.db", "--seed", "a.yaml", "--seed",
                     "b.yaml", "--max-services-per-account", "3", "--max-body-bytes", "10", "--max-object-bytes", "11",
                     "--journal-size", "12", "--upload-error-limit", "13", "--ingest-batch-rows", "14",
                     "--quiet"]) == 0
    c = seen[0]
    assert (c.host, c.port, c.db, c.seed, c.max_services_per_account, c.max_body_bytes, c.max_object_bytes,
            c.journal_size, c.upload_error_limit, c.ingest_batch_rows, c.log_requests) == \
        ("0.0.0.0", 0, "x.db", ["a.yaml", "b.yaml"], 3, 10, 11, 12, 13, 14, False)


def test_environment_variables_fill_the_config_and_options_win(monkeypatch):
    seen: list[Config] = []
    monkeypatch.setattr(cli, "serve", lambda config: seen.append(config) or 0)
    monkeypatch.setenv("DCP_EMULATOR_PORT", "9999")
    monkeypatch.setenv("DCP_EMULATOR_MAX_SERVICES_PER_ACCOUNT", "4")
    monkeypatch.setenv("DCP_EMULATOR_SEED", "a.yaml,b.yaml")
    monkeypatch.setenv("DCP_EMULATOR_LOG_REQUESTS", "0")
    monkeypatch.setenv("DCP_EMULATOR_DB", "")  # empty means unset
    cli.main(["serve", "--port", "0"])
    c = seen[0]
    assert (c.port, c.max_services_per_account, c.seed, c.log_requests, c.db) == (0, 4, ["a.yaml", "b.yaml"], False,
                                                                                 None)


def test_config_from_env_parses_every_kind():
    c = Config.from_env({"DCP_EMULATOR_PORT": "81", "DCP_EMULATOR_LOG_REQUESTS": "yes",
                         "DCP_EMULATOR_HOST": "0.0.0.0"})
    assert (c.port, c.log_requests, c.host) == (81, True, "0.0.0.0")
    with pytest.raises(ValueError, match="DCP_EMULATOR_PORT must be an integer"):
        Config.from_env({"DCP_EMULATOR_PORT": "eighty"})


def test_port_0_banner_ctrl_c_exits_cleanly():
    emu = ServedEmulator().start()  # with request logging on: the drain keeps stderr flowing
    try:
        port = int(emu.url.rsplit(":", 1)[1])
        assert port > 0
        banner = "".join(emu.stdout)
        assert f"127.0.0.1:{port}" in banner and DEFAULT_TOKENS["classic"] in banner
        for part in ("/experiment/v1/", "/api/", "/_emulator/"):
            assert f"{emu.url}{part}" in banner
        info = requests.get(emu.url + "/_emulator/info", timeout=5).json()
        assert info["base_url"] == emu.url and info["tokens"]["classic"] == DEFAULT_TOKENS["classic"]
        assert info["rest_api_url"] == emu.url + "/experiment/v1" and info["profile_api_url"] == emu.url + "/api"
        assert requests.get(emu.url + "/experiment/v1/dcp_services", headers=H, timeout=5).json() == []
    finally:
        rc = emu.stop(signal.SIGINT)
    assert rc == 0, emu.output
    assert "Traceback" not in emu.output and "dcp-emulator: stopping." in emu.output


def test_environment_variables_alone_configure_the_served_process_and_sigterm_exits_cleanly():
    env = {"DCP_EMULATOR_PORT": "0", "DCP_EMULATOR_HOST": "127.0.0.1", "DCP_EMULATOR_MAX_SERVICES_PER_ACCOUNT": "2",
           "DCP_EMULATOR_LOG_REQUESTS": "0"}
    emu = ServedEmulator(env=env, port_arg=False).start()
    try:
        url = emu.url + "/experiment/v1/dcp_services"
        assert [requests.post(url, json={"name": n}, headers=H, timeout=5).status_code for n in "abc"] == \
            [201, 201, 400]
        assert "GET /_emulator/health" not in "".join(emu.stderr)  # request logging is off
    finally:
        rc = emu.stop(signal.SIGTERM)
    assert rc == 0, emu.output
    assert "Traceback" not in emu.output and "dcp-emulator: stopping." in emu.output


@pytest.mark.parametrize(("args", "env", "rc", "message"), [
    (["--port", "70000"], {}, 2, "between 0 and 65535"),
    ([], {"DCP_EMULATOR_PORT": "eighty"}, 2, "DCP_EMULATOR_PORT must be an integer"),
    (["--port", "0", "--db", "/nonexistent-dir/state.db"], {}, 1, "cannot use database"),
    (["--port", "x"], {}, 2, "invalid int value"),
    # a batch of 0 rows would mark uploads succeeded with nothing applied
    (["--port", "0", "--ingest-batch-rows", "0"], {}, 2, "ingest-batch-rows (DCP_EMULATOR_INGEST_BATCH_ROWS) must be"),
    (["--port", "0"], {"DCP_EMULATOR_MAX_BODY_BYTES": "-1"}, 2, "max-body-bytes (DCP_EMULATOR_MAX_BODY_BYTES) must"),
    (["--port", "0", "--max-services-per-account", "0"], {}, 2, "at least 1, got 0"),
    (["--port", "0", "--journal-size", "-5"], {}, 2, "journal-size"),
])
def test_start_up_errors_are_one_readable_line(args, env, rc, message):
    result = _run("serve", *args, env=env)
    assert result.returncode == rc, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr


def test_a_port_in_use_is_our_own_one_line_error():
    # werkzeug's make_server printed its own text and called sys.exit(1): our handler was never reached.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = _run("serve", "--port", str(port))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"dcp-emulator: cannot listen on 127.0.0.1:{port}: Address already in use"], result.stderr


@pytest.mark.parametrize("value", ["maybe", "2", "ja"])
def test_a_bad_boolean_variable_is_refused_like_a_bad_integer(value):
    result = _run("serve", "--port", "0", env={"DCP_EMULATOR_LOG_REQUESTS": value})
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip() == (f"dcp-emulator: DCP_EMULATOR_LOG_REQUESTS must be a boolean "
                                     f"(1/true/yes/on or 0/false/no/off), got {value!r}")


def test_boolean_variables_accept_every_documented_spelling():
    for raw, expected in (("1", True), ("TRUE", True), (" yes ", True), ("on", True), ("0", False),
                          ("false", False), ("No", False), ("off", False)):
        assert Config.from_env({"DCP_EMULATOR_LOG_REQUESTS": raw}).log_requests is expected, raw


def test_console_script_and_version():
    import os
    import shutil

    from dcp_emulator import __version__
    script = shutil.which("dcp-emulator", path=os.path.dirname(sys.executable))
    assert script, "the dcp-emulator console script is not installed next to this Python"
    result = subprocess.run([script, "--version"], capture_output=True, text=True, timeout=20, check=False)
    assert result.returncode == 0 and result.stdout.strip() == f"dcp-emulator {__version__}"
    assert _run("--version").stdout.strip() == f"dcp-emulator {__version__}"


def test_banner_names_the_s3_endpoint_and_the_seeds_loaded():
    with ServedEmulator("--quiet", "--seed", "example") as emu:
        banner = "".join(emu.stdout)
        info = requests.get(emu.url + "/_emulator/info", timeout=5).json()
    assert f"S3 endpoint      {info['s3_endpoint_url']}" in banner
    assert "seeds            loaded example (accounts=1" in banner


def test_health_command_exit_codes_and_reasons():
    with ServedEmulator("--quiet") as emu:
        ok = _run("health", "--url", emu.url)
        assert ok.returncode == 0 and "healthy" in ok.stdout, ok.stderr
        port = emu.url.rsplit(":", 1)[1]
        for host in ("0.0.0.0", "127.0.0.1"):  # the container's HEALTHCHECK has no --url: serve's variables
            by_env = _run("health", env={"DCP_EMULATOR_PORT": port, "DCP_EMULATOR_HOST": host})
            assert by_env.returncode == 0, by_env.stderr
        not_emulator = _run("health", "--url", emu.url + "/_emulator/health")  # .../health/_emulator/health: 404
        assert not_emulator.returncode == 1
        assert not_emulator.stderr.strip().startswith("dcp-emulator: unhealthy: ") and "answered 404" in \
            not_emulator.stderr and len(not_emulator.stderr.strip().splitlines()) == 1
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        free = s.getsockname()[1]
    down = _run("health", "--url", f"http://127.0.0.1:{free}")
    assert down.returncode == 1
    assert down.stderr.strip() == (f"dcp-emulator: unhealthy: cannot reach http://127.0.0.1:{free}/_emulator/health: "
                                   "Connection refused")


def test_ctrl_c_works_even_when_the_parent_started_us_with_sigint_ignored():
    """A shell's '&' or some CI runners start children with SIGINT ignored; serve must still stop on it."""
    import os
    # "trap '' INT" makes the shell ignore SIGINT, and exec keeps that disposition for the emulator.
    command = f"trap '' INT; exec '{sys.executable}' -m dcp_emulator serve --port 0 --quiet"
    proc = subprocess.Popen(["bash", "-c", command], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in proc.stdout.readline()
        proc.send_signal(signal.SIGINT)
        rc = proc.wait(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    assert rc == 0 and "stopping." in out and "Traceback" not in err


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PID namespaces are Linux's")
def test_sigterm_stops_serve_running_as_pid_1():
    """As a container's first process the kernel applies no default action to SIGTERM: serve handles it."""
    import os
    import shutil
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) for a PID namespace")
    command = ["unshare", "--pid", "--fork", "--kill-child", sys.executable, "-c",
               ("import os, sys; assert os.getpid() == 1; from dcp_emulator.cli import main; "
                "sys.exit(main(['serve', '--port', '0', '--quiet']))")]
    proc = subprocess.Popen(command, cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert "listening on" in proc.stdout.readline()
        import psutil
        [emulator] = psutil.Process(proc.pid).children()  # unshare forks it: PID 1 in its namespace
        emulator.send_signal(signal.SIGTERM)
        rc = proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
        out, err = proc.communicate()
    assert rc == 0, err
    assert "stopping." in out and "Traceback" not in err
