"""A failing test is always reported, and the run goes on (a pytest plugin, loaded by pyproject's addopts).

On this machine's CPython 3.11.7, pytest's rendering of a failure can itself crash: it re-parses source
files with ``ast.parse`` for the traceback, and 3.11.7 sometimes raises ``SystemError: AST constructor
recursion depth mismatch`` there, depending on how deep the stack is (python/cpython#106905,
pytest-dev/pytest#10763; fixed in later 3.11 releases). pytest turns that into an INTERNALERROR and stops
the whole session: every test after the failing one goes unrun and uncounted. Seen here on 2026-12-06
(a datagen failure, then ~500 tests never ran); one more Python frame around the same ``ast.parse`` call
makes it vanish, which is how the depth dependence was confirmed.

The fallback: if pytest's own rendering fails with that error, the failure is shown as a plain Python
traceback (what ``--tb=native`` prints, which needs no ``ast``), so the test is reported as failed with
its real cause and the run continues.
"""
from __future__ import annotations

import pytest


def _with_fallback(repr_failure):
    def repr_failure_or_native(excinfo, *args, **kwargs):
        try:
            return repr_failure(excinfo, *args, **kwargs)
        except SystemError as exc:
            if "recursion depth mismatch" not in str(exc):
                raise
            return (f"{excinfo.getrepr(style='native')}\n"
                    f"(shown as a plain traceback: pytest's rendering hit CPython's {exc})")
    return repr_failure_or_native


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(items):
    for item in items:
        item.repr_failure = _with_fallback(item.repr_failure)
