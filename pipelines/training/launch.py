"""Launch, follow and resume training runs (LoRA, QLoRA, continual pretraining).

    jmedlora train --preset cpu-tiny-lora --out workspace/runs/try1
    jmedlora train --preset opencalm-7b-lora --model /models/open-calm-7b \\
        --data medical_qa --save-steps 1000,3000,10000 --max-steps 10000 --num-processes 4 --out runs/ocalm
    jmedlora train --resume workspace/runs/try1
    jmedlora train --preset llama2-70b-qlora --model /models/llama2-70b --estimate

Every TrainConfig field (``pipelines/training/config.py``) is also a flag (``--lora-r 16``,
``--learning-rate 1e-4``, ``--loss-on all``); a preset fills the fields first, flags override it.
Cheap checks run before anything starts (the data is tokenized once, by the run itself), and a
warning names exam questions found in the training data (``contamination_warnings``). The run
is a job (``pipelines.core.jobs``: ``accelerate launch`` on GPUs, ``torchrun`` for several CPU
processes) in its own session, writing to ``OUT/train.log`` and ``OUT/events.jsonl``, so neither
a closed terminal nor a restarted UI stops it; ``--detach`` returns at once.
The training loop is in ``pipelines/training/worker.py``; run files in ``pipelines/training/runs.py``.
"""
from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shlex
import subprocess
import sys
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from pipelines.core import cli, commands, jobs, run_lock
from pipelines.core.errors import Interrupted, UserError, cli_guard
from pipelines.core.jobs import Job as LaunchedRun
from pipelines.core.repo import REPO
from pipelines.core.workspace import Workspace
from pipelines.tasks import overlap
from pipelines.training import data as train_data
from pipelines.training import distributed as train_distributed
from pipelines.training import runs as train_runs
from pipelines.training.config import (  # noqa: F401 (re-exported)
    METHODS,
    TrainConfig,
    available_presets,
    data_path,
    load_preset,
    make_config,
    prepare,
)
from pipelines.training.estimate import EstimateOptions, config_from, print_estimate, train_parser

# -- launching -----------------------------------------------------------------------

def worker_command(config: TrainConfig, run_dir: Path, device: str) -> list[str]:
    """GPU: accelerate launch (DDP/FSDP/DeepSpeed per its config); several CPU processes: torchrun (gloo).
    With an accelerate config file (``distributed.py``), checked here for launch and resume alike."""
    if config.accelerate_config:
        plan = train_distributed.check_run(config.accelerate_config, num_processes=config.num_processes,
                                           method=config.method, device=device)
        return train_distributed.machine_command(plan, run_dir)
    worker = ["-m", commands.COMMANDS["train-worker"], str(run_dir)]
    if device == "cpu" and config.num_processes > 1:
        # accelerate launch --cpu starts a single process; torchrun really starts N.
        return [sys.executable, "-m", "torch.distributed.run", "--standalone",
                "--nproc_per_node", str(config.num_processes)] + worker
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--num_processes", str(config.num_processes),
           "--num_machines", "1", "--dynamo_backend", "no"]
    if device == "cpu":
        cmd += ["--cpu"]
    elif config.num_processes > 1:
        cmd += ["--multi_gpu"]
    mp = {"bf16": "bf16", "fp16": "fp16"}.get(config.precision, "no")
    return cmd + ["--mixed_precision", mp] + worker


def equivalent_cli(config: TrainConfig) -> str:
    """The `jmedlora train` line that makes the same run (for the UI's preview)."""
    base = make_config(config.preset) if config.preset else TrainConfig()
    args = ["jmedlora", "train"] + (["--preset", config.preset] if config.preset else [])
    for f in dataclasses.fields(TrainConfig):
        value = getattr(config, f.name)
        if f.name == "preset" or value == getattr(base, f.name) or value is None:
            continue
        flag = "--" + f.name.replace("_", "-")
        if isinstance(value, bool):
            args.append(flag if value else "--no-" + f.name.replace("_", "-"))
        else:
            args += [flag, ",".join(map(str, value)) if isinstance(value, list) else str(value)]
    return shlex.join(args)


