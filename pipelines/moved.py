"""The module names before the capability folders, still answering.

Until 2026-12 ``pipelines/`` was one flat folder, and scripts, notes and job records name its
modules: ``python -m pipelines.evaluate …``, ``from pipelines.train_runs import list_runs``.
Both keep working: ``python -m`` runs the moved module's code as ``__main__`` exactly as before,
and an import gets the moved module itself (one module object, so classes and monkeypatches
are shared). ``pipelines.models`` is a folder now; its ``__main__.py`` runs the old command.
New code uses the new names; nothing in this repository imports through this table.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys

MOVED = {
    "errors": "pipelines.core.errors",
    "cli": "pipelines.core.cli",
    "jsonl": "pipelines.core.jsonl",
    "jobs": "pipelines.core.jobs",
    "run_lock": "pipelines.core.run_lock",
    "workspace": "pipelines.core.workspace",
    "schema": "pipelines.core.schema",
    "audit": "pipelines.core.audit",
    "auth": "pipelines.core.auth",
    "locality": "pipelines.core.locality",
    "exports": "pipelines.core.exports",
    "private_files": "pipelines.core.private_files",
    "safe_load": "pipelines.core.safe_load",
    "page_paths": "pipelines.core.page_paths",
    "quiet": "pipelines.core.quiet",
    "igakuqa": "pipelines.tasks.igakuqa",
    "prompts": "pipelines.tasks.prompts",
    "backends": "pipelines.models.backends",
    "generation": "pipelines.models.generation",
    "loglik": "pipelines.models.loglik",
    "structured": "pipelines.models.structured",
    "device_memory": "pipelines.models.device_memory",
    "serve_engine": "pipelines.models.server_engine",
    "serve": "pipelines.models.server",
    "documents": "pipelines.data.documents",
    "privacy": "pipelines.data.privacy",
    "qa_parse": "pipelines.data.qa_parse",
    "datagen": "pipelines.data.generate",
    "datagen_requests": "pipelines.data.chunk_requests",
    "datastore": "pipelines.data.store",
    "curate": "pipelines.data.curate",
    "curate_cli": "pipelines.data.curate_cli",
    "train": "pipelines.training.launch",
    "train_config": "pipelines.training.config",
    "train_data": "pipelines.training.data",
    "train_estimate": "pipelines.training.estimate",
    "train_metrics": "pipelines.training.metrics",
    "train_runs": "pipelines.training.runs",
    "train_worker": "pipelines.training.worker",
    "evaluate": "pipelines.evaluation.evaluator",
    "eval_jobs": "pipelines.evaluation.batches",
    "eval_summary": "pipelines.evaluation.summary",
    "metrics": "pipelines.evaluation.metrics",
    "scoring": "pipelines.evaluation.scoring",
    "significance": "pipelines.evaluation.significance",
    "paper_table": "pipelines.evaluation.paper_table",
    "reviews": "pipelines.evaluation.reviews",
    "freeform": "pipelines.evaluation.freeform",
    "merge": "pipelines.merging.evolve",
    "merge_data": "pipelines.merging.data",
    "merge_jobs": "pipelines.merging.jobs",
    "merge_methods": "pipelines.merging.methods",
    "merge_models": "pipelines.merging.inputs",
    "merge_report": "pipelines.merging.report",
    "merge_search": "pipelines.merging.search",
}


class _Alias(importlib.abc.Loader):
    def __init__(self, target: str):
        self.target = target

    def create_module(self, spec):
        return None                                  # the default module, replaced just below

    def exec_module(self, module) -> None:
        # The import system reads sys.modules again after exec_module: the old name now is the
        # moved module itself (and its own __spec__ stays untouched).
        sys.modules[module.__name__] = importlib.import_module(self.target)

    def get_code(self, fullname: str):
        """What ``runpy`` executes for ``python -m pipelines.OLD``: the moved module's code."""
        spec = importlib.util.find_spec(self.target)
        return spec.loader.get_code(self.target)


class _Finder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path=None, target=None):
        package, _, name = fullname.rpartition(".")
        if package != "pipelines" or name not in MOVED:
            return None
        moved = importlib.util.find_spec(MOVED[name])
        return importlib.machinery.ModuleSpec(fullname, _Alias(MOVED[name]), origin=moved.origin if moved else None)


def install() -> None:
    if not any(isinstance(f, _Finder) for f in sys.meta_path):
        sys.meta_path.append(_Finder())
