"""Fixtures: the example portfolio, tiny portfolios written as real files, a real Prometheus."""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from policy_engine.loading import Portfolio, load_portfolio
from policy_engine.sources import DirectorySource
from tests.residency import promdata

REPO = Path(__file__).resolve().parents[2]
DATA = Path(__file__).resolve().parent / "data"
ACME = REPO / "examples" / "acme-portfolio"


@pytest.fixture
def data_dir() -> Path:
    return DATA


@pytest.fixture
def acme_root() -> Path:
    if not (ACME / "models").is_dir():
        pytest.skip("examples/acme-portfolio is not in this checkout")
    return ACME


@pytest.fixture
def acme(acme_root: Path) -> Portfolio:
    return load_portfolio(DirectorySource(acme_root))


PORTFOLIO_YAML = """\
schema_version: 1
kind: InferencePortfolio
portfolio: {id: tiny, name: Tiny, currency: USD, hours_per_month: 730}
rates: {gpu_hour: {nvidia-l4: 0.71}}
"""


def model_yaml(model: str, versions: list[tuple[str, str, list[tuple[str, str, str]]]]) -> str:
    """A model file: versions as (version, stage, [(deployment id, endpoint, region)])."""
    lines = [f"id: {model}", "owner_team: ml", "versions:"]
    for version, stage, deployments in versions:
        lines += [f'  - version: "{version}"', f"    stage: {stage}", "    deployments:"]
        for dep_id, endpoint, region in deployments:
            lines += [
                f"      - id: {dep_id}",
                f"        endpoint: {endpoint}",
                f"        region: {region}",
                "        replicas: {min: 1, max: 2}",
                "        accelerator: {type: nvidia-l4, count: 1}",
                f"        selectors: {{k8s_labels: {{app.example.com/deployment: {dep_id}-pods}}}}",
            ]
    return "\n".join(lines) + "\n"


@pytest.fixture
def tiny(tmp_path: Path) -> Callable[..., Portfolio]:
    """Write a portfolio with the given models and load it the way the CLI does."""

    def build(
        models: dict[str, list[tuple[str, str, list[tuple[str, str, str]]]]], extra: str = ""
    ) -> Portfolio:
        root = tmp_path / "portfolio"
        (root / "models").mkdir(parents=True, exist_ok=True)
        (root / "portfolio.yaml").write_text(PORTFOLIO_YAML + textwrap.dedent(extra), encoding="utf-8")
        for name, versions in models.items():
            (root / "models" / f"{name}.yaml").write_text(model_yaml(name, versions), encoding="utf-8")
        return load_portfolio(DirectorySource(root))

    return build


# ---------------------------------------------------------------------------- real Prometheus


def _binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidate = Path("/usr/bin") / name
    return str(candidate) if candidate.is_file() else None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/-/ready", timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _has_data(url: str) -> bool:
    query = urllib.parse.urlencode({"query": "count(kube_pod_labels)", "time": str(promdata.T0 + 3600)})
    try:
        with urllib.request.urlopen(f"{url}/api/v1/query?{query}", timeout=2) as response:
            body = json.loads(response.read())
    except (urllib.error.URLError, OSError, ValueError):
        return False
    return bool(body.get("data", {}).get("result"))


@pytest.fixture(scope="module")
def prometheus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Prometheus on a free loopback port, backfilled with ``promdata`` samples."""
    server, promtool = _binary("prometheus"), _binary("promtool")
    if server is None or promtool is None:
        message = (
            "SKIPPING THE REAL-PROMETHEUS TEST: the `prometheus` and `promtool` binaries were not found "
            "(install Debian's `prometheus` package: apt-get install prometheus; .ci/run does this)"
        )
        print(f"\n*** {message} ***", file=sys.stderr)
        warnings.warn(message, stacklevel=1)
        pytest.skip(message)
    work = tmp_path_factory.mktemp("prometheus")
    samples = work / "samples.om"
    samples.write_text(promdata.openmetrics(), encoding="utf-8")
    storage = work / "tsdb"
    subprocess.run(
        [promtool, "tsdb", "create-blocks-from", "openmetrics", "-q", str(samples), str(storage)],
        check=True,
        timeout=120,
        capture_output=True,
    )
    config = work / "prometheus.yml"
    config.write_text("global: {}\nscrape_configs: []\n", encoding="utf-8")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = (work / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            server,
            f"--config.file={config}",
            f"--storage.tsdb.path={storage}",
            "--storage.tsdb.retention.time=100y",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while not (_ready(url) and _has_data(url)):
            if process.poll() is not None:
                pytest.fail(
                    "prometheus exited early:\n"
                    + (work / "prometheus.log").read_text(errors="replace")[-2000:]
                )
            if time.monotonic() > deadline:
                pytest.fail("prometheus did not become ready within 60 s")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)
        log.close()
