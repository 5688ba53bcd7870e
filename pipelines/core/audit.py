"""The access log: append-only, hash-chained, verifiable (MHLW guideline 6.0: who, when, what).

One name for callers and the ``jmedlora audit`` command. ``from pipelines.core import audit``, then
``audit.record(...)``, ``audit.current_user()``, ``audit.verify(...)``, ``audit.entries(...)``: the
code lives in three parts, re-exported here so that no caller needs to know which. The log's
format and threat model (also this command's --help) are in ``audit_format``; writing one entry
in ``audit_append``; verifying the log and reading its entries in ``audit_verify``.

    jmedlora audit verify [--workspace DIR]      # exit 1 and name the first bad entry
    jmedlora audit show [--user U] [--action A] [--limit N] [--workspace DIR]
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Literal

from pipelines.core import audit_format, cli
from pipelines.core.audit_append import USER_ENV, DiskFull, current_user, record  # noqa: F401 (re-exported)
from pipelines.core.audit_format import (ACTIONS, CUT_FLOOR, DELETED, FIELD_MAX, FIELDS, GENESIS,  # noqa: F401 (re-exported)
                                         LINE_MAX, SYSTEM, VERSION, Head)
from pipelines.core.audit_verify import TORN, Verdict, entries, verify  # noqa: F401 (re-exported)
from pipelines.core.errors import UserError, cli_guard

# The help is the log's format and threat model: audit_format's docstring, less its last paragraph
# (which is about the code, not the log).
HELP = (audit_format.__doc__ or "").rsplit("\n\n", 1)[0] or None


# -- CLI ---------------------------------------------------------------------------------------


@dataclass
class AuditConfig:
    command: Literal["verify", "show"] = field(default="verify", metadata=cli.positional())  # check or print
    user: str | None = None        # show: only this user's entries
    action: str | None = None      # show: only this action (login, export, rate, ...)
    limit: int = 50                # show: the newest N entries
    workspace: str | None = None


@cli_guard
def main(argv: list[str] | None = None) -> None:
    from pipelines.core.workspace import Workspace
    parser = cli.config_parser("audit", AuditConfig, HELP)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    a = cli.config_from_args(AuditConfig, ns)
    root = Workspace.resolve(a.workspace).root
    if a.command == "verify":
        verdict = verify(root)
        print(json.dumps(verdict.__dict__, indent=2, ensure_ascii=False) if ns.json else verdict)
        raise SystemExit(0 if verdict.ok else 1)
    if a.limit < 1:
        raise UserError(f"--limit must be at least 1 (got {a.limit}).", "e.g. --limit 50")
    rows = [e for e in entries(root) if (a.user is None or e.get("user") == a.user)
            and (a.action is None or e.get("action") == a.action)]
    for e in rows[-a.limit:]:
        if ns.json:
            print(json.dumps(e, ensure_ascii=False))
            continue
        print(f"{e['seq']!s:>6}  {e['time']!s}  {e['user']!s:<16} {e['action']!s:<13} {e['object']!s}  "
              f"{json.dumps(e.get('detail') or {}, ensure_ascii=False)}")


if __name__ == "__main__":
    main()
