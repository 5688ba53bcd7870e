"""The ``jmedlora`` command: one entry point, one subcommand per pipeline.

    jmedlora --help                      # every subcommand with one line each
    jmedlora evaluate --model default --data assets/questions/sample_ja.jsonl --out workspace/evals/x
    jmedlora train --preset cpu-tiny-lora

``jmedlora NAME ARGS`` runs NAME's module exactly as ``python -m MODULE ARGS`` would (as
``__main__``, so Ctrl-C, exit codes and file permissions behave the same either way); its flags
come from that module's config dataclass (``pipelines/core/cli.py``). Jobs the workbench starts
run ``python -m MODULE`` (no dependence on PATH or on the console script being installed) and
are shown to people in the ``jmedlora NAME`` form (``display``).

This table names modules as strings and imports none of them: ``--help`` stays instant (each
line is the module docstring's first line, read without importing torch), and ``core`` keeps
importing no other capability.
"""
from __future__ import annotations

import ast
import difflib
import importlib.util
import runpy
import sys

# Subcommand → module, grouped as ``--help`` lists them.
GROUPS: dict[str, dict[str, str]] = {
    "data": {
        "documents": "pipelines.data.documents",
        "privacy": "pipelines.data.privacy",
        "datagen": "pipelines.data.generate",
        "curate": "pipelines.data.curate",
        "reports": "pipelines.data.report_import",
    },
    "training": {
        "train": "pipelines.training.launch",
        "estimate": "pipelines.training.estimate",
        "distributed": "pipelines.training.distributed",
    },
    "evaluation": {
        "evaluate": "pipelines.evaluation.evaluator",
        "significance": "pipelines.evaluation.significance",
        "insights": "pipelines.evaluation.insights_cli",
        "table": "pipelines.evaluation.paper_table",
        "compute": "pipelines.evaluation.compute",
        "igakuqa": "pipelines.tasks.igakuqa",
        "contamination": "pipelines.evaluation.contamination",
        "nearest": "pipelines.evaluation.nearest",
    },
    "merging": {
        "merge": "pipelines.merging.evolve",
    },
    "models and serving": {
        "models": "pipelines.models.references",
        "serve": "pipelines.models.server",
    },
    "workspace and access": {
        "workspace": "pipelines.core.workspace",
        "audit": "pipelines.core.audit",
        "auth": "pipelines.core.auth",
    },
    # What the workbench's own jobs run; listed last, rarely typed by hand.
    "started by the workbench": {
        "train-worker": "pipelines.training.worker",
        "eval-batch": "pipelines.evaluation.batches",
    },
}
COMMANDS: dict[str, str] = {name: module for group in GROUPS.values() for name, module in group.items()}
_BY_MODULE = {module: name for name, module in COMMANDS.items()}


def summary(module: str) -> str:
    """The first line of a module's docstring, read from its source (nothing is imported)."""
    spec = importlib.util.find_spec(module)
    source = spec.loader.get_source(module) if spec and spec.loader else None
    doc = ast.get_docstring(ast.parse(source)) if source else None
    if not doc:
        return ""
    line = " ".join(doc.strip().split("\n\n")[0].split()).replace("``", "")     # the first paragraph
    return line if len(line) <= 100 else line[:99].rsplit(" ", 1)[0] + " …"


def usage() -> str:
    width = max(map(len, COMMANDS)) + 2
    lines = ["usage: jmedlora COMMAND [ARGS…]   (jmedlora COMMAND --help for its flags)", "",
             "JMedLoRA workbench: medical documents → instruction data → fine-tuned, evaluated, merged models,",
             "on this machine. The workbench UI is `python launch.py`."]
    for group, commands in GROUPS.items():
        lines += ["", f"{group}:"]
        lines += [f"  {name:<{width}}{summary(module)}" for name, module in commands.items()]
    return "\n".join(lines)


def display(cmd: list[str]) -> str | None:
    """``[python, -m, MODULE, ARGS…]`` as a person types it (``jmedlora NAME ARGS…``); None if MODULE is no command."""
    if len(cmd) >= 3 and cmd[1] == "-m" and cmd[2] in _BY_MODULE:
        import shlex
        return shlex.join(["jmedlora", _BY_MODULE[cmd[2]], *cmd[3:]])
    return None


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        try:
            print(usage(), flush=True)
        except BrokenPipeError:                        # `jmedlora --help | head`: the reader had enough
            sys.stdout = None
        raise SystemExit(0 if argv else 2)
    name, rest = argv[0], argv[1:]
    module = COMMANDS.get(name) or COMMANDS.get(name.replace("_", "-"))
    if module is None:
        close = difflib.get_close_matches(name, COMMANDS, n=1)
        hint = f" Did you mean: jmedlora {close[0]}?" if close else ""
        print(f"error: jmedlora has no command {name!r}.{hint} The list: jmedlora --help", file=sys.stderr)
        raise SystemExit(2)
    sys.argv = [f"jmedlora {name}", *rest]
    runpy.run_module(module, run_name="__main__", alter_sys=True)


if __name__ == "__main__":
    main()
