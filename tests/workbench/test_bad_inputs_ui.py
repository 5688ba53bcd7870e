"""The bad-input corpus (tests/bad_inputs/) driven through the page's handlers: every one ends in
an error notice that names the problem, nothing starts, and no traceback reaches the page. In
Japanese the notice is Japanese: no English words beyond the browser test's allow-list of names
and the words of the user's own file (its keys and values are data, quoted back)."""
from __future__ import annotations

import html as htmllib
import json
import math
import re
from pathlib import Path

import pytest

from tests.workbench.test_browser_ja import english_words
from workbench import compare_eval, data_handlers, train_handlers
from workbench.state import AppState

CORPUS = Path(__file__).resolve().parents[1] / "bad_inputs"
LANGS = ("ja", "en")
# Keys of the Alpaca and IgakuQA formats: the user writes them as they are, so the message quotes them.
FORMAT_KEYS = {"instruction", "input", "output", "answer", "choices", "points"}


@pytest.fixture(autouse=True)
def corpus_is_readable(monkeypatch):
    """The corpus lies outside any workspace: the administrator allows its folder, as a hospital would
    allow a share (pipelines/core/page_paths.py), so what is tested is the files' own problems."""
    monkeypatch.setenv("JMEDLORA_READ_DIRS", str(CORPUS))


def _refused(html: str, lang: str = "en", source: Path | None = None) -> None:
    assert "notice error" in html, html
    assert "Traceback" not in html and 'File "' not in html, html
    if lang == "ja":
        text = htmllib.unescape(re.sub(r"<[^>]+>", " ", html))
        assert re.search(r"[\u3040-\u30ff\u4e00-\u9fff]", text), text
        data = english_words(source.read_text(encoding="utf-8", errors="replace")) if source else set()
        assert english_words(text) - data - FORMAT_KEYS == set(), text


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("alpaca_*")))
@pytest.mark.parametrize("lang", LANGS)
def test_bad_imports_are_refused_in_the_data_tab(workspace, name, lang):
    html, choices = data_handlers.import_jsonl(AppState(workspace=workspace), str(CORPUS / name), "bad", lang)
    _refused(html, lang, CORPUS / name)
    assert data_handlers.dataset_names(AppState(workspace=workspace)) == []


@pytest.mark.parametrize("name", sorted(p.name for p in CORPUS.glob("questions_*")))
@pytest.mark.parametrize("lang", LANGS)
def test_bad_question_files_are_refused_in_the_compare_tab(workspace, name, lang):
    state = AppState(workspace=workspace)
    html, *_ = compare_eval.start(state, ["default"], [0], "ja", str(CORPUS / name), 0, 16, lang)
    _refused(html, lang, CORPUS / name)
    assert not list((workspace.root / "jobs").glob("*")) if (workspace.root / "jobs").exists() else True


def _form(**bad):
    values, other = train_handlers.preset_values("cpu-tiny-lora")
    form = dict(zip(train_handlers.FORM, values), **bad)
    return [form[f] for f in train_handlers.FORM], other


@pytest.mark.parametrize("bad", [
    {"learning_rate": math.inf}, {"learning_rate": math.nan}, {"learning_rate": 10.0}, {"batch_size": -8},
    {"lora_dropout": 1.0}, {"max_steps": 0}, {"save_steps": "ten"}, {"learning_rate": None},
])
@pytest.mark.parametrize("lang", LANGS)
def test_impossible_hyperparameters_are_refused_in_the_train_tab(workspace, bad, lang):
    values, other = _form(**bad)
    out = train_handlers.launch(AppState(workspace=workspace), "cpu-tiny-lora", *values, other, lang)
    _refused(out[0], lang)
    assert train_handlers.runs_frame(workspace, "ja").empty


@pytest.mark.parametrize("preset", ["preset_not_json.json", "preset_unknown_field.json"])
@pytest.mark.parametrize("lang", LANGS)
def test_broken_preset_files_are_refused_in_the_train_tab(workspace, preset, lang):
    values, other = _form()
    out = train_handlers.launch(AppState(workspace=workspace), str(CORPUS / preset), *values, other, lang)
    _refused(out[0], lang, CORPUS / preset)


@pytest.mark.parametrize("lang", LANGS)
def test_bad_other_settings_json_is_refused(workspace, lang):
    values, _ = _form()
    out = train_handlers.launch(AppState(workspace=workspace), "cpu-tiny-lora", *values, "{not json", lang)
    _refused(out[0], lang)
    out = train_handlers.launch(AppState(workspace=workspace), "cpu-tiny-lora", *values,
                                json.dumps({"warmup_steps": -3}), lang)
    _refused(out[0], lang)
    if lang == "ja":       # a field without a widget is named as it is written in the JSON box, once per mention
        assert "「その他の設定（JSON）の warmup_steps」" in out[0] and "の 「" not in out[0], out[0]


def test_a_preset_given_as_a_path_names_a_run_inside_the_workspace(workspace, tmp_path):
    """The default run folder takes the preset file's stem: a path never leads the run out of
    WORKSPACE/runs (it once landed beside the preset file)."""
    from pipelines.training import launch as train
    from pipelines.training.config import PRESET_DIR, make_config
    own = tmp_path / "my-preset.json"
    own.write_text((PRESET_DIR / "cpu-tiny-lora.json").read_text(encoding="utf-8"), encoding="utf-8")
    config = make_config(str(own), workspace=str(workspace.root))
    train.default_out(config, workspace)
    assert Path(config.out).parent == workspace.root / "runs" and Path(config.out).name.startswith("my-preset-")
