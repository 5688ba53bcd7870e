"""The Compare tab's handlers, called directly on a workspace with fake evaluation results:
answer cards that show a weak match, the CSV of what is shown (UTF-8 with BOM), form errors
as notices, and a blind review that stays blind until the reviewer's batch is done."""
from types import SimpleNamespace

import pytest

from pipelines.core import audit, auth
from pipelines.evaluation import reviews
from tests.workbench.fake_results import record, result_row
from workbench import compare_eval, compare_review, compare_view, i18n, tab_compare
from workbench.state import AppState


def as_user(name):
    return SimpleNamespace(username=name)


@pytest.fixture
def shown(workspace, tmp_path):
    nonsense = result_row("q1", 0, ["a"], response="ええと、その、あの", sims={"a": 0.06, "b": 0.04, "c": 0.0})
    base = record(workspace, tmp_path / "base", "default", [
        nonsense, result_row("q2", 0, ["b"], sims={"a": 0.1, "b": 0.9}), result_row("q2", 1, ["a"])])
    tuned = record(workspace, tmp_path / "tuned", "tuned", [
        result_row("q1", 0, ["a"], sims={"a": 0.95, "b": 0.1}), result_row("q2", 0, ["b"])])
    return [base, tuned]


@pytest.mark.parametrize("module", [tab_compare, compare_eval, compare_view, compare_review])
def test_every_message_has_japanese_and_english(module):
    for name in ("L", "MSG", "RATING", "HEAD"):
        for key, text in getattr(module, name, {}).items():
            assert set(text) == set(i18n.LANGS) and all(v.strip() for v in text.values()), f"{name}[{key!r}]"


def test_cards_show_a_weak_match_and_the_csv_holds_what_is_shown(workspace, shown):
    state = AppState(workspace)
    html, count, summary, download = compare_view.render_view(state, shown, False, False, "", 1, "ja")
    assert "弱い一致" in html and "類似度 0.06" in html
    assert "2 問中 2 問を表示" in count and "チェックポイント" in summary.columns
    path = download["value"]
    assert path.endswith("side_by_side_q.csv") and open(path, "rb").read(3) == b"\xef\xbb\xbf"
    # Disagreement is within one shot setting: default and tuned agree at 0-shot on both questions.
    _, count, _, download = compare_view.render_view(state, shown, True, False, "", 1, "en")
    assert count.startswith("0 of 2")
    assert open(download["value"], encoding="utf-8-sig").read().strip() == ""   # the CSV follows the filter
    assert audit.entries(workspace.root)[-1]["action"] == "view"


def test_form_problems_are_notices_in_the_page_language(workspace):
    state = AppState(workspace)
    status, *_ = compare_eval.start(state, [], [0], "ja", "q.jsonl", 0, 64, "ja")
    assert 'class="notice error"' in status and "チェックポイントを1つ以上" in status
    status, *_ = compare_eval.start(state, ["default"], [0], "ja", "q.jsonl", 0, 0, "en")
    assert "Max new tokens" in status
    status, *_ = compare_eval.start(state, ["default"], [0], "ja", str(workspace.root / "missing.jsonl"), 0, 8, "ja")
    assert 'class="notice error"' in status and "Traceback" not in status
    assert "「指示」" in next(tab_compare.ask(state, ["default"], " ", "", "ja", 8, "ja"))


def test_blind_review_hides_the_summary_until_the_batch_is_done(workspace, shown):
    state = AppState(workspace)
    dr = as_user("dr-a")
    queue, done, card, summary, msg = compare_review.begin(state, shown, "ja", dr)
    assert len(queue) == 5 and summary["visible"] is False and "ブラインド" in msg
    assert "default" not in card and "tuned" not in card                  # the card does not name the writer
    queue, done, card, summary, _ = compare_review.rate(state, None, queue, done, shown, "ja", dr)   # skip
    assert len(queue) == 5 and summary["visible"] is False
    for i in range(4):
        queue, done, card, summary, _ = compare_review.rate(state, "correct", queue, done, shown, "ja", dr)
        assert summary["visible"] is False, f"summary shown after {i + 1} of 5 ratings"
    # Change the last rating: the earlier one stays in the history.
    queue, done, card, summary, _ = compare_review.back(state, queue, done, shown, "ja", dr)
    assert "現在の評価: 正しい" in card
    changed = queue[0]
    queue, done, card, summary, _ = compare_review.rate(state, "harmful", queue, done, shown, "ja", dr)
    store = reviews.ReviewStore(workspace)
    assert [h["rating"] for h in store.history(changed, "dr-a")] == ["correct", "harmful"]
    queue, done, card, summary, _ = compare_review.rate(state, "wrong", queue, done, shown, "ja", dr)
    assert queue == [] and summary["visible"] is True and "評価数" in summary["value"].columns
    assert {r["reviewer"] for r in store.ratings()} == {"dr-a"}           # the logged-in user, never typed
    assert [e["action"] for e in audit.entries(workspace.root)].count("rate") == 6
    # Another reviewer starts blind; only an administrator may reveal early.
    *_, summary, _ = compare_review.begin(state, shown, "ja", as_user("dr-b"))
    assert summary["visible"] is False
    summary, msg = compare_review.reveal(state, shown, "ja", as_user("dr-b"))
    assert "管理者だけ" in msg and summary == {"__type__": "update"}
    auth.set_user(workspace.root, "chief", "a-long-password-1", role="admin")
    summary, _ = compare_review.reveal(state, shown, "en", as_user("chief"))
    assert summary["visible"] is True and sorted(summary["value"]["n"]) == [2, 3]   # per checkpoint