def default_out(config: TrainConfig, ws: Workspace) -> None:
    """WORKSPACE/runs/NAME-TIME when no --out is given. A preset given as a file path names the run
    by its stem, so the run stays under WORKSPACE/runs (a full path once led it beside the preset)."""
    if not config.out:
        name = Path(config.preset).stem if config.preset else config.method
        config.out = str(ws.subdir("runs") / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")


def launch(config: TrainConfig, *, on_exit: Callable[[int], None] | None = None,
           workspace: Workspace | None = None, user: str | None = None) -> LaunchedRun:
    """Check everything, create the run directory and start the run in the background.

    ``user``: who started it (the workbench's logged-in user), passed to the job as $JMEDLORA_USER."""
    ws = workspace or Workspace.resolve(config.workspace)
    config.workspace = str(ws.root)
    default_out(config, ws)
    run_dir = run_lock.output_folder(config.out, "training run", create=False).resolve()
    config.out = str(run_dir)
    config.run_name = config.run_name or run_dir.name
    config.data = data_path(config.data)
    if (run_dir / "config.json").exists():
        raise UserError(f"{run_dir} already holds a training run.",
                        f"Resume it (jmedlora train --resume {run_dir}) or choose another --out.",
                        code="train.out_taken", params={"path": str(run_dir)})
    taken = [m["name"] for m in ws.models() if m["name"].startswith(config.run_name + "@")]
    if taken:
        raise UserError(f"Checkpoints named {config.run_name}@… already exist in the workspace ({taken[0]}).",
                        "Pass another --run-name or --out.",
                        code="train.name_taken",
                        params={"name": config.run_name, "taken": str(taken[0]), "field": "run_name"})
    info = prepare(config, ws)
    run_id = uuid.uuid4().hex[:12]
    run_lock.output_folder(run_dir, "training run")
    train_runs.write_json(run_dir / "config.json", {"config": asdict(config), "resolved": {**info, "run_id": run_id}})
    train_runs.write_json(run_dir / "run_card.json", _run_card(config, info, run_id))
    train_runs.update_status(run_dir, status="queued", run_id=run_id, step=0, max_steps=config.max_steps,
                             **jobs.say("train.starting", "starting"), created_at=time.time())
    train_runs.register_run(ws, run_id, config.run_name, run_dir)
    return _spawn(config, run_dir, run_id, info["device"], on_exit, user)


def resume(run_dir: str | os.PathLike, *, on_exit: Callable[[int], None] | None = None, user: str | None = None,
           **overrides) -> LaunchedRun:
    """Start a stopped, failed or killed run again from its newest training state.

    ``overrides`` may extend it (``max_steps``, ``save_steps``, eval settings, ``num_processes``).
    """
    run_dir = Path(run_dir).resolve()
    saved = train_runs.read_json(run_dir / "config.json")
    if not saved:
        raise UserError(f"{run_dir} is not a training run (no config.json).", "Pass the --out directory of a run.",
                        code="train.not_a_run", params={"path": str(run_dir)})
    status = train_runs.run_status(run_dir)
    if status["status"] in train_runs.ACTIVE and status.get("pid"):
        raise UserError(f"Run {run_dir.name} is still {status['status']} (pid {status['pid']}).", "Stop it first.",
                        code="train.still_running",
                        params={"name": run_dir.name, "status": status["status"], "pid": status["pid"]})
    allowed = {"max_steps", "save_steps", "eval_data", "eval_limit", "eval_template", "num_processes",
               "micro_batch_size", "resume_every", "logging_steps", "accelerate_config"}
    changed = {k: v for k, v in overrides.items() if v is not None}
    if set(changed) - allowed:
        raise UserError(f"{sorted(set(changed) - allowed)} cannot change on resume (they define the run).",
                        f"Start a new run for that; on resume you may change {', '.join(sorted(allowed))}.",
                        code="train.resume_changed",
                        params={"fields": sorted(set(changed) - allowed), "known": ", ".join(sorted(allowed))})
    config = TrainConfig(**{**saved["config"], **changed})
    config.validate()
    # A kill between saving a checkpoint and registering it: the checkpoint is complete, register it now.
    late = train_runs.register_pending(Workspace.resolve(config.workspace), run_dir)
    point = train_runs.latest_resume_point(run_dir)
    if point and point[0] >= config.max_steps:
        raise UserError(f"Run {run_dir.name} already reached step {point[0]} of {config.max_steps}"
                        + (f" (registered {', '.join(late)} now, saved before the run was killed)." if late else "."),
                        "Pass a larger --max-steps to train further.",
                        code="train.already_done",
                        params={"name": run_dir.name, "step": point[0], "max_steps": config.max_steps,
                                "field": "max_steps"})
    saved["config"] = asdict(config)
    train_runs.write_json(run_dir / "config.json", saved)
    (run_dir / train_runs.STOP_FILE).unlink(missing_ok=True)
    step = point[0] if point else 0
    train_runs.update_status(run_dir, status="queued", **jobs.say("train.resuming", f"resuming from step {step}",
                                                                  step=step),
                             max_steps=config.max_steps, exit_code=None)
    return _spawn(config, run_dir, saved["resolved"]["run_id"], saved["resolved"]["device"], on_exit, user)


def _spawn(config: TrainConfig, run_dir: Path, run_id: str, device: str, on_exit, user: str | None = None) -> LaunchedRun:
    command = worker_command(config, run_dir, device)
    here = train_distributed.read_config(config.accelerate_config).per_machine if config.accelerate_config \
        else config.num_processes
    env = {"OMP_NUM_THREADS": str(max(1, (os.cpu_count() or 1) // here)), **({"JMEDLORA_USER": user} if user else {})}
    return jobs.start(run_dir, command, kind="train", cli=equivalent_cli(config),
                      log_name="train.log", env=env, on_exit=on_exit, run_id=run_id)


def join_commands(config: TrainConfig, run_dir: str | os.PathLike) -> list[str]:
    """What each other machine of a several-machine run types to join it (none for one machine)."""
    if not config.accelerate_config:
        return []
    return train_distributed.join_commands(train_distributed.read_config(config.accelerate_config), run_dir)


def _run_card(config: TrainConfig, info: dict, run_id: str) -> dict:
    import platform

    import torch
    versions = {}
    for pkg in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "datasets"):
        try:
            versions[pkg] = __import__(pkg).__version__
        except Exception:  # an optional package missing or broken is recorded, not fatal
            versions[pkg] = None
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True,
                                timeout=5).stdout.strip() or None
        dirty = bool(subprocess.run(["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True,
                                    timeout=5).stdout.strip())
    except (OSError, subprocess.SubprocessError):
        commit, dirty = None, None
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return {"run_id": run_id, "run_name": config.run_name, "created_at": time.time(), "config": asdict(config),
            "dataset": {"spec": config.data, "name": info["data_name"], "path": info["data_path"],
                        "hash": info["data_hash"], "n_examples": info["n_examples"],
                        "n_truncated": None, "tokens": None},        # the worker counts these as it tokenizes
            "base_model": {"reference": config.model, "path": info["base_model_path"]},
            "versions": {"python": platform.python_version(), **versions},
            "git": {"commit": commit, "dirty": dirty},
            "hardware": {"device": info["device"], "gpus": gpus, "cpu_count": os.cpu_count(),
                         "platform": platform.platform(), "num_processes": config.num_processes},
            "resumes": []}


# -- following -----------------------------------------------------------------------

def follow(run_dir: str | os.PathLike, on_event: Callable[[dict], None] | None = None, poll_s: float = 1.0,
           offset: int = 0) -> dict:
    """Block until the run ends, passing each event after byte ``offset`` of its events.jsonl."""
    jobs.follow(run_dir, on_event, poll_s, offset)
    return train_runs.run_status(run_dir)


def run(config: TrainConfig, on_event: Callable[[dict], None] | None = None) -> dict:
    """Launch a run and wait for it to end; returns the final status record."""
    launched = launch(config)
    (on_event or (lambda e: None))({"event": "launched", "run_dir": launched.run_dir, "pid": launched.pid,
                                    "command": launched.command, "cli": launched.cli})
    return follow(launched.run_dir, on_event)


# -- CLI -----------------------------------------------------------------------------

@dataclass
class LaunchOptions(EstimateOptions):
    resume: str | None = field(default=None, metadata=cli.metavar("RUN_DIR"))  # continue a run from its newest save
    stop: str | None = field(default=None, metadata=cli.metavar("RUN"))
    """stop a (detached) run, by directory or run name: it saves a resume point, then exits"""
    detach: bool = False                # return once the run has started
    estimate: bool = False              # print the memory and time estimate and exit
    force: bool = False                 # launch even with settings far outside the usual range


def build_parser() -> argparse.ArgumentParser:
    return train_parser("train", __doc__, LaunchOptions)


# Far above any LoRA/QLoRA/CPT learning rate that trains (the paper: 5e-5 and 2e-4): most often
# a lost minus sign in the exponent (3e4 for 3e-4).
MAX_SANE_LEARNING_RATE = 1e-2


def check_ranges(config: TrainConfig, force: bool) -> None:
    """Refuse values no run can use (nan, inf); settings that are legal but almost surely a typo need --force."""
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if isinstance(value, float) and not math.isfinite(value):
            raise UserError(f"{f.name} is {value}.", f"Pass a finite number to --{f.name.replace('_', '-')}.",
                            code="config.not_finite", params={"field": f.name, "value": value, "default": f.default})
    if config.learning_rate > MAX_SANE_LEARNING_RATE:
        if not force:
            raise UserError(f"learning_rate {config.learning_rate:g} is far above the usual range "
                            f"(1e-5 … 1e-3; above {MAX_SANE_LEARNING_RATE:g} a run diverges).",
                            "Check the exponent (3e-4, not 3e4), or pass --force to train with it anyway.",
                            code="train.lr_too_high",
                            params={"field": "learning_rate", "value": f"{config.learning_rate:g}",
                                    "limit": f"{MAX_SANE_LEARNING_RATE:g}"})
        print(f"warning: learning_rate {config.learning_rate:g} is far above the usual range (--force given).",
              file=sys.stderr)


def contamination_checks(config: TrainConfig, ws: Workspace) -> tuple[Path | None, list[overlap.ContaminationCheck]]:
    """Before a run: (its training file, one check per exam it will be evaluated on) — the exam
    questions its training data holds (``pipelines.tasks.overlap``). Data the check cannot read (a
    saved-dataset folder, raw text) gives no checks: the run's own checks report data it cannot use."""
    try:
        source = train_data.resolve_data(data_path(config.data), ws)
        return Path(source.path), overlap.check_before_training(
            source.path, overlap.exam_files(ws, [config.eval_data]), workspace=ws)
    except (UserError, OSError):         # unreadable here: the run's own checks say what is wrong
        return None, []


def contamination_warnings(config: TrainConfig, ws: Workspace) -> list[str]:
    """``contamination_checks`` as warning lines, one per question file with flagged questions; a
    warning, not a refusal."""
    train_file, checks = contamination_checks(config, ws)
    lines = []
    for c in checks:
        if c.flagged_ids:
            shown = ", ".join(c.flagged_ids[:5]) + (", …" if len(c.flagged_ids) > 5 else "")
            details = f"jmedlora contamination --train {shlex.quote(str(train_file))} --data " \
                      + shlex.quote(c.questions_file)
            lines.append(f"warning: {len(c.flagged_ids)} of {c.n_questions} questions in {c.questions_file} are in "
                         f"the training data ({shown}); their scores will overstate the model. Details: {details}")
    return lines


def find_run(spec: str, ws: Workspace) -> Path:
    """A run directory, or the run of that name in the workspace."""
    if (Path(spec) / "config.json").exists():
        return Path(spec).resolve()
    runs = train_runs.list_runs(ws)
    for r in runs:
        if r["run_name"] == spec:
            return Path(r["run_dir"])
    raise UserError(f"No training run {spec!r} (neither a run directory nor a run name in {ws.root}).",
                    "Known runs: " + (", ".join(r["run_name"] for r in runs[:10]) or "none yet") + ".",
                    code="train.no_run",
                    params={"spec": spec, "known": ", ".join(r["run_name"] for r in runs[:10]) or "—"})


def next_steps(run_dir: Path) -> str:
    """What a finished run made, by the names the other commands take."""
    names = [c["name"] for c in train_runs.list_checkpoints(run_dir)]
    if not names:
        return ""
    return (f"checkpoints: {', '.join(names)}\n"
            f"evaluate one: jmedlora evaluate --model {names[-1]} --out evals/{names[-1].replace('@', '-')}\n"
            f"serve one:    jmedlora serve --model {names[-1]}")


@cli_guard
def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    opts = cli.config_from_args(LaunchOptions, args)
    ws = Workspace.resolve(args.workspace)
    if opts.stop:
        final = train_runs.stop_run(find_run(opts.stop, ws))
        print(f"{final['status']}: {final.get('message', '')}")
        return
    offset = 0
    if opts.resume:
        # Follow only what this resumption writes: the events before it were shown by the first run.
        events = Path(opts.resume) / jobs.EVENTS
        offset = events.stat().st_size if events.exists() else 0
        overrides = {k: v for k, v in cli.given(TrainConfig, args).items() if k != "workspace"}
        launched = resume(opts.resume, **overrides)
    else:
        config = config_from(args)
        check_ranges(config, opts.force)
        if opts.estimate:
            config.validate()                    # an estimate of an impossible run is refused like the run
            print_estimate(config, opts, ws)
            return
        for line in contamination_warnings(config, ws):
            print(line, file=sys.stderr)
        launched = launch(config, workspace=ws)
    print(f"run: {launched.run_dir}\npid: {launched.pid}\ncommand: {launched.command_line}\n"
          f"log: {Path(launched.run_dir) / 'train.log'}", flush=True)
    saved = TrainConfig(**train_runs.read_json(Path(launched.run_dir) / "config.json")["config"])
    for line in join_commands(saved, launched.run_dir):
        print(f"join from the next machine (in the repository, run folder shared): {line}", flush=True)
    if opts.detach:
        print(f"stop it with: jmedlora train --stop {launched.run_dir}")
        return

    def show(e: dict) -> None:
        if e["event"] == "progress":
            print(f"step {e['step']:>6}  loss {e['loss']:.4f}  lr {e['lr']:.2e}  {e['tokens_per_s']:.0f} tok/s  "
                  f"eta {e['eta_s'] / 60:.1f} min", flush=True)
    try:
        final = follow(launched.run_dir, show, offset=offset)
    except KeyboardInterrupt:
        print("\nstopping (saving a resume point)…", file=sys.stderr)
        final = train_runs.stop_run(launched.run_dir)
        print(f"{final['status']}: {final.get('message', '')}")
        raise Interrupted(f"jmedlora train --resume {launched.run_dir}") from None
    print(f"{final['status']}: {final.get('message', '')}")
    if final["status"] == "failed":
        raise SystemExit(1)
    if final["status"] == "finished" and (hint := next_steps(Path(launched.run_dir))):
        print(hint)


if __name__ == "__main__":
    main()
