"""``residency import`` as a command: usage errors, live sources over HTTP, credentials."""

from __future__ import annotations

import base64
import io
import json
import threading
import urllib.parse
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from policy_engine.commands.residency import import_residency
from policy_engine.residency.http import Client, Credentials, HttpError


class FakeOpenCost(BaseHTTPRequestHandler):
    """Answers /allocation with the sample files; remembers what it was asked."""

    seen: list[dict[str, Any]] = []  # noqa: RUF012 - shared by the test on purpose
    data: Path
    status = 200

    def do_GET(self) -> None:
        url = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(url.query))
        type(self).seen.append({"path": url.path, "query": query, "auth": self.headers.get("Authorization")})
        if self.status != 200:
            self._send(self.status, b'{"code": 401, "message": "unauthorized"}')
            return
        if url.path == "/redirect":
            self.send_response(302)
            self.send_header("Location", "http://elsewhere.invalid/allocation")
            self.end_headers()
            return
        name = "allocation-by-pod.json" if query.get("aggregate", "").endswith(",pod") else "allocation.json"
        self._send(200, (self.data / name).read_bytes())

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def opencost_server(data_dir: Path) -> Iterator[tuple[str, type[FakeOpenCost]]]:
    handler = type("Handler", (FakeOpenCost,), {"data": data_dir / "opencost", "seen": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def run(*args: Any, **options: Any) -> tuple[int, str]:
    err = io.StringIO()
    options.setdefault("environ", {})
    return import_residency(*args, stderr=err, **options), err.getvalue()


def test_live_opencost_with_a_bearer_token(
    tmp_path: Path, opencost_server: tuple[str, type[FakeOpenCost]], acme_root: Path
) -> None:
    url, handler = opencost_server
    out = tmp_path / "residency" / "2025-06.jsonl"
    code, err = run(
        "opencost",
        [],
        out,
        url=url,
        portfolio_root=acme_root,
        window_start="2025-06-28T00:00:00Z",
        window_end="2025-06-30T00:00:00Z",
        environ={"POLICY_ENGINE_OPENCOST_BEARER_TOKEN": "s3cret"},
    )
    assert code == 0, err
    first, second = handler.seen
    assert first["path"] == "/allocation"
    assert first["query"] == {
        "window": "2025-06-28T00:00:00Z,2025-06-30T00:00:00Z",
        "aggregate": "label:portfolio.acme.io/deployment",  # the portfolio's selector key
        "step": "1d",
        "accumulate": "false",
        "includeIdle": "true",
        "shareIdle": "false",
        "idleByNode": "false",
    }
    assert second["query"]["aggregate"] == "label:portfolio.acme.io/deployment,pod"
    assert first["auth"] == "Bearer s3cret"
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["provenance"].get("fetched_at") is not None for r in records} == {True}
    assert "s3cret" not in out.read_text()


def test_basic_auth_and_http_errors(opencost_server: tuple[str, type[FakeOpenCost]]) -> None:
    url, handler = opencost_server
    credentials = Credentials.from_environ(
        {"POLICY_ENGINE_OPENCOST_USERNAME": "ada", "POLICY_ENGINE_OPENCOST_PASSWORD": "pw"}, "opencost"
    )
    Client(url, credentials).get_json("allocation", {"window": "1d"})
    assert handler.seen[-1]["auth"] == "Basic " + base64.b64encode(b"ada:pw").decode()
    handler.status = 401
    with pytest.raises(HttpError, match=r"HTTP 401 Unauthorized: unauthorized \(check the POLICY_ENGINE_\*_"):
        Client(url, credentials).get_json("allocation")


def test_redirects_are_not_followed(opencost_server: tuple[str, type[FakeOpenCost]]) -> None:
    url, _ = opencost_server
    with pytest.raises(HttpError, match=r"redirects to http://elsewhere\.invalid/allocation"):
        Client(url, Credentials(bearer_token="t")).get_json("redirect")


def test_credentials_never_come_from_the_url(tmp_path: Path) -> None:
    code, err = run("prometheus", [], tmp_path / "o.jsonl", url="https://ada:pw@prom.example", label="app")
    assert code == 2
    assert "credentials in the URL are refused" in err
    with pytest.raises(HttpError, match="set both POLICY_ENGINE_PROMETHEUS_USERNAME"):
        Credentials.from_environ({"POLICY_ENGINE_PROMETHEUS_USERNAME": "ada"}, "prometheus")
    with pytest.raises(HttpError, match="is not a file"):
        Credentials.from_environ(
            {"POLICY_ENGINE_PROMETHEUS_CA_BUNDLE": str(tmp_path / "none.pem")}, "prometheus"
        )


def test_an_unreachable_server_is_an_input_error(tmp_path: Path) -> None:
    code, err = run(
        "prometheus",
        [],
        tmp_path / "o.jsonl",
        url="http://127.0.0.1:9",
        label="app",
        timeout=2,
        window_start="2025-06-01T00:00:00Z",
        window_end="2025-06-02T00:00:00Z",
    )
    assert code == 2
    assert err.startswith("error: http://127.0.0.1:9/api/v1/query: cannot connect")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("args", "options", "message"),
    [
        (["x.json"], {"url": "http://localhost"}, "give input files or a server URL, not both"),
        ([], {}, "nothing to import: give opencost input files or --opencost URL"),
        (["x.json"], {"label": None}, "--label is required"),
        (
            ["x.json"],
            {"window_start": "2025-06-01"},
            "--window-start: '2025-06-01' is not an RFC 3339 timestamp",
        ),
        (["x.json"], {"window_start": "2025-06-01T00:00:00Z"}, "give both --window-start and --window-end"),
    ],
)
def test_usage_errors(tmp_path: Path, args: list[str], options: dict[str, Any], message: str) -> None:
    options.setdefault("label", "app")
    code, err = run("opencost", [Path(a) for a in args], tmp_path / "o.jsonl", **options)
    assert code == 2
    assert err == f"error: {message}\n" or err.startswith(f"error: {message}")


def test_output_must_be_native(tmp_path: Path, data_dir: Path) -> None:
    code, err = run("focus", [data_dir / "focus" / "export.csv"], tmp_path / "o.json", label="x")
    assert (code, err) == (
        2,
        f"error: {(tmp_path / 'o.json').as_posix()}: the output must end in .jsonl or .csv\n",
    )


def test_csv_output_and_a_live_window_must_be_whole_days(tmp_path: Path, data_dir: Path) -> None:
    code, err = run(
        "focus", [data_dir / "focus" / "export.csv"], tmp_path / "o.csv", label="portfolio.acme.io/deployment"
    )
    assert code == 0, err
    assert (tmp_path / "o.csv").read_text().startswith("deployment_id,window_start,window_end,")
    code, err = run(
        "prometheus",
        [],
        tmp_path / "o.jsonl",
        url="http://127.0.0.1:9",
        label="app",
        window_start="2025-06-01T06:00:00Z",
        window_end="2025-06-02T00:00:00Z",
    )
    assert code == 2
    assert "must be at 00:00:00Z" in err


def test_a_missing_input_file(tmp_path: Path) -> None:
    code, err = run("opencost", [tmp_path / "nope.json"], tmp_path / "o.jsonl", label="app", currency="USD")
    assert code == 2
    assert f"{(tmp_path / 'nope.json').as_posix()}:1:1: cannot read: No such file or directory" in err
