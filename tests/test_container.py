"""The CI service container, built from the repository's Dockerfile and run with buildah (no daemon needed).

Slow (an image build): runs only with DCP_EMULATOR_CONTAINER_TEST=1 (``.ci/run`` sets it after installing
buildah and debootstrap) and is skipped when buildah cannot run here (not installed, not root). The base
image comes from ``DCP_EMULATOR_CONTAINER_BASE`` (default ``debootstrap``: a Debian base made without any
registry, built once and reused; see ``.ci/image.sh``). Prints the image size and start-to-healthy time.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import psutil
import pytest
import requests
from served import ROOT

TAG = "localhost/dcp-emulator:container-test"
BUILDAH = ["buildah", "--storage-driver", "vfs"]
UID = 10001  # the image's non-root user (Dockerfile)
DOCS = ROOT / "docs" / "ci.md"


def _buildah_works() -> str | None:
    """None when buildah can run here, else why not."""
    if not shutil.which("buildah"):
        return "buildah is not installed (apt-get install buildah debootstrap)"
    if os.geteuid() != 0:
        return "buildah with chroot isolation needs root here"
    probe = subprocess.run([*BUILDAH, "images"], capture_output=True, text=True, check=False)
    return None if probe.returncode == 0 else f"buildah cannot run: {probe.stderr.strip()[:200]}"


if os.environ.get("DCP_EMULATOR_CONTAINER_TEST") != "1":
    pytestmark = pytest.mark.skip(reason="container build test: set DCP_EMULATOR_CONTAINER_TEST=1 (.ci/run does)")
elif (why := _buildah_works()) is not None:
    pytestmark = pytest.mark.skip(reason=why)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def image() -> dict:
    """Build the image from ./Dockerfile (as `make image` does); returns its Docker-format config."""
    env = {**os.environ, "TAG": TAG, "FORCE_BUILDAH": "1",
           "BASE": os.environ.get("DCP_EMULATOR_CONTAINER_BASE", "debootstrap")}
    started = time.monotonic()
    build = subprocess.run([str(ROOT / ".ci" / "image.sh")], cwd=ROOT, env=env, capture_output=True, text=True,
                           check=False, timeout=3600)
    assert build.returncode == 0, build.stdout[-3000:] + build.stderr[-3000:]
    inspect = json.loads(subprocess.run([*BUILDAH, "inspect", "--type", "image", TAG], capture_output=True,
                                        text=True, check=True).stdout)
    size = subprocess.run([*BUILDAH, "images", "--format", "{{.Size}}", TAG], capture_output=True, text=True,
                          check=True).stdout.strip()
    _report(f"image {TAG}: {size} (base {env['BASE']}), built in {time.monotonic() - started:.0f} s")
    return inspect["Docker"]["config"]


_CONFIG: list[pytest.Config] = []


@pytest.fixture(scope="module", autouse=True)
def _remember_config(pytestconfig: pytest.Config):
    _CONFIG.append(pytestconfig)


def _report(line: str) -> None:
    """Print a measured figure past pytest's capture: these are the figures docs/ci.md quotes."""
    load = os.getloadavg()[0]
    with _CONFIG[-1].pluginmanager.getplugin("capturemanager").global_and_fixture_disabled():
        print(f"\n[container] {line} (load average {load:.1f} on {os.cpu_count()} cores)", flush=True)


