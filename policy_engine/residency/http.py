"""The one place residency adapters talk HTTP: stdlib urllib, timeouts, credentials from env.

Credentials never come from the command line (they would show in ``ps`` and shell history).
For a source ``NAME`` (``PROMETHEUS`` or ``OPENCOST``) these environment variables are read:

- ``POLICY_ENGINE_<NAME>_BEARER_TOKEN`` or ``POLICY_ENGINE_<NAME>_BEARER_TOKEN_FILE``
  (e.g. a Kubernetes service-account token) → ``Authorization: Bearer …``;
- ``POLICY_ENGINE_<NAME>_USERNAME`` + ``POLICY_ENGINE_<NAME>_PASSWORD`` → basic auth;
- ``POLICY_ENGINE_<NAME>_CA_BUNDLE`` → PEM file of CAs to trust for https.

A URL with credentials in it (``https://user:pass@host``) is refused. Redirects are not
followed, so a credential is only ever sent to the host that was named.
"""

from __future__ import annotations

import base64
import json
import ssl
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MAX_BYTES = 512 * 1024 * 1024
ENV_PREFIX = "POLICY_ENGINE_"


class HttpError(Exception):
    """A live source could not be read; the message says what to check."""


@dataclass(frozen=True, slots=True)
class Credentials:
    bearer_token: str | None = None
    username: str | None = None
    password: str | None = None
    ca_bundle: str | None = None

    @classmethod
    def from_environ(cls, environ: Mapping[str, str], name: str) -> Credentials:
        prefix = f"{ENV_PREFIX}{name.upper()}_"
        token = environ.get(prefix + "BEARER_TOKEN") or None
        token_file = environ.get(prefix + "BEARER_TOKEN_FILE") or None
        if token and token_file:
            raise HttpError(f"set only one of {prefix}BEARER_TOKEN and {prefix}BEARER_TOKEN_FILE")
        if token_file:
            try:
                token = Path(token_file).read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise HttpError(
                    f"{prefix}BEARER_TOKEN_FILE: cannot read {token_file}: {exc.strerror}"
                ) from None
        username = environ.get(prefix + "USERNAME") or None
        password = environ.get(prefix + "PASSWORD") or None
        if (username is None) != (password is None):
            raise HttpError(f"set both {prefix}USERNAME and {prefix}PASSWORD for basic auth")
        if token and username:
            raise HttpError(f"set either a bearer token or {prefix}USERNAME/PASSWORD, not both")
        ca_bundle = environ.get(prefix + "CA_BUNDLE") or None
        if ca_bundle and not Path(ca_bundle).is_file():
            raise HttpError(f"{prefix}CA_BUNDLE: {ca_bundle} is not a file")
        return cls(token, username, password, ca_bundle)

    def header(self) -> str | None:
        if self.bearer_token:
            return f"Bearer {self.bearer_token}"
        if self.username is not None and self.password is not None:
            pair = f"{self.username}:{self.password}".encode()
            return "Basic " + base64.b64encode(pair).decode("ascii")
        return None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req: Any, fp: Any, code: int, msg: str, headers: Any, newurl: str) -> None:
        raise HttpError(f"{req.full_url} redirects to {newurl}; use the final URL instead")


class Client:
    """JSON over HTTP(S) against one base URL."""

    def __init__(self, base_url: str, credentials: Credentials, timeout: float = 30.0) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise HttpError(f"{base_url!r} is not an http(s) URL")
        if parsed.username or parsed.password:
            raise HttpError(
                "credentials in the URL are refused (they would show in the process list); "
                f"use the {ENV_PREFIX}<SOURCE>_* environment variables"
            )
        self.base_url = base_url.rstrip("/")
        self.credentials = credentials
        self.timeout = timeout
        handlers: list[Any] = [_NoRedirect()]
        if parsed.scheme == "https":
            context = ssl.create_default_context(cafile=credentials.ca_bundle)
            handlers.append(urllib.request.HTTPSHandler(context=context))
        self._opener = urllib.request.build_opener(*handlers)

    def url(self, path: str, params: Mapping[str, str] | None = None) -> str:
        query = "?" + urllib.parse.urlencode(params) if params else ""
        return f"{self.base_url}/{path.lstrip('/')}{query}"

    def get_json(self, path: str, params: Mapping[str, str] | None = None) -> Any:
        return self._send(urllib.request.Request(self.url(path, params), method="GET"))

    def post_form(self, path: str, form: Mapping[str, str]) -> Any:
        body = urllib.parse.urlencode(form).encode("ascii")
        request = urllib.request.Request(self.url(path), data=body, method="POST")
        request.add_header("Content-Type", "application/x-www-form-urlencoded")
        return self._send(request)

    def _send(self, request: urllib.request.Request) -> Any:
        request.add_header("Accept", "application/json")
        request.add_header("User-Agent", "policy-engine")
        header = self.credentials.header()
        if header:
            request.add_header("Authorization", header)
        shown = request.full_url.split("?", 1)[0]
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                raw = response.read(MAX_BYTES + 1)
        except urllib.error.HTTPError as exc:
            detail = _error_detail(exc)
            hint = " (check the POLICY_ENGINE_*_ credentials)" if exc.code in (401, 403) else ""
            raise HttpError(f"{shown}: HTTP {exc.code} {exc.reason}{detail}{hint}") from None
        except urllib.error.URLError as exc:
            raise HttpError(f"{shown}: cannot connect: {exc.reason}") from None
        except TimeoutError:
            raise HttpError(f"{shown}: no answer within {self.timeout:g}s") from None
        except OSError as exc:
            raise HttpError(f"{shown}: {exc}") from None
        if len(raw) > MAX_BYTES:
            raise HttpError(
                f"{shown}: response larger than {MAX_BYTES // (1024 * 1024)} MiB; narrow the window"
            )
        try:
            return json.loads(raw)
        except ValueError:
            raise HttpError(f"{shown}: the response is not JSON") from None


def _error_detail(exc: urllib.error.HTTPError) -> str:
    """The error text of a JSON error body (Prometheus: ``error``; OpenCost: ``message``)."""
    try:
        body = json.loads(exc.read(65536))
    except (ValueError, OSError):
        return ""
    if isinstance(body, dict):
        for key in ("error", "message"):
            if isinstance(body.get(key), str):
                return f": {body[key]}"
    return ""
