"""Translating report findings (English → Japanese): the glossary match and check by hand-built examples,
and whole runs against a real HTTP server on loopback (canned Japanese), through the real client."""
from __future__ import annotations

import json
import shlex
import shutil

import pytest

from pipelines.core.errors import UserError
from pipelines.core.locality import Pinned
from pipelines.core.repo import ASSETS
from pipelines.data import endpoint, report_import
from pipelines.data import translate as tr
from pipelines.data.endpoint import PrivacyBlocked
from pipelines.tasks import reports
from tests.pipelines.fake_openai_server import FakeOpenAIServer

GLOSSARY = tr.load_glossary()


def names(terms) -> list[str]:
    return [t.en[0] for t in terms]


# -- the glossary -----------------------------------------------------------------------

def test_shipped_glossary_is_big_enough_and_has_the_standard_terms():
    assert len(GLOSSARY.terms) >= 40 and GLOSSARY.version == "1" and len(GLOSSARY.hash) == 12
    required = {t.en[0]: t.ja[0] for t in GLOSSARY.terms}
    assert required["cardiomegaly"] == "心拡大" and required["pleural effusion"] == "胸水"
    assert required["consolidation"] == "浸潤影" and required["no acute cardiopulmonary process"] == "急性の心肺病変なし"


def test_match_whole_words_plurals_and_case():
    assert names(tr.match_terms("Mild cardiomegaly. No pleural effusion.", GLOSSARY)) == \
        ["cardiomegaly", "pleural effusion"]
    assert names(tr.match_terms("Small bilateral pleural effusions.", GLOSSARY)) == ["bilateral", "pleural effusion"]
    assert names(tr.match_terms("EFFUSION on the left.", GLOSSARY)) == ["pleural effusion"]
    # Inside another word: not the term.
    assert tr.match_terms("noneffusion; massive; fractureless", GLOSSARY) == []
    # Spread over a line break: still the term.
    assert names(tr.match_terms("pleural\n effusion", GLOSSARY)) == ["pleural effusion"]


def test_longer_terms_win_over_the_shorter_ones_inside_them():
    assert names(tr.match_terms("Small pericardial effusion.", GLOSSARY)) == ["pericardial effusion"]
    assert names(tr.match_terms("Tortuous aorta. Aortic calcification.", GLOSSARY)) == \
        ["tortuous aorta", "aorta", "calcification"]
    assert names(tr.match_terms("No acute cardiopulmonary process.", GLOSSARY)) == ["no acute cardiopulmonary process"]


def test_missing_terms_flags_what_the_translation_lacks():
    source = "Mild cardiomegaly. No pleural effusion."
    assert tr.missing_terms(source, "軽度の心拡大を認める。", GLOSSARY) == ["pleural effusion"]
    assert tr.missing_terms(source, "軽度の心拡大を認める。胸水なし。", GLOSSARY) == []
    # Any accepted rendering passes: 透過性低下 for an opacity.
    assert tr.missing_terms("Left basilar opacity.", "左肺底部に透過性低下を認める。", GLOSSARY) == []
    assert tr.missing_terms("Left basilar opacity.", "左下肺野に影あり。", GLOSSARY) == ["opacity"]


def test_prompt_is_japanese_and_names_the_required_renderings():
    prompt = tr.render_prompt("Mild cardiomegaly. No pleural effusion. {braces}", GLOSSARY)
    assert prompt.startswith("あなたは経験豊富な放射線科医です。") and "「…を認める」「…なし」" in prompt
    assert "- cardiomegaly → 心拡大\n- pleural effusion → 胸水\n" in prompt
    assert prompt.endswith("英語の所見：\nMild cardiomegaly. No pleural effusion. {braces}\n日本語の所見：")
    assert "必ず指定の訳語" not in tr.render_prompt("Normal study.", GLOSSARY)


def test_clean_translation_drops_wrappers():
    assert tr.clean_translation("```\n日本語の所見：「心拡大を認める。」\n```") == "心拡大を認める。"
    assert tr.clean_translation("  胸水なし。 ") == "胸水なし。"


