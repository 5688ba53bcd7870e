"""Live training metrics: one JSON line per logged optimizer step in ``RUN/metrics.jsonl``.

Record shape (all numbers; ``grad_norm`` may be null on a step whose norm is not finite)::

    {"step": 12, "epoch": 0.35, "loss": 2.31, "lr": 4.9e-05, "grad_norm": 1.23,
     "tokens": 1830, "tokens_total": 21960, "tokens_per_s": 3050.2, "step_time_s": 0.6,
     "elapsed_s": 7.2, "eta_s": 30.1, "peak_mem_mb": 812.3, "mem_kind": "cpu_rss_peak",
     "time": 1767000000.0}

``elapsed_s`` counts training time across resumes. After a resume the records past the
resumed step are moved to ``metrics.superseded.jsonl`` so the log has each step once.

Readers follow the file with :func:`read_metrics` and a cursor (inode and byte offset): a
resume rewrites the file, the inode changes, and the reader starts over (``restarted``).
"""
from __future__ import annotations

import json
import os
import resource
import sys
from dataclasses import dataclass
from pathlib import Path

METRICS_FILE = "metrics.jsonl"
SUPERSEDED_FILE = "metrics.superseded.jsonl"


@dataclass
class MetricsRead:
    records: list[dict]
    cursor: str           # pass back to the next read_metrics call
    restarted: bool       # True: drop what you had, ``records`` is the log from its start


def read_metrics(run_dir: str | os.PathLike, cursor: str | None = None) -> MetricsRead:
    """New complete records since ``cursor`` (all of them when ``cursor`` is None)."""
    path = Path(run_dir) / METRICS_FILE
    if not path.exists():
        return MetricsRead([], "0:0", cursor not in (None, "0:0"))
    inode, offset = (int(x) for x in (cursor or "0:0").split(":"))
    with open(path, "rb") as fh:
        st = os.fstat(fh.fileno())
        restarted = cursor is not None and (st.st_ino != inode or st.st_size < offset)
        if restarted or cursor is None:
            offset = 0
        fh.seek(offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1          # a line still being written is left for next time
    records = [json.loads(line) for line in data[:end].splitlines() if line.strip()]
    return MetricsRead(records, f"{st.st_ino}:{offset + end}", restarted)


class MetricsWriter:
    def __init__(self, run_dir: str | os.PathLike):
        self.path = Path(run_dir) / METRICS_FILE

    def rewind_to(self, step: int) -> int:
        """Keep the records up to ``step`` (a resume restarts after it); returns how many moved aside."""
        if not self.path.exists():
            return 0
        keep, drop = [], []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                (keep if json.loads(line)["step"] <= step else drop).append(line)
        if drop:
            with open(self.path.with_name(SUPERSEDED_FILE), "a", encoding="utf-8") as fh:
                fh.write("\n".join(drop) + "\n")
        tmp = self.path.with_suffix(".tmp")
        tmp.write_text("".join(line + "\n" for line in keep), encoding="utf-8")
        os.replace(tmp, self.path)          # new inode: readers notice and start over
        return len(drop)

    def write(self, record: dict) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(record) + "\n")


def peak_memory_mb() -> tuple[float, str]:
    """Peak memory of this process: CUDA max allocated on a GPU, else the peak resident set."""
    try:
        import torch
        if torch.cuda.is_available() and torch.cuda.is_initialized():
            return torch.cuda.max_memory_allocated() / 2**20, "cuda_max_allocated"
    except ImportError:
        pass
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss   # KiB on Linux, bytes on macOS
    return (rss / 2**20 if sys.platform == "darwin" else rss / 2**10), "cpu_rss_peak"
