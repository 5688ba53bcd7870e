"""What the running app holds between requests: the workspace, the embedded model's
preparation (started in the background at launch, so the first page never waits for it),
and the backends opened for free-form prompts (evaluation batches are jobs on disk).
"""
from __future__ import annotations

import json

import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.core.workspace import Workspace


@dataclass
class BackendSlot:
    status: str = "idle"         # idle | loading | ready | failed
    error: str = ""
    failure: UserError | None = None   # the error itself, so the page can say it in its language
    backend: object = None       # pipelines.models.backends.Backend once ready
    seconds: float = 0.0


@dataclass
class AppState:
    workspace: Workspace
    lang: str = "ja"
    default_status: str = "idle"        # idle | preparing | ready | failed
    default_error: str = ""
    backends: dict[str, BackendSlot] = field(default_factory=dict)
    # (training file, mtime) -> its BM25 index (pipelines.evaluation.nearest.Bm25), built once for
    # the Compare tab's nearest records; workbench.compare_nearest keeps the latest few
    nearest_indexes: dict = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    # -- the embedded default model ----------------------------------------------
    def prepare_default_in_background(self) -> None:
        from pipelines.models.references import default_model_dir

        if (default_model_dir(self.workspace) / "config.json").exists():
            self.default_status = "ready"
            if not self.workspace.model("default"):
                self.workspace.register_model("default", "base", str(default_model_dir(self.workspace)), step=0)
            return
        self.default_status = "preparing"
        threading.Thread(target=self._prepare_default, daemon=True, name="prepare-default").start()

    def _prepare_default(self) -> None:
        from pipelines.models.references import ensure_default_model
        try:
            ensure_default_model(self.workspace)
            self.default_status = "ready"
        except UserError as exc:
            self.default_status, self.default_error = "failed", str(exc)
        except Exception as exc:  # shown in the header; the rest of the app keeps working
            self.default_status, self.default_error = "failed", f"{type(exc).__name__}: {exc}"
            traceback.print_exc()

    # -- backends for free-form prompts -------------------------------------------
    def backend(self, spec: str) -> BackendSlot:
        """Open (once) and return the backend for a reference; blocks the calling worker only."""
        from pipelines.models.backends import open_backend

        with self._lock:
            slot = self.backends.setdefault(spec, BackendSlot())
            if slot.status == "ready":
                return slot
            slot.status, slot.error = "loading", ""
        t0 = time.perf_counter()
        try:
            slot.backend = open_backend(spec, self.workspace)
            slot.status, slot.seconds = "ready", time.perf_counter() - t0
        except UserError as exc:
            slot.status, slot.error, slot.failure = "failed", str(exc), exc
        except Exception as exc:
            slot.status, slot.error = "failed", f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        return slot

    def model_choices(self) -> list[tuple[str, str]]:
        """(label, reference) for every usable checkpoint: base models are step 0."""
        rows = [m for m in self.workspace.models() if m["kind"] in ("base", "adapter", "merged", "endpoint")
                and not _is_report_merge(m)]       # a merged VLM answers images, not exam questions
        out = [("default (SmolLM2-135M-Instruct · step 0)", "default")]
        for m in rows:
            if m["name"] == "default":
                continue
            step = m.get("step")
            extra = f" · step {step}" if step is not None else ""
            base = f" · {m['base_model']}" if m.get("base_model") else ""
            out.append((f"{m['name']}{base}{extra}", m["name"]))
        return out


def _is_report_merge(model: dict) -> bool:
    try:
        return json.loads(model.get("meta") or "{}").get("task") == "report"
    except (ValueError, AttributeError):
        return False


def evals_root(ws: Workspace) -> Path:
    return ws.subdir("evals")
