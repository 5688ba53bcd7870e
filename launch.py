"""Start the JMedLoRA Workbench.

    python launch.py                      # http://127.0.0.1:7860, embedded model, sample data
    python launch.py --lang en --port 8000 --workspace /data/jmedlora
    python launch.py --host 0.0.0.0       # reachable from the ward's network (login required)
    python launch.py --no-auth            # a single-user laptop: no login

Every page and API call needs a login by default: users are named, their passwords hashed in
WORKSPACE/users.json (``jmedlora auth add NAME``); on the first start an ``admin``
user is created and its password printed once. Every login attempt goes to the audit log
(``jmedlora audit verify``). Nothing is sent anywhere: analytics are off and no
model is fetched. Listening beyond this machine (any --host other than loopback) needs a login.
"""
from __future__ import annotations

import argparse
import os
import sys

# Before gradio is imported: it reads this at import time.
os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def is_loopback(host: str) -> bool:
    """Listening here reaches only this machine (by resolved address, not by spelling)."""
    from pipelines.core.locality import is_local
    return is_local(host, allow=[])


def port_is_free(host: str, port: int) -> bool:
    """True when nothing listens on host:port (what Gradio would fail on after printing its URL)."""
    import socket
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        # No SO_REUSEADDR: a port another server is bound to must count as taken.
        try:
            s.bind((host if host != "localhost" else "127.0.0.1", port))
        except OSError:
            return False
    return True


def next_free_port(host: str, start: int, tries: int = 50) -> int | None:
    return next((p for p in range(start, min(start + tries, 65536)) if port_is_free(host, p)), None)


def parse_auth(value: str | None) -> None:
    """``--auth USER:PASSWORD`` is refused: a password on the command line is shown by ``ps`` to every
    user of the machine (and kept in shell histories); users live in WORKSPACE/users.json instead."""
    if value is not None:
        raise SystemExit("error: --auth puts a password on the command line, where `ps` shows it to every user "
                         "of this machine.\n  Fix: add the user once with `jmedlora auth add NAME` "
                         "(it asks for the password), then start without --auth.")


UPLOAD_LIMIT = "10mb"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description="JMedLoRA Workbench (local web UI)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default: this machine only)")
    p.add_argument("--port", type=int, default=7860)
    p.add_argument("--workspace", default=None, help="workspace directory (default: $JMEDLORA_WORKSPACE or ./workspace)")
    p.add_argument("--auth", default=None, help=argparse.SUPPRESS)      # refused with a fix (parse_auth)
    p.add_argument("--no-auth", action="store_true",
                   help="no login at all: only for a single-user machine (anyone with an account on it can "
                        "then use the workbench); refused with a --host other than loopback")
    p.add_argument("--lang", choices=["ja", "en"], default="ja", help="start language (switchable in the page)")
    return p


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    parse_auth(args.auth)
    if not is_loopback(args.host) and args.no_auth:
        raise SystemExit(f"error: --host {args.host} makes the workbench reachable from other machines, "
                         "and it shows medical data.\n  Fix: drop --no-auth (log in with a named user), "
                         "or use --host 127.0.0.1.")
    if not 0 < args.port < 65536:
        raise SystemExit(f"error: --port {args.port} is not a valid port (1-65535).")
    if not port_is_free(args.host, args.port):
        free = next_free_port(args.host, args.port + 1)
        fix = f"start on a free port: python launch.py --port {free}" if free else "choose another --port"
        raise SystemExit(f"error: port {args.port} on {args.host} is already in use (another workbench, or "
                         f"another program, is listening there).\n  Fix: open that one, stop it, or {fix}.")

    from pipelines.core.private_files import owner_only
    owner_only()
    from pipelines.core import auth as users
    from pipelines.core.errors import UserError
    from pipelines.core.workspace import Workspace
    from workbench.app import CSS, build_app
    from workbench.state import AppState
    from workbench.i18n import gradio_i18n

    try:
        ws = Workspace.resolve(args.workspace)
    except (OSError, UserError) as exc:
        raise SystemExit(f"error: cannot use workspace {args.workspace!r}: {exc}")
    gate = None
    if not args.no_auth:
        try:
            first_password = users.ensure_first_user(ws.root)
        except UserError as exc:
            raise SystemExit(f"error: {exc}")
        if first_password:
            print(f"First start: created the user 'admin' with the password\n\n    {first_password}\n\n"
                  "It is shown only this once. Add named users with: jmedlora auth add NAME",
                  flush=True)
        gate = users.Gate(ws.root)
    state = AppState(workspace=ws, lang=args.lang)
    state.prepare_default_in_background()
    demo = build_app(state)
    demo.queue(default_concurrency_limit=4)
    mode = "login required" if gate else "NO LOGIN (--no-auth): anyone with an account on this machine can use it"
    print(f"JMedLoRA Workbench: http://{args.host}:{args.port}  (workspace {ws.root}; {mode})", flush=True)
    demo.launch(server_name=args.host, server_port=args.port, auth=gate, share=False, show_error=True,
                inbrowser=False, css=CSS, i18n=gradio_i18n(), footer_links=[], ssr_mode=False, pwa=False, mcp_server=False,
                enable_monitoring=False, allowed_paths=[str(ws.root / "exports")], prevent_thread_lock=True,
                # No form uploads a file (paths on the server are read under pipelines/core/page_paths.py), yet
                # Gradio's upload route takes any size from any logged-in user: 300 MB went in unchecked.
                max_file_size=UPLOAD_LIMIT)
    if gate is not None:
        # Sessions end when their user is removed (before any login: the table is still empty here).
        from workbench.users import LiveSessions
        demo.server_app.tokens = LiveSessions(gate.still_allowed)
    demo.block_thread()


if __name__ == "__main__":
    sys.exit(main())
