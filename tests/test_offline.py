"""Offline, proven: the whole loop inside a network namespace that has only loopback, with every
Python process refusing and logging any outbound connection attempt (tests/offline/)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

from tests.conftest import REPO

OFFLINE = REPO / "tests" / "offline"


def _namespace_problem() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare is not installed (util-linux)"
    probe = subprocess.run(["unshare", "-n", "true"], capture_output=True, text=True)
    if probe.returncode != 0:
        return f"`unshare -n true` failed (needs root or user namespaces): {probe.stderr.strip()}"
    return None


@pytest.mark.slow
def test_whole_loop_runs_with_only_loopback_and_connects_nowhere(tiny_llama_dir, tmp_path):
    problem = _namespace_problem()
    if problem:
        pytest.skip(f"no network namespace here: {problem}")
    log = tmp_path / "connect.log"
    log.touch()
    env = {**os.environ, "OFFLINE_CONNECT_LOG": str(log),
           "PYTHONPATH": os.pathsep.join([str(OFFLINE), str(REPO), os.environ.get("PYTHONPATH", "")])}
    env.pop("JMEDLORA_WORKSPACE", None)
    proc = subprocess.run(["unshare", "-n", "sh", "-c",
                           'ip link set lo up && exec "$0" "$@"', sys.executable,
                           str(OFFLINE / "whole_loop.py"), str(tiny_llama_dir), str(tmp_path / "work")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=1800)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-6000:]
    assert "whole loop finished offline" in out
    assert log.read_text() == "", "outbound connection attempts:\n" + log.read_text()
    assert "Traceback" not in out, out[-6000:]
