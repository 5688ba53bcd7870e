"""The merge search as a job (``pipelines/core/jobs.py``): what the workbench starts, follows and stops.

    job = merge_jobs.start_merge(MergeConfig(inputs=(...), dev=..., out=...), workspace)
    merge_jobs.merge_status(job.run_dir)     # job status, candidates so far, the report once written
    jobs.stop(job.run_dir)                   # STOP file: the search stops after the current candidate

The job directory is the merge's ``--out`` directory, so one STOP file serves both the job runner
and ``pipelines.merging.evolve``, and ``--resume`` of a stopped job is a new start on the same directory.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

from pipelines.core import jobs
from pipelines.core.workspace import Workspace
from pipelines.merging.evolve import MergeConfig
from pipelines.merging.search import best_so_far, read_candidates

KIND = "merge"


def command_for(config: MergeConfig) -> list[str]:
    """``jmedlora merge`` with every setting that differs from the config's default."""
    defaults = MergeConfig()
    args: list[str] = []
    for f in dataclasses.fields(MergeConfig):
        value = getattr(config, f.name)
        if value == getattr(defaults, f.name) or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else f"--no-{f.name.replace('_', '-')}")
        elif isinstance(value, (list, tuple)):
            args += [flag, *map(str, value)]
        else:
            args += [flag, str(value)]
    return jobs.command("merge", *args)


def start_merge(config: MergeConfig, workspace: Workspace | str | None = None) -> jobs.Job:
    """Start the merge (or its resume, with ``config.resume``) as a background job in its --out directory."""
    ws = workspace if isinstance(workspace, Workspace) else Workspace.resolve(workspace)
    config = dataclasses.replace(config, workspace=str(ws.root))
    if config.resume and not config.out:
        config = dataclasses.replace(config, out=config.resume)
    if not config.resume:
        config.validate()               # refuse plain mistakes here, not in a job log
    return jobs.start(config.out, command_for(config), kind=KIND)


def merge_status(out: str | Path) -> dict:
    """What the Merge tab shows: the job's status, each candidate's score and the best so far
    (from ``candidates.jsonl``, so a resumed search draws its whole history), and the report."""
    out = Path(out)
    st = jobs.status(out) if (out / "status.json").exists() else {"status": "none"}
    candidates = read_candidates(out / "candidates.jsonl")
    report_path = out / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.exists() else None
    return {**st, "candidates": candidates, "best_so_far": best_so_far(candidates), "report": report}
