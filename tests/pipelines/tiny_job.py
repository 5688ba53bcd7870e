"""A tiny real job for tests/pipelines/test_jobs.py: ``python -m tests.pipelines.tiny_job N [--fail] [--hang]``.

Counts to N, one progress event per step, saving each step to ``done.txt`` (its 'finished
work'); stops gracefully on STOP / SIGTERM; ``--fail`` raises a UserError at step 2;
``--hang`` ignores stop requests (for the SIGKILL path).
"""
import signal
import sys
import time

from pipelines.core import jobs
from pipelines.core.errors import UserError, cli_guard


@cli_guard
def main() -> None:
    n, fail, hang = int(sys.argv[1]), "--fail" in sys.argv, "--hang" in sys.argv
    events = jobs.EventWriter.from_env()
    stop = jobs.stop_event(events) if not hang else None
    if hang:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
    with jobs.reporting(events):
        events({"event": "start", "total": n})
        for i in range(1, n + 1):
            if stop is not None and stop.is_set():
                events({"event": "stop", "done": i - 1, "message": f"stopped at {i - 1}"})
                return
            if fail and i == 2:
                raise UserError("step 2 is broken", "do not pass --fail")
            with open(events.run_dir / "done.txt", "a") as fh:
                fh.write(f"{i}\n")
            events({"event": "progress", "done": i, "total": n})
            time.sleep(0.05)
        events({"event": "finish", "done": n})


if __name__ == "__main__":
    main()
