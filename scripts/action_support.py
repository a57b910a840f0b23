"""Helpers for scripts/action-check.sh: the event payload, pull-request reviews, step outputs.

Standard library only: it runs before and beside the installed policy-engine.

    action_support.py event FIELD    print a dotted field of $GITHUB_EVENT_PATH's payload ("" if absent)
    action_support.py reviews FILE   fetch the pull request's reviews into FILE (token in INPUT_TOKEN)
    action_support.py outputs REPORT print blocking=, failed=, errors=, waived= from a JSON report
"""

from __future__ import annotations

import json
import os
import re
import sys
import urllib.request
from pathlib import Path
from typing import Any

TIMEOUT_SECONDS = 30
MAX_PAGES = 50
_NEXT_LINK = re.compile(r'<([^>]+)>\s*;\s*rel="next"')


def _payload() -> dict[str, Any]:
    path = os.environ.get("GITHUB_EVENT_PATH", "")
    if not path or not Path(path).is_file():
        return {}
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data if isinstance(data, dict) else {}


def event_field(dotted: str) -> str:
    value: Any = _payload()
    for key in dotted.split("."):
        if not isinstance(value, dict) or key not in value:
            return ""
        value = value[key]
    if value is None or isinstance(value, dict | list):
        return ""
    return str(value)


def fetch_reviews(destination: Path) -> None:
    """Every review of the pull request, all pages, as one JSON array (the REST API's shape)."""
    token = os.environ.get("INPUT_TOKEN", "")
    number = event_field("pull_request.number")
    repository = os.environ.get("GITHUB_REPOSITORY") or event_field("repository.full_name")
    if not (token and number and repository):
        raise SystemExit("reviews: need INPUT_TOKEN, a pull_request event and GITHUB_REPOSITORY")
    api = os.environ.get("GITHUB_API_URL", "https://api.github.com").rstrip("/")
    url: str | None = f"{api}/repos/{repository}/pulls/{number}/reviews?per_page=100"
    reviews: list[Any] = []
    for _ in range(MAX_PAGES):
        if url is None:
            break
        request = urllib.request.Request(
            url,
            headers={
                "Accept": "application/vnd.github+json",
                "Authorization": f"Bearer {token}",
                "X-GitHub-Api-Version": "2022-11-28",
                "User-Agent": "policy-engine-action",
            },
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT_SECONDS) as response:
            page = json.loads(response.read().decode("utf-8"))
            link = response.headers.get("Link") or ""
        if not isinstance(page, list):
            raise SystemExit(f"reviews: expected a JSON array from {url}")
        reviews.extend(page)
        match = _NEXT_LINK.search(link)
        url = match.group(1) if match else None
    destination.write_text(json.dumps(reviews, indent=2) + "\n", encoding="utf-8")


def report_outputs(report_path: Path) -> str:
    summary = json.loads(report_path.read_text(encoding="utf-8"))["summary"]
    by_status = summary.get("by_status", {})
    counts = {
        "blocking": summary.get("blocking", 0),
        "failed": by_status.get("fail", 0),
        "errors": by_status.get("error", 0),
        "waived": by_status.get("waived", 0),
    }
    return "".join(f"{key}={int(value)}\n" for key, value in counts.items())


def main(argv: list[str]) -> int:
    if len(argv) != 2 or argv[0] not in ("event", "reviews", "outputs"):
        print(__doc__, file=sys.stderr)
        return 2
    command, argument = argv
    if command == "event":
        print(event_field(argument))
    elif command == "reviews":
        try:
            fetch_reviews(Path(argument))
        except (OSError, ValueError) as exc:  # URLError/HTTPError are OSErrors; bad JSON is a ValueError
            print(f"reviews: {exc}", file=sys.stderr)
            return 1
    else:
        sys.stdout.write(report_outputs(Path(argument)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