def test_bad_glossary_files(tmp_path):
    with pytest.raises(UserError) as info:
        tr.load_glossary(tmp_path / "none.json")
    assert info.value.code == "translate.glossary_missing"
    (tmp_path / "g.json").write_text('{"terms": [{"en": ["mass"], "ja": []}]}', encoding="utf-8")
    with pytest.raises(UserError) as info:
        tr.load_glossary(tmp_path / "g.json")
    assert info.value.code == "translate.glossary_bad"


# -- whole runs -----------------------------------------------------------------------------

CANNED = {"Mild cardiomegaly. No pleural effusion.": "軽度の心拡大を認める。",          # 胸水 left out: flagged
          "No acute cardiopulmonary process.": "```\n急性の心肺病変なし。\n```",
          "Right lower lobe consolidation.": "右下葉に浸潤影を認める。"}


def reply(prompt: str) -> str:
    source = prompt.split("英語の所見：\n")[1].split("\n日本語の所見：")[0]
    return CANNED[source]


@pytest.fixture
def report_file(tmp_path):
    folder = tmp_path / "cxr"
    folder.mkdir()
    for name in ("a", "b", "c", "d"):
        shutil.copy(ASSETS / "reports" / "normal_pa.png", folder / f"{name}.png")
    rows = [{"id": "a", "image": "a.png", "findings_ja": "", "findings_en": "Mild cardiomegaly. No pleural effusion."},
            {"id": "b", "image": "b.png", "findings_ja": "", "findings_en": "No acute cardiopulmonary process.",
             "metadata": {"source": "iu"}},
            {"id": "c", "image": "c.png", "findings_ja": "既存の訳。", "findings_en": "Right lower lobe consolidation."},
            {"id": "d", "image": "d.png", "findings_ja": "", "findings_en": "Right lower lobe consolidation."}]
    path = folder / "reports.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def config(path, srv, ws, **kw) -> tr.TranslateConfig:
    return tr.TranslateConfig(file=str(path), model="fake-model", base_url=srv.base_url, retry_base=0.01,
                              workspace=str(ws.root), **kw)


def test_translation_written_with_provenance_and_flags(report_file, workspace):
    with FakeOpenAIServer(reply) as srv:
        summary = tr.run(config(report_file, srv, workspace))
        assert srv.requests == 3, summary          # c has Japanese already: not asked
    out = report_file.with_name("reports_ja.jsonl")
    assert summary["out"] == str(out) and summary["translated"] == 3 and summary["asked"] == 3
    assert summary["cached"] == 0 and summary["flagged"] == 1 and summary["flagged_ids"] == {"a": ["pleural effusion"]}
    samples = {s.id: s for s in reports.load_reports(out)}     # loads with the Japanese now required
    assert samples["a"].findings_ja == "軽度の心拡大を認める。" and samples["b"].findings_ja == "急性の心肺病変なし。"
    assert samples["c"].findings_ja == "既存の訳。" and "translation" not in samples["c"].metadata
    prov = samples["a"].metadata["translation"]
    assert prov["model"] == "fake-model" and prov["endpoint"] == "local" and prov["glossary_missing"] == ["pleural effusion"]
    assert prov["glossary"] == GLOSSARY.provenance() and prov["prompt_version"] == tr.PROMPT_VERSION
    assert len(prov["prompt_hash"]) == 64 and prov["time"].endswith("+00:00")
    assert samples["b"].metadata["source"] == "iu" and samples["b"].metadata["translation"]["glossary_missing"] == []
    assert reports.load_reports(report_file, require_ja=False)[0].findings_ja == ""     # the input is untouched


def test_rerun_resumes_from_the_cache(report_file, workspace):
    with FakeOpenAIServer(reply) as srv:
        tr.run(config(report_file, srv, workspace))
        again = tr.run(config(report_file, srv, workspace, out=str(report_file.with_name("again.jsonl"))))
        assert srv.requests == 3                  # the second run asked nothing
    assert again["cached"] == 3 and again["asked"] == 0 and again["translated"] == 3 and again["flagged"] == 1
    def written(name):
        return {s.id: (s.findings_ja, s.metadata.get("translation", {}).get("prompt_hash"))
                for s in reports.load_reports(report_file.with_name(name))}
    assert written("again.jsonl") == written("reports_ja.jsonl")
    assert written("again.jsonl")["d"][0] == "右下葉に浸潤影を認める。"