def test_a_missing_model_is_refused_in_the_page_language(workspace):
    """The pipeline's UserError (English for the CLI) is said in Japanese on a Japanese page."""
    state = AppState(workspace=workspace)
    ja = tab_compare.free_answer(state, "no-such-model", "質問", "", "plain", 8, "ja")
    assert "notice error" in ja and "モデル no-such-model が見つかりません" in ja and "not found" not in ja
    en = tab_compare.free_answer(state, "no-such-model", "question", "", "plain", 8, "en")
    assert "Model &#x27;no-such-model&#x27; not found" in en


def test_evaluation_progress_speaks_the_page_language():
    """Status words and a failed checkpoint's reason follow the page (they were always English)."""
    import time
    end = {"event": "error", "problem": "Model 'x' not found.", "fix": "Use 'default'.", "code": "model.not_found",
           "params": {"spec": "x"}}
    batch = {"tasks": [
        {"model": "default", "done": 1, "total": 4, "status": "running", "started_at": time.time() - 5,
         "ended_at": None, "error": ""},
        {"model": "x", "done": 0, "total": 4, "status": "failed", "started_at": time.time() - 5,
         "ended_at": time.time(), "error": "Model 'x' not found.", "end": end}]}
    ja = compare_eval.batch_html(batch, "ja")
    assert "— 実行中" in ja and "— 失敗" in ja and "モデル x が見つかりません" in ja and "— running" not in ja
    en = compare_eval.batch_html(batch, "en")
    assert "— running" in en and "Model &#x27;x&#x27; not found." in en


def test_stop_is_offered_only_while_a_batch_runs(workspace):
    assert compare_eval.stop_button(AppState(workspace=workspace))["interactive"] is False


def test_a_server_model_joins_the_checkpoints_and_loglik_is_checked_before_a_job(workspace, tmp_path):
    from pipelines.core.repo import ASSETS
    state = AppState(workspace)
    msg, update = compare_eval.add_server_model(state, "gpt-4o", ["default"], "ja", None)
    assert 'class="notice error"' in msg and "openai-completions:MODEL@URL" in msg and update == {"__type__": "update"}
    spec = "openai-completions:tuned@http://127.0.0.1:9/v1"
    msg, update = compare_eval.add_server_model(state, spec, ["default"], "en", None)
    assert "Added" in msg and update["value"] == ["default", spec] and spec in [v for _, v in update["choices"]]
    assert workspace.model(spec)["kind"] == "endpoint"
    assert audit.entries(workspace.root)[-1]["object"] == f"model:{spec}"
    data = str(ASSETS / "questions" / "sample_ja.jsonl")
    chat = "openai:tuned@http://127.0.0.1:9/v1"
    status, *_ = compare_eval.start(state, [chat], [0], "ja", data, 1, 8, "ja", "loglik")
    assert 'class="notice error"' in status and "openai-completions:MODEL@URL" in status   # said before any job
    assert compare_eval.eval_jobs.latest_batch(workspace.subdir("jobs")) is None
    status, cmd, *_ = compare_eval.start(state, [spec], [0], "ja", data, 1, 8, "ja", "both")
    assert "--method both" in cmd and spec in cmd
    from pipelines.core import jobs
    jobs.stop(compare_eval.eval_jobs.latest_batch(workspace.subdir("jobs"))["run_dir"], grace_s=5)


def test_published_predictions_are_imported_and_shown_marked_as_imported(workspace):
    from pathlib import Path
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "igakuqa"
    pred, data = sorted(fixtures.glob("*_gpt4.jsonl"))[0], None
    data = next(p for p in fixtures.glob("*.jsonl") if p.name == pred.name.replace("_gpt4", ""))
    local = workspace.root / "imports"
    local.mkdir()
    for f in fixtures.glob(data.stem + "*.jsonl"):
        (local / f.name).write_bytes(f.read_bytes())          # a page reads the workspace, not tests/
    state = AppState(workspace)
    msg, update = compare_eval.import_predictions(state, str(local / pred.name), str(local / data.name), "", [], "ja")
    assert 'class="notice ok"' in msg and "取り込みました" in msg and "GPT-4" in msg, msg
    label = next(lab for lab, v in update["choices"] if v == update["value"][0])
    assert "取り込んだ予測" in label and "GPT-4" in label
    msg, _ = compare_eval.import_predictions(state, str(pred), str(data), "", [], "en")
    assert "outside the folders this page may read" in msg        # tests/fixtures is not readable from a page
    msg, _ = compare_eval.import_predictions(state, "", str(local / data.name), "", [], "ja")
    assert "両方を指定" in msg
