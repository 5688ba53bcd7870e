"""The one exception type for problems the user can fix.

A ``UserError`` names the problem and the fix; CLIs print it without a traceback
and the UI shows it as a message. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations


class UserError(Exception):
    def __init__(self, problem: str, fix: str | None = None):
        self.problem = problem
        self.fix = fix
        super().__init__(problem if not fix else f"{problem}\n  Fix: {fix}")


def cli_guard(main):
    """Decorator for ``main()`` functions: print UserErrors plainly and exit 2."""
    import functools
    import sys

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        try:
            return main(*args, **kwargs)
        except UserError as exc:
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None

    return wrapper