def test_retranslate_and_in_place(report_file, workspace):
    with FakeOpenAIServer(reply) as srv:
        summary = tr.run(config(report_file, srv, workspace, retranslate=True, in_place=True))
        assert srv.requests == 4
    assert summary["out"] == str(report_file) and summary["translated"] == 4
    assert {s.id: s.findings_ja for s in reports.load_reports(report_file)}["c"] == "右下葉に浸潤影を認める。"


def test_in_place_never_overwrites_a_correction_saved_meanwhile(report_file, workspace):
    """A reviewer saves into the file while --in-place translates it: the run refuses to write over
    that, and the rerun it suggests finishes from the cache, keeping the correction."""
    from pipelines.data import translation_review as review
    edited = {"done": False}

    def reply_and_edit(prompt: str) -> str:
        if not edited["done"]:
            edited["done"] = True
            review.save_translation(report_file, "c", "右下葉に浸潤影（確認済み）。", who="dr-sato")
        return reply(prompt)

    with FakeOpenAIServer(reply_and_edit) as srv:
        with pytest.raises(UserError) as info:
            tr.run(config(report_file, srv, workspace, in_place=True, concurrency=1))
        assert info.value.code == "translate.changed"
        assert {s.id: s.findings_ja for s in reports.load_reports(report_file, require_ja=False)}["c"] == \
            "右下葉に浸潤影（確認済み）。"
        again = tr.run(config(report_file, srv, workspace, in_place=True))
        assert again["asked"] == 0 and again["cached"] == 3 and srv.requests == 3
    saved = {s.id: s.findings_ja for s in reports.load_reports(report_file)}
    assert saved["c"] == "右下葉に浸潤影（確認済み）。" and saved["a"] == "軽度の心拡大を認める。"


def test_nothing_to_translate_writes_nothing(report_file, workspace):
    with FakeOpenAIServer(reply) as srv:
        tr.run(config(report_file, srv, workspace, in_place=True))
        summary = tr.run(config(report_file, srv, workspace, out=str(report_file.with_name("x.jsonl"))))
    assert summary["out"] is None and summary["to_translate"] == 0
    assert not report_file.with_name("x.jsonl").exists()


def test_privacy_guard_refuses_a_remote_endpoint(report_file, workspace, monkeypatch):
    text = report_file.read_text(encoding="utf-8").replace("Mild cardiomegaly.", "山田太郎様. Mild cardiomegaly.")
    report_file.write_text(text, encoding="utf-8")
    monkeypatch.setattr(endpoint, "pin", lambda url: Pinned(url, local=False))
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    with FakeOpenAIServer(reply) as srv:
        with pytest.raises(PrivacyBlocked) as info:
            tr.run(config(report_file, srv, workspace))
        assert srv.requests == 0
    assert info.value.code == "privacy.blocked" and [f["chunk_id"] for f in info.value.findings] == ["a"]
    assert not report_file.with_name("reports_ja.jsonl").exists()


