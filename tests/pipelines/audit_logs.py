"""Small access logs for the audit tests to damage, and the command line that judges them: shared
by ``test_audit_tamper.py`` (what a forger leaves) and ``test_audit_interrupted.py`` (what a crash
or a full disk leaves)."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from pipelines.core import audit

REPO = Path(__file__).resolve().parents[2]


def make_log(root, n=5) -> Path:
    for i in range(n):
        audit.record(root, f"user{i % 2}", "view", f"eval:{i}", page=i)
    return root / "audit" / "audit.jsonl"


def verify_cli(root) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipelines.core.audit", "verify", "--workspace", str(root)],
                          cwd=REPO, capture_output=True, text=True, timeout=60)
