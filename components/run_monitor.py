"""A background job seen from the UI: a progress bar with counts and ETA, status, log tail.

The status word and "ETA" are shown in the page's language; the ETA appears once, from the
caller's own estimate when it has one (a training run's), else from the rate so far."""
from __future__ import annotations

import html
from pathlib import Path

CSS = """
.runmon{border:1px solid #d0d7de;border-radius:8px;padding:8px 10px;margin:4px 0;background:#fff;color:#1f2328}
.runmon .bar{height:10px;background:#eaeef2;border-radius:5px;overflow:hidden;margin:6px 0}
.runmon .bar>div{height:100%;background:#0969da;transition:width .4s}
.runmon.failed .bar>div{background:#cf222e}.runmon.finished .bar>div{background:#1a7f37}
.runmon .meta{font-size:12px;color:#57606a}
.runmon .err{color:#a40e26;white-space:pre-wrap;font-size:13px;margin-top:4px}
.logbox{display:flex;flex-direction:column-reverse;max-height:18em;overflow:auto;border:1px solid #d0d7de;
  border-radius:8px;background:#f6f8fa}
.logbox pre{margin:0;padding:6px 8px;font-size:12px;white-space:pre-wrap;word-break:break-all;color:#1f2328}
"""


STATUS = {
    "queued": {"ja": "待機中", "en": "queued"}, "running": {"ja": "実行中", "en": "running"},
    "stopping": {"ja": "停止中", "en": "stopping"}, "finished": {"ja": "完了", "en": "finished"},
    "failed": {"ja": "失敗", "en": "failed"}, "stopped": {"ja": "停止済み", "en": "stopped"},
    "dead": {"ja": "異常終了", "en": "dead"},
}
ETA = {"ja": "残り約", "en": "ETA"}


def status_word(status: str, lang: str = "en") -> str:
    return STATUS[status][lang] if status in STATUS else status


def format_seconds(s: float | None) -> str:
    if s is None or s != s or s < 0:
        return "–"
    s = int(round(s))
    h, rem = divmod(s, 3600)
    m, sec = divmod(rem, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def progress_html(title: str, done: int, total: int | None, *, status: str = "running",
                  detail: str = "", elapsed: float | None = None, error: str = "", eta_s: float | None = None,
                  lang: str = "en") -> str:
    """``status`` is one of queued / running / finished / failed / stopped."""
    frac = (done / total) if total else (1.0 if status == "finished" else 0.0)
    frac = min(max(frac, 0.0), 1.0)
    eta = ""
    if status == "running" and eta_s is None and total and done and elapsed:
        eta_s = elapsed / done * (total - done)
    if status == "running" and eta_s is not None:
        eta = f" · {ETA.get(lang, ETA['en'])} {format_seconds(eta_s)}"
    count = f"{done}/{total}" if total else ""
    took = f" · {format_seconds(elapsed)}" if elapsed else ""
    err = f'<div class="err">{html.escape(error)}</div>' if error else ""
    return (f'<div class="runmon {html.escape(status)}" role="progressbar" aria-valuenow="{round(frac * 100)}" '
            f'aria-valuemin="0" aria-valuemax="100"><b>{html.escape(title)}</b> — '
            f'{html.escape(status_word(status, lang))} '
            f'<span class="meta">{count}{took}{eta} {html.escape(detail)}</span>'
            f'<div class="bar"><div style="width:{frac * 100:.1f}%"></div></div>{err}</div>')


def log_html(text: str) -> str:
    """A log tail whose newest line is in view: the box is laid out bottom-up (column-reverse),
    so it opens scrolled to its end and stays there as lines arrive, without any script."""
    return f'<div class="logbox" tabindex="0"><pre>{html.escape(text)}</pre></div>'


def tail(path: str | Path, lines: int = 40, max_bytes: int = 64_000) -> str:
    """The last lines of a (possibly growing, possibly missing) log file."""
    p = Path(path)
    if not p.exists():
        return ""
    with open(p, "rb") as fh:
        fh.seek(0, 2)
        size = fh.tell()
        fh.seek(max(0, size - max_bytes))
        data = fh.read().decode("utf-8", errors="replace")
    # tqdm redraws with carriage returns: keep the last state of each line.
    out = [ln.rstrip("\r").rsplit("\r", 1)[-1] for ln in data.rstrip("\n").split("\n")]
    return "\n".join(out[-lines:])
