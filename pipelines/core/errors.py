"""The one exception type for problems the user can fix.

A ``UserError`` names the problem and the fix; CLIs print it without a traceback
and the UI shows it as a message. Anything else is a bug and keeps its traceback.

``code`` and ``params`` (optional) let a front end say the same thing in another language: the
English text stays what a CLI prints, and a catalog keyed by ``code`` (the workbench's Japanese
one) formats ``params``. A code a catalog does not know falls back to the English text.
"""
from __future__ import annotations


class UserError(Exception):
    def __init__(self, problem: str, fix: str | None = None, *, code: str | None = None,
                 params: dict | None = None):
        self.problem = problem
        self.fix = fix
        self.code = code
        self.params = dict(params or {})
        super().__init__(problem if not fix else f"{problem}\n  Fix: {fix}")


def disk_full(exc: BaseException, path: str | None = None) -> UserError | None:
    """A UserError for 'no space left' (a file write or SQLite), naming the path and what is free; else None."""
    import errno
    import os
    import shutil
    import sqlite3

    chain, e = [], exc
    while e is not None and len(chain) < 10:
        chain.append(e)
        e = e.__cause__ or e.__context__
    oserror = next((e for e in chain if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT)), None)
    if oserror is not None:
        path = path or oserror.filename
    elif any(isinstance(e, sqlite3.OperationalError) and "full" in str(e).lower() for e in chain):
        path = path or "the workspace registry (registry.sqlite)"
    elif any("No space left on device" in str(e) or "os error 28" in str(e) for e in chain):
        pass      # a library's own error around ENOSPC: safetensors' SafetensorError, tokenizers, Rust I/O
    else:
        return None
    # Free space where the write went; without a path (a library's error), none rather than the wrong disk's.
    probe = None if path is None else path if os.path.exists(str(path)) else (os.path.dirname(str(path)) or os.getcwd())
    try:
        free_mb = shutil.disk_usage(probe).free / 1e6 if probe else None
        free = f"{free_mb:,.0f} MB free there" if probe else "free space unknown"
    except OSError:
        free_mb, free = None, "free space unknown"
    return UserError(f"The disk is full: could not write {path or 'a file'} ({free}). What was saved before "
                     "is intact.", "Free space on that disk (old runs, checkpoints, exports), or use a workspace on "
                     "a disk with room (--workspace DIR), then run the same command again to resume.",
                     code="disk_full", params={"path": str(path or ""), "free_mb": free_mb})


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or a stop request) after finished work was saved; ``resume`` says how to go on."""

    def __init__(self, resume: str | None = None):
        self.resume = resume
        super().__init__(resume or "")


def same_command(name: str, argv: list[str] | None) -> str:
    """The command that was run (``jmedlora NAME …``): for pipelines that resume by rerunning it."""
    import shlex
    import sys
    return shlex.join(["jmedlora", name, *(sys.argv[1:] if argv is None else argv)])


def _end_progress_bars() -> None:
    """Close any open tqdm bar first: the error line would otherwise continue the bar's line
    ("… 0/1 [00:04<?, ?q/s]error: …"), where a reader (or a script) looking for "error:" misses it."""
    import sys
    std = sys.modules.get("tqdm.std")
    for bar in list(getattr(getattr(std, "tqdm", None), "_instances", ()) or ()):
        bar.close()


def _stdout_reader_gone() -> bool:
    """Whether standard output is a pipe nobody reads any more (``jmedlora … | head`` after head
    exits): Linux reports POLLERR on such a pipe's write end. A broken pipe elsewhere (a socket
    to a server) is not this, and keeps its traceback."""
    import select
    import sys
    try:
        poll = select.poll()
        poll.register(sys.stdout.fileno(), select.POLLOUT)
        return any(events & select.POLLERR for _, events in poll.poll(0))
    except (AttributeError, ValueError, OSError):      # no stdout, or not a file descriptor
        return False


def _quiet_broken_stdout() -> None:
    """The reader of standard output had enough: end without a traceback. Python's documented
    recipe: point stdout at /dev/null, or the flush at exit raises BrokenPipeError once more."""
    import os
    import sys
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    raise SystemExit(141) from None     # 128 + SIGPIPE: what a command stopped by the closed pipe reports


def _flush_stdout() -> None:
    """Write out what is buffered for stdout (a pipe's is written at exit otherwise, after this
    guard, where a closed pipe gives "Exception ignored … BrokenPipeError")."""
    import sys
    try:
        if sys.stdout is not None:
            sys.stdout.flush()
    except BrokenPipeError:
        _quiet_broken_stdout()


def cli_guard(main):
    """Decorator for ``main()`` functions: UserErrors plainly with exit 2; Ctrl-C quietly with
    exit 130 (the shell's convention for SIGINT) and, when the pipeline said so, how to resume;
    output into a pipe whose reader has gone (``| head``) quietly with exit 141."""
    import functools
    import os
    import sys

    @functools.wraps(main)
    def wrapper(*args, **kwargs):
        if main.__module__ == "__main__":
            # A command line's files are its user's alone; a caller from Python keeps its own umask.
            from pipelines.core.private_files import owner_only
            owner_only()
        try:
            result = main(*args, **kwargs)
            _flush_stdout()
            return result
        except SystemExit:                  # argparse's --help and usage errors end this way too
            _flush_stdout()
            raise
        except UserError as exc:
            _end_progress_bars()
            print(f"error: {exc}", file=sys.stderr)
            raise SystemExit(2) from None
        except Exception as exc:
            if isinstance(exc, BrokenPipeError) and _stdout_reader_gone():
                _quiet_broken_stdout()
            full = disk_full(exc)
            if full is None:
                raise
            _end_progress_bars()
            print(f"error: {full}", file=sys.stderr)
            raise SystemExit(2) from None
        except KeyboardInterrupt as exc:
            resume = getattr(exc, "resume", None)
            print("\ninterrupted: what finished is saved." + (f"\n  Resume: {resume}" if resume else ""),
                  file=sys.stderr, flush=True)
            if main.__module__ == "__main__":
                # Run as a command (``jmedlora X``, ``python -m pipelines.…``), not called from Python: leave now. Worker threads
                # may still be inside a request or a torch forward pass; a normal exit would join them (up to a request's timeout) or
                # tear them down mid-call ("terminate called without an active exception", exit 134).
                # What finished was written and flushed as it finished, so nothing is lost.
                sys.stdout.flush()
                os._exit(130)
            raise SystemExit(130) from None

    return wrapper