class Container:
    """One container of the image run with `buildah run`, configured by environment variables only."""

    def __init__(self, config: dict, env: dict[str, str], mounts: dict[Path, str]):
        self.config = config
        self.name = f"dcp-ct-{uuid.uuid4().hex[:8]}"
        subprocess.run([*BUILDAH, "from", "--name", self.name, TAG], capture_output=True, check=True)
        for key, value in env.items():  # `docker run -e`: the container's environment, no arguments
            subprocess.run([*BUILDAH, "config", "--env", f"{key}={value}", self.name], check=True)
        self.port = int(env["DCP_EMULATOR_PORT"])
        self.url = f"http://127.0.0.1:{self.port}"
        self.mounts = [arg for host, inside in mounts.items() for arg in ("-v", f"{host}:{inside}")]
        self.proc: subprocess.Popen | None = None

    def run(self, *command: str, **kwargs) -> subprocess.CompletedProcess:
        """Run a command in the container (shares the host network, like every `buildah run`)."""
        return subprocess.run([*BUILDAH, "run", "--isolation", "chroot", *self.mounts, self.name, "--", *command],
                              capture_output=True, text=True, check=False, **kwargs)

    def healthcheck(self) -> subprocess.CompletedProcess:
        """The image's own HEALTHCHECK command."""
        test = self.config["Healthcheck"]["Test"]
        assert test[0] == "CMD", test
        return self.run(*test[1:], timeout=30)

    def start(self) -> float:
        """Start the image's ENTRYPOINT + CMD (no arguments of ours); returns seconds until /_emulator/health
        answered 200 (then also waits for the image's HEALTHCHECK command to pass)."""
        command = [*(self.config.get("Entrypoint") or []), *(self.config.get("Cmd") or [])]
        started = time.monotonic()
        self.proc = subprocess.Popen([*BUILDAH, "run", "--isolation", "chroot", *self.mounts, self.name, "--",
                                      *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        healthy = None
        while healthy is None:
            assert self.proc.poll() is None, f"the container exited: {self.proc.communicate()[0]}"
            try:
                # The first health check builds the S3 side (moto's import): seconds on a loaded machine.
                if requests.get(self.url + "/_emulator/health", timeout=10).status_code == 200:
                    healthy = time.monotonic() - started
            except (requests.ConnectionError, requests.Timeout):
                time.sleep(0.02)
            assert time.monotonic() - started < 60, "not healthy after 60 s"
        check = self.healthcheck()
        assert check.returncode == 0, check.stdout + check.stderr
        return healthy

    def server_process(self) -> psutil.Process:
        """The emulator process inside the container (`buildah run` does not forward signals to it)."""
        # buildah's own chroot helper carries the command in its arguments too: pick the Python process.
        found = [child for child in psutil.Process(self.proc.pid).children(recursive=True)
                 if child.name().startswith("python") and "dcp_emulator" in child.cmdline()]
        assert len(found) == 1, [(c.pid, c.name(), c.cmdline()) for c in
                                 psutil.Process(self.proc.pid).children(recursive=True)]
        return found[0]

    def stop(self) -> tuple[int, float, str]:
        """SIGTERM to the emulator process, as a container runtime sends it; (exit code, seconds, output)."""
        target = self.server_process()
        started = time.monotonic()
        target.send_signal(signal.SIGTERM)
        try:
            out, _ = self.proc.communicate(timeout=10)  # a runtime would SIGKILL after 10 s
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, _ = self.proc.communicate()
            return -9, 10.0, out
        return self.proc.returncode, time.monotonic() - started, out

    def remove(self) -> None:
        """Kill what is left and delete the working container."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        subprocess.run([*BUILDAH, "rm", self.name], capture_output=True, check=False)


@pytest.fixture
def volumes(tmp_path: Path) -> dict[Path, str]:
    """A /data volume the image's user can write, and a directory of seed files mounted at /seeds."""
    data, seeds = tmp_path / "data", tmp_path / "seeds"
    data.mkdir()
    seeds.mkdir()
    os.chown(data, UID, UID)
    (seeds / "shop.yaml").write_text("dcp_services:\n- {id: 901, name: Mounted seed shop}\n")
    return {data: "/data", seeds: "/seeds"}


def test_image_metadata(image):
    assert image["User"] == "dcp" and "8080/tcp" in image["ExposedPorts"]
    assert image["Healthcheck"]["Test"] == ["CMD", "python", "-m", "dcp_emulator", "health"]
    assert "DCP_EMULATOR_HOST=0.0.0.0" in image["Env"] and "DCP_EMULATOR_PORT=8080" in image["Env"]


def test_container_lifecycle_partner_suite_sigterm_and_restart(image, volumes, tmp_path):
    env = {"DCP_EMULATOR_PORT": str(_free_port()), "DCP_EMULATOR_SEED": "/seeds/shop.yaml",
           "DCP_EMULATOR_DB": "/data/dcp.db"}
    first = Container(image, env, volumes)
    try:
        assert first.run("id", "-u").stdout.strip() == str(UID)  # non-root
        assert first.run("python", "-m", "dcp_emulator", "health").returncode == 1  # nothing is running yet
        healthy_after = first.start()
        _report(f"start to healthy: {healthy_after:.2f} s (/_emulator/health answering 200 after `buildah run`)")
        headers = {"Token": "emulator-classic-token"}
        services = requests.get(first.url + "/experiment/v1/dcp_services", headers=headers, timeout=10).json()
        assert [s["name"] for s in services] == ["Mounted seed shop"]  # DCP_EMULATOR_SEED, a mounted file

        _slow_clients_do_not_delay_the_container(first)

        partner = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(tmp_path),
             str(ROOT / "examples" / "partner-ci" / "test_partner.py")],
            cwd=tmp_path, env={**os.environ, "DCP_EMULATOR_URL": first.url}, capture_output=True, text=True,
            check=False, timeout=600)
        assert partner.returncode == 0, partner.stdout[-4000:] + partner.stderr[-2000:]
        assert "5 passed" in partner.stdout, partner.stdout

        # State that must survive the restart: a table added after the partner suite's resets, to the
        # service of the start-up seed (a reset returns to the start-up state).
        requests.post(first.url + "/_emulator/reset", timeout=10).raise_for_status()
        kept = requests.post(first.url + "/experiment/v1/dcp_services/901/dcp_datasources", headers=headers,
                             json={"name": "Survives restarts", "keyfield_locator_type": "cookie",
                                   "keyfield_locator_name": "crm_id"}, timeout=10)
        assert kept.status_code == 201, kept.text
        rc, seconds, output = first.stop()
        _report(f"SIGTERM to exit: {seconds:.2f} s, exit code {rc}")
        assert rc == 0 and seconds < 3, output
        assert "dcp-emulator: stopping." in output and "Traceback" not in output, output
    finally:
        first.remove()

    second = Container(image, env, volumes)
    try:
        second.start()
        tables = requests.get(second.url + "/experiment/v1/dcp_services/901/dcp_datasources", headers=headers,
                              timeout=10).json()
        assert "Survives restarts" in [t["name"] for t in tables], tables
        rc, _, output = second.stop()
        assert rc == 0, output
    finally:
        second.remove()


