"""A full disk in each pipeline: the message names the path and the free space, reaches the
job's events (not only the terminal), and what was saved before stays whole."""
from __future__ import annotations

import errno
import json
import os
import sqlite3

import pytest

from pipelines.core import audit, jobs
from pipelines.core.errors import UserError
from pipelines.data import dataset_export
from pipelines.data import generate as datagen
from pipelines.data import store as datastore
from pipelines.data.dataset_export import ExportConfig
from tests.pipelines.fake_openai_server import FakeOpenAIServer
from tests.pipelines.test_datagen import config as datagen_config  # noqa: F401 (fixture)
from tests.pipelines.test_datagen import docs, pairs_reply


def test_sqlite_full_during_datagen_is_an_error_event_naming_the_registry(docs, workspace, tmp_path,  # noqa: F811
                                                                          monkeypatch):
    with FakeOpenAIServer(pairs_reply) as srv:
        datagen.run(datagen_config(docs, workspace, srv, concurrency=1))          # a first, whole run
        before = datastore.count_records(workspace, "demo")

        def full(*a, **kw):
            raise sqlite3.OperationalError("database or disk is full")
        monkeypatch.setattr(datastore, "ingest", full)
        job_dir = tmp_path / "job"
        job_dir.mkdir()
        events = jobs.EventWriter(job_dir)
        with pytest.raises(sqlite3.OperationalError):
            with jobs.reporting(events):
                datagen.run(datagen_config(docs, workspace, srv, dataset="other", concurrency=1), events)
    (err,) = [e for e in jobs.read_events(job_dir)[0] if e["event"] == "error"]
    assert err["problem"].startswith("The disk is full: could not write the workspace registry")
    assert "MB free" in err["problem"] and err["fix"]
    assert datastore.count_records(workspace, "demo") == before                      # earlier records whole


def test_export_on_a_full_disk_keeps_the_earlier_file_and_leaves_no_partial_one(workspace, monkeypatch):
    datastore.add_records(workspace, "d", [{"instruction": "心不全の定義を説明してください。", "input": "",
                                            "output": "心臓のポンプ機能が低下した臨床症候群です。"}])
    first = dataset_export.export(ExportConfig(dataset="d", format="alpaca", out="d.jsonl", workspace=str(workspace.root)))
    target = workspace.root / "exports" / "d.jsonl"
    before = target.read_bytes()

    class FullFile:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def writelines(self, lines):
            raise OSError(errno.ENOSPC, "No space left on device")

    real_fdopen = os.fdopen

    def full_fdopen(fd, mode="r", *a, **kw):          # the export's fresh temporary file (mkstemp)
        f = real_fdopen(fd, mode, *a, **kw)
        return FullFile(f) if "w" in mode else f
    monkeypatch.setattr(os, "fdopen", full_fdopen)
    with pytest.raises(UserError, match="The disk is full") as err:
        dataset_export.export(ExportConfig(dataset="d", format="alpaca", out="d.jsonl", overwrite=True,
                                   workspace=str(workspace.root)))
    monkeypatch.undo()
    assert str(target) in err.value.problem and "MB free" in err.value.problem
    assert target.read_bytes() == before and not list(target.parent.glob("*.tmp"))
    exports = [e for e in audit.entries(workspace.root) if e["action"] == "export"]
    assert len(exports) == 1 and exports[0]["detail"]["path"] == first["path"]


def test_generation_start_and_finish_are_audited(docs, workspace, monkeypatch):  # noqa: F811
    monkeypatch.setenv(audit.USER_ENV, "dr_sato")
    with FakeOpenAIServer(pairs_reply) as srv:
        datagen.run(datagen_config(docs, workspace, srv))
    gen = [e for e in audit.entries(workspace.root) if e["action"] == "generate"]
    assert [(e["user"], e["object"], e["detail"]["phase"]) for e in gen] == [
        ("dr_sato", "dataset:demo", "start"), ("dr_sato", "dataset:demo", "finish")]
    assert json.loads(json.dumps(gen[-1]["detail"]))["dataset_records"] > 0


def _small_disk_problem() -> str | None:
    import shutil
    import subprocess
    if shutil.which("unshare") is None:
        return "unshare is not installed (util-linux)"
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=1m tmpfs /mnt"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"cannot mount a tmpfs in a mount namespace: {probe.stderr.strip()}"


