"""``docs``: write ``docs/policies.md`` from the built-in pack, or check that it is current."""

from __future__ import annotations

import sys
from pathlib import Path

from policy_engine.docs import load_pack, render_policy_docs
from policy_engine.errors import ExitCode
from policy_engine.outputs import write_atomic
from policy_engine.policies import builtin_pack_dir


def generate() -> str:
    policies, suites = load_pack(builtin_pack_dir())
    return render_policy_docs(policies, suites)


def run_docs(check: bool, output: Path) -> int:
    """With ``check``: exit 1 when ``output`` differs from what the pack generates; otherwise
    write it (atomically, only when it changed)."""
    text = generate()
    current = output.read_text(encoding="utf-8") if output.is_file() else None
    if check:
        if current != text:
            print(f"{output}: stale; run `policy-engine docs` to regenerate it", file=sys.stderr)
            return int(ExitCode.BLOCKING)
        print(f"{output} is current")
        return int(ExitCode.OK)
    if current == text:
        print(f"{output} is current")
        return int(ExitCode.OK)
    write_atomic(output, text)
    print(f"wrote {output}")
    return int(ExitCode.OK)