def test_container_with_the_built_in_example_seed_and_no_volume(image, tmp_path):
    """The GitHub Actions and GitLab examples: DCP_EMULATOR_SEED=example, state in memory."""
    container = Container(image, {"DCP_EMULATOR_PORT": str(_free_port()), "DCP_EMULATOR_SEED": "example"}, {})
    try:
        container.start()
        services = requests.get(container.url + "/experiment/v1/dcp_services",
                                headers={"Token": "emulator-classic-token"}, timeout=10).json()
        assert [s["id"] for s in services] == [567]
        rc, _, output = container.stop()
        assert rc == 0, output
    finally:
        container.remove()


def _slow_clients_do_not_delay_the_container(container: Container) -> None:
    stalled = []
    try:
        for n in range(150):
            s = socket.create_connection(("127.0.0.1", container.port), timeout=10)
            s.sendall(b"" if n % 3 == 0 else b"POST /experiment/v1/dcp_services HTTP/1.1\r\nHost: x\r\nContent-Le")
            stalled.append(s)
        for _ in range(10):
            assert requests.get(container.url + "/_emulator/health", timeout=5).status_code == 200
        check = container.healthcheck()
        assert check.returncode == 0, check.stderr
    finally:
        for s in stalled:
            s.close()


def test_docs_examples_use_what_this_test_exercises(image):
    """docs/ci.md's pipelines cannot run here: their variables, port and health command are the ones above."""
    blocks = re.findall(r"```(?:yaml|sh)\n(.*?)```", DOCS.read_text(), re.DOTALL)
    pipelines = [b for b in blocks if "services:" in b or "docker run" in b]
    assert len(pipelines) == 3  # GitHub Actions, GitLab CI, docker/podman by hand
    text = "\n".join(pipelines)
    assert set(re.findall(r"DCP_EMULATOR_[A-Z_]+", text)) == {
        "DCP_EMULATOR_SEED", "DCP_EMULATOR_DB", "DCP_EMULATOR_URL"}  # URL is the partner side's variable
    assert " ".join(image["Healthcheck"]["Test"][1:]) == "python -m dcp_emulator health"
    assert text.count("python -m dcp_emulator health") == 2 and "8080:8080" in text and ":8080" in text
    assert "/data" in text and "/seeds/" in text and "DCP_EMULATOR_SEED: example" in text