def test_a_merge_saving_onto_a_really_full_disk_says_so_and_leaves_no_partial_model(workspace, tiny_llama_dir,
                                                                                   tmp_path):
    """A real 3 MB disk (tmpfs in a private mount namespace): the merged model (13 MB) cannot fit.
    safetensors reported it as its own SafetensorError, a traceback; now the disk-full message names the
    folder, and the half-written model.tmp is removed (its space given back)."""
    import subprocess
    import sys
    problem = _small_disk_problem()
    if problem:
        pytest.skip(problem)
    from tests.conftest import REPO, SAMPLE_QUESTIONS
    dev = tmp_path / "dev.jsonl"
    dev.write_text("".join(SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines(keepends=True)[:8]),
                   encoding="utf-8")
    mnt = tmp_path / "small"
    mnt.mkdir()
    script = ('mount -t tmpfs -o size=3m tmpfs "$1" && "$2" -m pipelines.merging.evolve --inputs "$3" "$3" --base "$3" '
              '--method task_arithmetic --dev "$4" --budget 4 --population 4 --out "$1/m" --workspace "$5"; '
              'echo "exit=$?"; ls "$1/m"')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(mnt), sys.executable, str(tiny_llama_dir),
                           str(dev), str(workspace.root)], cwd=REPO, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "exit=2" in out, out
    assert f"The disk is full: could not write {mnt}/m/model" in out, out
    assert "model.tmp" not in proc.stdout.split("exit=2", 1)[1] and "candidates.jsonl" in proc.stdout, out


def test_datagen_filling_a_really_full_disk_names_the_registry_and_its_free_space(tmp_path):
    """The workspace on a real 600 KB disk: SQLite fills it mid-run. The registry's path and the real
    free space are named (it measured the server's working folder before), the access log verifies, and
    no "cannot rollback" replaces the error (SQLite had rolled back already)."""
    import subprocess
    import sys
    problem = _small_disk_problem()
    if problem:
        pytest.skip(problem)
    from tests.conftest import REPO
    docs = tmp_path / "docs"
    docs.mkdir()
    for i in range(30):
        (docs / f"d{i}.txt").write_text("\n".join("心不全の知見。" * 20 for _ in range(40)), encoding="utf-8")
    script = tmp_path / "run.py"
    script.write_text(
        "import hashlib, sys\n"
        "from tests.pipelines.fake_openai_server import FakeOpenAIServer\n"
        "from pipelines import datagen\n"
        "def reply(prompt):\n"
        "    tag = hashlib.sha1(prompt.encode()).hexdigest()[:6]\n"
        "    return '\\n'.join(f\"{i}. 'instruction': 質問{tag}-{i}は何か？{'長い' * 300}, 'output': 回答{tag}-{i}\""
        " for i in range(1, 4))\n"
        "with FakeOpenAIServer(reply) as srv:\n"
        "    datagen.main(['--docs', sys.argv[1], '--dataset', 'd', '--model', 'fake-model', '--base-url', srv.base_url,"
        " '--workspace', sys.argv[2]])\n", encoding="utf-8")
    ws = tmp_path / "ws"
    ws.mkdir()
    cmd = ('mount -t tmpfs -o size=600k tmpfs "$1" && "$2" "$3" "$4" "$1"; echo "exit=$?"; '
           '"$2" -m pipelines.core.audit verify --workspace "$1"; echo "verify=$?"')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", cmd, "sh", str(ws), sys.executable, str(script), str(docs)],
                          cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True,
                          timeout=600)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "cannot rollback" not in out and "exit=2" in out, out
    assert f"The disk is full: could not write {ws}/registry.sqlite (0 MB free there)" in out, out
    assert "verify=0" in out, out


def test_training_onto_a_really_full_disk_says_disk_full_not_out_of_memory(tiny_llama_dir, workspace, tmp_path):
    """A run folder on a real 400 KB disk: the first checkpoint does not fit, and the worker cannot even
    write why. It read as "killed, out of memory"; the launcher's reaper died with a traceback too."""
    import subprocess
    import sys
    problem = _small_disk_problem()
    if problem:
        pytest.skip(problem)
    from tests.conftest import REPO
    run = tmp_path / "run"
    run.mkdir()
    cmd = ('mount -t tmpfs -o size=400k tmpfs "$1" && "$2" -m pipelines.training.launch --preset cpu-tiny-lora --model "$3" '
           '--data "$4" --max-steps 4 --save-steps 2 --out "$1/r" --workspace "$5"; echo "exit=$?"')
    proc = subprocess.run(["unshare", "-m", "sh", "-c", cmd, "sh", str(run), sys.executable, str(tiny_llama_dir),
                           str(REPO / "assets" / "sample_instructions.jsonl"), str(workspace.root)],
                          cwd=REPO, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out and "exit=1" in out, out
    assert f"the disk holding {run}/r is full" in out and "out of memory" not in out, out
