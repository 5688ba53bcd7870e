"""One command, ``jmedlora``, and the names from before the capability folders still answering.

``pipelines/core/commands.py`` is the table; ``pipelines/moved.py`` the old names;
``tests/fixtures/workspace-e107a21`` a workspace written by the last version before the move
(``tests/fixtures/make_workspace_e107a21.py`` made it, run at that commit).
"""
from __future__ import annotations

import importlib
import os
import shutil
import stat
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pipelines.core import commands, jobs
from pipelines.moved import MOVED

REPO = Path(__file__).resolve().parents[2]
OLD_WORKSPACE = REPO / "tests" / "fixtures" / "workspace-e107a21"
# Every ``python -m pipelines.NAME`` that existed before the folders (scripts and notes use them).
OLD_COMMANDS = ["audit", "auth", "curate", "datagen", "documents", "eval_jobs", "evaluate", "igakuqa", "merge",
                "models", "paper_table", "privacy", "serve", "significance", "train", "train_estimate",
                "train_worker", "workspace"]


def _run(*args: str, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([*args], cwd=REPO, capture_output=True, text=True, timeout=timeout)


def jmedlora() -> str:
    """The console script ``make`` installs next to this interpreter (``pip install -e .``)."""
    path = Path(sys.executable).with_name("jmedlora")
    if not path.exists():
        pytest.fail(f"{path} is missing. Fix: make test (it installs this checkout into .venv)")
    return str(path)


def test_help_lists_every_command_with_one_line_and_imports_nothing():
    text = commands.usage()
    for name, module in commands.COMMANDS.items():
        line = next(ln for ln in text.splitlines() if ln.startswith(f"  {name} "))
        assert len(line.split(None, 1)[1]) > 20, line               # the module docstring's first sentence
        assert len(line) <= 120, line
    heavy = _run(sys.executable, "-c", "import sys; from pipelines.core import commands; commands.usage();"
                 "print(sorted(m for m in ('torch', 'transformers', 'gradio') if m in sys.modules))")
    assert heavy.stdout.strip() == "[]", heavy.stderr


def test_a_wrong_name_suggests_the_right_one(capsys):
    with pytest.raises(SystemExit) as exc:
        commands.main(["evalute"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "jmedlora has no command 'evalute'" in err and "jmedlora evaluate" in err and "Traceback" not in err


def test_jobs_run_the_module_and_show_the_jmedlora_line():
    cmd = jobs.command("evaluate", "--model", "default", "--out", "e x")
    assert cmd[:3] == [sys.executable, "-m", "pipelines.evaluation.evaluator"]
    assert jobs.shell_line(cmd) == "jmedlora evaluate --model default --out 'e x'"
    assert jobs.shell_line([sys.executable, "-m", "tests.pipelines.tiny_job", "3"]) == \
        "python -m tests.pipelines.tiny_job 3"


def test_an_old_import_name_is_the_moved_module_itself():
    import pipelines.training.runs as new
    old = importlib.import_module("pipelines.train_runs")
    assert old is new and new.__spec__.name == "pipelines.training.runs"
    from pipelines.eval_jobs import DriverConfig      # noqa: F401  (the form scripts use)
    assert set(MOVED) >= set(OLD_COMMANDS) - {"models"}


@pytest.mark.slow
def test_jmedlora_and_every_subcommand_answer_help_from_the_installed_script():
    exe = jmedlora()
    top = _run(exe, "--help")
    assert top.returncode == 0 and "usage: jmedlora COMMAND" in top.stdout
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(commands.COMMANDS, pool.map(lambda n: _run(exe, n, "--help"), commands.COMMANDS)))
    for name, proc in results.items():
        assert proc.returncode == 0 and proc.stdout.startswith(f"usage: jmedlora {name}"), (name, proc.stderr[-500:])


@pytest.mark.slow
def test_every_old_python_m_name_still_answers_help():
    with ThreadPoolExecutor(2) as pool:
        results = dict(zip(OLD_COMMANDS, pool.map(lambda n: _run(sys.executable, "-m", f"pipelines.{n}", "--help"),
                                                  OLD_COMMANDS)))
    for name, proc in results.items():
        assert proc.returncode == 0 and proc.stdout.startswith("usage: jmedlora "), (name, proc.stderr[-500:])


def test_a_workspace_from_before_the_move_opens(tmp_path):
    from pipelines.core import audit
    from pipelines.core.workspace import Workspace
    root = tmp_path / "ws"
    shutil.copytree(OLD_WORKSPACE, root)
    for p in root.rglob("*"):                                # git keeps no owner-only modes
        os.chmod(p, stat.S_IRWXU if p.is_dir() else stat.S_IRUSR | stat.S_IWUSR)
    ws = Workspace.resolve(root)
    (ev,) = ws.evaluations()
    assert ev["status"] == "finished" and ev["summary"]["by_shots"]["0"]["n"] == 4
    assert audit.verify(root).ok
    run = root / "evals" / "tiny-loglik"
    st = jobs.status(run)
    assert st["status"] == "finished" and st["command"][2] == "pipelines.evaluate"
    # The command that job record holds still names a runnable module.
    proc = _run(sys.executable, "-m", st["command"][2], "--help")
    assert proc.returncode == 0 and proc.stdout.startswith("usage: jmedlora evaluate"), proc.stderr


def test_output_into_a_pipe_whose_reader_has_gone_ends_quietly(tmp_path):
    """``jmedlora … | head``: head exits after its lines; the command then ends with 141 (128 + SIGPIPE,
    as a command stopped by the closed pipe reports) and no traceback. (``--help`` was quiet already:
    argparse drops a failed write of its help.)"""
    env = {**os.environ, "JMEDLORA_WORKSPACE": str(tmp_path / "ws")}
    proc = subprocess.Popen([jmedlora(), "workspace", "--json"], cwd=REPO, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env)
    proc.stdout.close()             # the reader goes before the command (its imports take longer) writes
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=120) == 141, err
    assert "Traceback" not in err and "BrokenPipeError" not in err and "Exception ignored" not in err, err
