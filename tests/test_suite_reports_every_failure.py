"""A failure anywhere is reported and counted, and every other test still runs: a planted failing test
file run by pytest in a subprocess, with pytest's failure rendering broken the way CPython 3.11.7 breaks
it (tests/failure_reports.py says why)."""
from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO

PLANTED = '''
import ast
import pytest

def test_before():
    pass

@pytest.fixture
def ast_parse_broken_as_on_3_11_7(monkeypatch):
    def parse(*args, **kwargs):
        raise SystemError("AST constructor recursion depth mismatch (before=129, after=148)")
    monkeypatch.setattr(ast, "parse", parse)        # undone at teardown, after the failure is rendered

def test_planted_failure(ast_parse_broken_as_on_3_11_7):
    assert 1 + 1 == 3, "the planted failure"

def test_after():
    pass
'''


def run_planted(tmp_path, *plugins: str) -> str:
    (tmp_path / "test_planted.py").write_text(PLANTED, encoding="utf-8")
    args = [a for p in plugins for a in ("-p", p)]
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args,
                           str(tmp_path / "test_planted.py")], cwd=REPO, capture_output=True, text=True,
                          timeout=300)
    return proc.stdout + proc.stderr


def test_without_the_fallback_the_broken_rendering_kills_the_session(tmp_path):
    out = run_planted(tmp_path)                 # the positive control: the crash is real
    assert "INTERNALERROR" in out and "recursion depth mismatch" in out, out
    assert "test_after" not in out and " passed" in out and "2 passed" not in out, out


def test_with_the_fallback_the_failure_is_reported_and_the_rest_runs(tmp_path):
    out = run_planted(tmp_path, "tests.failure_reports")
    assert "INTERNALERROR" not in out, out
    assert "1 failed, 2 passed" in out, out
    assert "the planted failure" in out and "AssertionError" in out, out
