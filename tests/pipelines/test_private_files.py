"""What a CLI writes is readable by its owner only, unless the team opts in to sharing."""
import os
import stat
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _modes(tmp_path, env_extra):
    env = {**os.environ, "JMEDLORA_WORKSPACE": str(tmp_path / "ws"), **env_extra}
    # The usual umask of a login shell: what the opt-out leaves in force (the test process's own
    # may already be 077 after an in-process CLI call).
    subprocess.run([sys.executable, "-m", "pipelines.core.auth", "add", "u1", "--password-stdin"], input="long password\n",
                   text=True, cwd=REPO, env=env, check=True, capture_output=True, preexec_fn=lambda: os.umask(0o022))
    ws = tmp_path / "ws"
    return {p.name: stat.S_IMODE(p.stat().st_mode) for p in [ws / "registry.sqlite", ws / "audit" / "audit.jsonl", ws]}


def test_owner_only_by_default(tmp_path):
    modes = _modes(tmp_path, {})
    assert modes["registry.sqlite"] == 0o600 and modes["audit.jsonl"] == 0o600 and modes["ws"] == 0o700


def test_opt_in_sharing(tmp_path):
    modes = _modes(tmp_path, {"JMEDLORA_SHARED_FILES": "1"})
    assert modes["registry.sqlite"] & 0o044 and modes["ws"] & 0o055
