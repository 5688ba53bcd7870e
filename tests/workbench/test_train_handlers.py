"""The Train tab's handlers, called as the page calls them but without a browser."""
import functools
import json
import re
import time
from pathlib import Path
from types import SimpleNamespace

from pipelines.core import audit
from pipelines.training import launch as train
from pipelines.training import runs as train_runs
from workbench import app
from workbench import train_handlers as h
from workbench.state import AppState


def test_an_idle_train_tab_writes_nothing_to_the_workspace(workspace, sql_writes):
    run_dir = workspace.subdir("runs") / "r1"
    run_dir.mkdir()
    train_runs.write_json(run_dir / "config.json", {"config": {"run_name": "r1", "max_steps": 8}})
    train_runs.update_status(run_dir, status="finished", step=8, max_steps=8)
    train_runs.register_run(workspace, "id1", "r1", run_dir)
    """The 2-second timer only reads: an open page must not take SQLite's write lock, which a
    training run or a data generation needs."""
    demo = app.build_app(AppState(workspace=workspace, lang="en"))
    tick = next(f.fn for f in demo.fns.values() if isinstance(f.fn, functools.partial) and f.fn.func is h.tick)
    sql_writes.clear()
    for _ in range(30):                       # one minute of the timer
        frame, choices, progress, *_ = tick(str(run_dir), "en")
    assert list(frame["run"]) == ["r1"] and "r1" in progress
    assert sql_writes == []


REQUEST = SimpleNamespace(username="dr-sato")


def form(preset: str, **changes) -> list:
    values, other = h.preset_values(preset)
    fields = dict(zip(h.FORM, values), **changes)
    return [fields[f] for f in h.FORM] + [other]


def test_presets_read_in_either_language_with_their_command_and_field_labels():
    ja, en = h.preset_text("cpu-tiny-lora", "ja"), h.preset_text("cpu-tiny-lora", "en")
    assert "約2分" in ja and "**学習率**" in ja and "`jmedlora train --preset cpu-tiny-lora`" in ja
    assert "two minutes" in en and "**Learning rate**" in en and "同梱" not in en
    values, description = h.on_preset("opencalm-7b-lora", "ja")[:-2], h.on_preset("opencalm-7b-lora", "ja")[-1]
    assert values[h.FORM.index("learning_rate")] == 5e-5 and "論文" in description


def test_form_errors_name_the_field_in_the_page_language(workspace):
    state = AppState(workspace=workspace)
    msg, _ = h.estimate(state, "cpu-tiny-lora", *form("cpu-tiny-lora", learning_rate=0), "ja")
    assert "notice error" in msg and "「学習率」" in msg and "learning_rate" not in msg
    other = json.dumps({"warmup_steps": -1})
    msg, _ = h.estimate(state, "cpu-tiny-lora", *form("cpu-tiny-lora")[:-1], other, "ja")
    assert "notice error" in msg and "「その他の設定（JSON）の warmup_steps」" in msg and "--warmup" not in msg
    msg, _ = h.estimate(state, "cpu-tiny-lora", *form("cpu-tiny-lora", save_steps="a,b"), "en")
    assert "positive whole numbers" in msg


def test_estimate_is_written_in_japanese(workspace, tiny_llama_dir):
    msg, cli = h.estimate(AppState(workspace=workspace), "cpu-tiny-lora",
                          *form("cpu-tiny-lora", model=str(tiny_llama_dir)), "ja")
    assert "notice info" in msg and "1台あたりのメモリ" in msg and "活性化" in msg and "ステップで約" in msg, msg
    # The command box, hidden while empty, shows with the command in it.
    assert "Memory per device" not in msg and cli["value"].startswith("jmedlora train") and cli["visible"]
    assert h.command_box("")["visible"] is False