def test_bad_input_is_a_user_error_with_a_code(report_file, workspace, tmp_path):
    srv = FakeOpenAIServer(reply)         # never started: nothing may be sent
    with pytest.raises(UserError) as info:
        tr.run(config(tmp_path / "none.jsonl", srv, workspace))
    assert info.value.code == "reports.missing"
    only_ja = report_file.with_name("ja_only.jsonl")
    only_ja.write_text('{"id": "x", "image": "a.png", "findings_ja": "心拡大を認める。"}\n', encoding="utf-8")
    with pytest.raises(UserError) as info:
        tr.run(config(only_ja, srv, workspace))
    assert info.value.code == "translate.no_english"
    neither = report_file.with_name("neither.jsonl")
    neither.write_text('{"id": "x", "image": "a.png", "findings_ja": ""}\n', encoding="utf-8")
    with pytest.raises(UserError) as info:
        tr.run(config(neither, srv, workspace))
    assert info.value.code == "reports.bad_lines" and "nothing_to_translate" in json.dumps(info.value.params)
    for kw, code in ((dict(out=str(report_file)), "translate.out_is_input"),
                     (dict(out="x.jsonl", in_place=True), "translate.out_and_in_place"),
                     (dict(out=str(tmp_path / "elsewhere" / "x.jsonl")), "translate.out_outside"),
                     (dict(concurrency=0), "translate.at_least_one")):
        with pytest.raises(UserError) as info:
            tr.run(config(report_file, srv, workspace, **kw))
        assert info.value.code == code
    report_file.with_name("reports_ja.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(UserError) as info:
        tr.run(config(report_file, srv, workspace))
    assert info.value.code == "translate.out_exists"
    srv.server.server_close()


def test_command_line(report_file, workspace, capsys):
    with FakeOpenAIServer(reply) as srv:
        report_import.main(["translate", str(report_file), "--base-url", srv.base_url, "--model", "fake-model",
                            "--workspace", str(workspace.root), "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert summary["translated"] == 3 and summary["flagged_ids"] == {"a": ["pleural effusion"]}


def test_a_refused_request_leaves_its_line_untranslated_and_is_asked_again(report_file, workspace):
    with FakeOpenAIServer(reply, errors=[400]) as srv:
        summary = tr.run(config(report_file, srv, workspace, concurrency=1))
        assert srv.requests == 3
        assert summary["translated"] == 2 and [e["id"] for e in summary["errors"]] == ["a"]
        assert {s.id: s.findings_ja for s in reports.load_reports(summary["out"], require_ja=False)}["a"] == ""
        again = tr.run(config(report_file, srv, workspace, out=str(report_file.with_name("again.jsonl"))))
        assert srv.requests == 4 and again["asked"] == 1 and again["cached"] == 2 and again["errors"] == []


def test_command_line_exits_1_when_a_line_was_not_translated(report_file, workspace, capsys):
    with FakeOpenAIServer(reply, errors=[400]) as srv:
        with pytest.raises(SystemExit) as info:
            report_import.main(["translate", str(report_file), "--base-url", srv.base_url, "--model", "fake-model",
                                "--workspace", str(workspace.root), "--concurrency", "1"])
    assert info.value.code == 1
    err = capsys.readouterr().err
    assert "1 line(s) were not translated" in err
    again = err.split("\n  ")[-1].strip()
    assert again.startswith("jmedlora reports translate") and again.endswith("--overwrite")
    with FakeOpenAIServer(reply) as srv:                       # the hint, as given, finishes the file
        report_import.main(shlex.split(again)[2:-1] + ["--base-url", srv.base_url, "--overwrite"])
        assert srv.requests == 1
    assert all(s.findings_ja for s in reports.load_reports(report_file.with_name("reports_ja.jsonl")))


# -- review -------------------------------------------------------------------------------

def test_review_lists_translations_and_saves_a_correction(report_file, workspace):
    from pipelines.data import translation_review as review
    with FakeOpenAIServer(reply) as srv:
        out = tr.run(config(report_file, srv, workspace))["out"]
    listed = review.list_translations(out)
    assert [r["id"] for r in listed] == ["a", "b", "d"]            # c was not machine-translated
    assert [r["id"] for r in review.list_translations(out, only_flagged=True)] == ["a"]
    assert listed[0]["findings_en"] == "Mild cardiomegaly. No pleural effusion." and listed[0]["model"] == "fake-model"
    row = review.save_translation(out, "a", " 軽度の心拡大を認める。胸水なし。 ", who="dr-sato")
    assert row["findings_ja"] == "軽度の心拡大を認める。胸水なし。" and row["edited_by"] == "dr-sato"
    assert row["glossary_missing"] == [] and row["machine_findings_ja"] == "軽度の心拡大を認める。"
    row = review.save_translation(out, "a", "心拡大を認める。", who="dr-kato")
    assert row["machine_findings_ja"] == "軽度の心拡大を認める。" and row["glossary_missing"] == ["pleural effusion"]
    saved = {s.id: s for s in reports.load_reports(out)}
    assert saved["a"].findings_ja == "心拡大を認める。" and saved["a"].metadata["translation"]["edited_by"] == "dr-kato"
    assert saved["b"].findings_ja == "急性の心肺病変なし。" and saved["a"].image == "a.png"
    for sample_id, text, code in (("a", "  ", "translation.empty"), ("zz", "胸水なし。", "translation.no_id")):
        with pytest.raises(UserError) as info:
            review.save_translation(out, sample_id, text)
        assert info.value.code == code