def test_launch_from_the_page_runs_as_the_user_and_the_monitor_speaks_japanese(workspace, tiny_llama_dir, tmp_path,
                                                                               monkeypatch):
    envs = []
    real_start = train.jobs.start
    monkeypatch.setattr(train.jobs, "start", lambda *a, **kw: envs.append(kw.get("env")) or real_start(*a, **kw))
    state = AppState(workspace=workspace)
    assert "ランを選んでください" in h.stop(state, None, "ja")
    values = form("cpu-tiny-lora", model=str(tiny_llama_dir), max_steps=2, save_steps="2", run_name="ui-run")
    msg, cli, choice, runs, stop_btn = h.launch(state, "cpu-tiny-lora", *values, "ja", request=REQUEST)
    assert "学習を開始しました：ui-run" in msg and stop_btn["interactive"], msg
    assert cli["visible"] and cli["value"].startswith("jmedlora train")
    assert envs[-1]["JMEDLORA_USER"] == "dr-sato"
    run_dir = choice["value"]
    deadline = time.time() + 240
    while train_runs.run_status(run_dir)["status"] in train_runs.ACTIVE:
        assert time.time() < deadline, (Path(run_dir) / "train.log").read_text()[-2000:]
        time.sleep(0.5)
    progress, fig, log, ckpts, stop_btn = h.monitor(run_dir, "ja")
    assert "完了" in progress and "ETA" not in progress and "残り" not in progress
    assert fig.layout.xaxis.title.text == "ステップ" and {t.name for t in fig.data} <= {"損失", "学習率"}
    assert list(ckpts.columns) == ["チェックポイント", "ステップ", "学習時間（時間）", "場所"] and len(ckpts)
    assert "logbox" in log and "examples: 80" in log and not stop_btn["interactive"]
    assert "実行中ではありません" in h.stop(state, run_dir, "ja")
    frame = h.runs_frame(workspace, "ja")
    assert list(frame["状態"]) == ["完了"]
    seen = [(e["user"], e["action"], e["object"]) for e in audit.entries(workspace.root)]
    assert ("dr-sato", "train", "ui-run") in seen             # the click, recorded by the page
    assert ("dr-sato", "train", "run:ui-run") in seen         # the run itself, by the worker (JMEDLORA_USER)


def test_checks_before_training_speak_japanese(workspace, tiny_llama_dir):
    """Errors found once the model is opened (here: target modules it does not have, a missing
    data file) name the form's fields in Japanese, not flags."""
    from tests.workbench.test_browser_ja import english_words
    state = AppState(workspace=workspace)
    msg = h.launch(state, "cpu-tiny-lora", *form("cpu-tiny-lora", model=str(tiny_llama_dir), target_modules="nope"),
                   "ja")[0]
    assert "対象モジュール nope はこのモデルにありません" in msg and "「対象モジュール（カンマ区切り）」" in msg, msg
    assert english_words(re.sub(r"<[^>]+>", " ", msg)) - {"nope"} == set(), msg
    missing = workspace.root / "missing.jsonl"                   # inside what a page may read, not there
    msg = h.launch(state, "cpu-tiny-lora", *form("cpu-tiny-lora", model=str(tiny_llama_dir), data=str(missing)),
                   "ja")[0]
    assert f"学習データ {missing} が見つかりません" in msg and "--data" not in msg, msg


def test_exam_questions_in_the_training_data_are_said_before_training(workspace, tiny_llama_dir, tmp_path):
    from pipelines.core.repo import ASSETS
    from pipelines.tasks.igakuqa import load_questions
    q = load_questions(ASSETS / "questions" / "sample_ja.jsonl").questions[2]
    data = workspace.root / "leaky.jsonl"
    rows = [{"instruction": "高血圧の第一選択薬は？", "input": "", "output": "カルシウム拮抗薬などです。"},
            {"instruction": q.problem_text + "\n" + "\n".join(q.choices), "input": "", "output": q.choices[0]}]
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    state = AppState(workspace=workspace)
    msg, _ = h.estimate(state, "cpu-tiny-lora", *form("cpu-tiny-lora", model=str(tiny_llama_dir), data=str(data)), "ja")
    assert "学習データに含まれています" in msg and q.problem_id in msg and "sample_ja.jsonl" in msg, msg
    msg, _ = h.estimate(state, "cpu-tiny-lora", *form("cpu-tiny-lora", model=str(tiny_llama_dir), data=str(data)), "en")
    assert "are in its training data" in msg and "jmedlora contamination --train" in msg
    data.write_text(json.dumps(rows[0], ensure_ascii=False) + "\n", encoding="utf-8")
    msg, _ = h.estimate(state, "cpu-tiny-lora", *form("cpu-tiny-lora", model=str(tiny_llama_dir), data=str(data)), "ja")
    assert "学習データに含まれて" not in msg
