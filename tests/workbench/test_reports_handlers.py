"""The Reports tab's handlers, called directly on a workspace holding two fake report evaluations
(tests/workbench/fake_report_results.py) and one exam evaluation: only report evaluations are
offered, a study shows the image and every report side by side with chips coloured by agreement,
the per-finding table counts what was missed, and the blind rating stores the harm flag, audits
it and names no model until the batch is rated through."""
import shutil
from types import SimpleNamespace

import pytest

from components import report_view
from pipelines.core import audit, auth
from pipelines.evaluation import reviews
from tests.workbench.fake_report_results import SAMPLE, WEAK, record_pair, record_report
from tests.workbench.fake_results import record, result_row
from workbench import i18n, reports_review, reports_tables, reports_text, reports_view, tab_reports
from workbench.state import AppState


def as_user(name):
    return SimpleNamespace(username=name)


@pytest.fixture
def pair(workspace, tmp_path):
    record(workspace, tmp_path / "exam", "default", [result_row("q1", 0, ["a"])])     # an exam: never listed
    return record_pair(workspace, tmp_path)


@pytest.mark.parametrize("name", ["L", "MSG", "HEAD", "RATING"])
def test_every_word_has_japanese_and_english(name):
    for key, text in getattr(reports_text, name).items():
        assert set(text) == set(i18n.LANGS) and all(v.strip() for v in text.values()), f"{name}[{key!r}]"
    assert set(tab_reports.TAB) == set(i18n.LANGS)


def test_choices_list_only_report_evaluations_newest_first(workspace, pair):
    state = AppState(workspace)
    choices = reports_view.evaluation_choices(state, "ja")
    assert [d for _, d in choices] == pair[::-1]
    assert choices[0][0] == "demo-vlm+cxr-lora · sample_ja.jsonl · n=6 (完了)"
    assert reports_view.default_selection(state) == pair


def test_empty_workspace_says_how_to_make_a_report_evaluation(workspace):
    html, summary, *_ = reports_tables.render(AppState(workspace), [], False, None, "ja")
    assert "まだありません" in html and "jmedlora models prepare-demo-vlm" in html
    assert "jmedlora evaluate --task report --model demo-vlm" in html and summary.empty


def test_a_study_shows_the_image_and_every_report_with_chips_by_agreement(workspace, pair):
    state = AppState(workspace)
    html, summary, comparison, per_finding, study = reports_tables.render(state, pair, False, None, "ja")
    assert "notice error" not in html
    assert study["value"] == "synthetic-normal"
    labels = dict((sid, label) for label, sid in study["choices"])
    assert labels["synthetic-rib-fracture-right"] == "synthetic-rib-fracture-right · 見落とし 1 · 過剰 1"
    assert labels["synthetic-normal"] == "synthetic-normal"
    image, side = reports_view.show_study(state, pair, "synthetic-rib-fracture-right", 2, "ja")
    assert '<img src="data:image/jpeg;base64,' in image and "width:200%" in image
    # The reference first, then both models' reports, each with its own chips.
    assert side.index("参照レポート") < side.index('data-key="demo-vlm"') < side.index('data-key="demo-vlm+cxr-lora"')
    weak = side[side.index('data-key="demo-vlm"'):side.index('data-key="demo-vlm+cxr-lora"')]
    tuned = side[side.index('data-key="demo-vlm+cxr-lora"'):]
    assert 'data-finding="気胸" data-agreement="extra"' in weak          # said, not in the reference
    assert 'data-finding="骨折" data-agreement="missed"' in weak         # the fracture, missed
    assert 'data-finding="骨折" data-agreement="agree"' in tuned
    assert "気胸" not in tuned
    assert "右気胸を認める。" in weak and "BLEU-4" in weak and "ROUGE-L" in weak
    assert audit.entries(workspace.root)[-1]["action"] == "view"


def test_chip_agreement_rules():
    ref = {"Cardiomegaly": "negative", "Pleural Effusion": "uncertain", "Lung Opacity": "negative",
           "No Finding": "unmentioned"}
    gen = {"Cardiomegaly": "negative", "Pleural Effusion": "negative", "No Finding": "positive",
           "Pneumothorax": "positive"}
    assert reports_view.agreement(gen, ref, "Cardiomegaly") == "agree_negative"
    assert reports_view.agreement(gen, ref, "Pleural Effusion") == "missed"     # uncertain counts as positive
    assert reports_view.agreement(gen, ref, "Pneumothorax") == "extra"
    assert reports_view.agreement(gen, ref, "Lung Opacity") == "neutral"         # absent, said on one side
    assert reports_view.agreement(gen, ref, "Fracture") is None                  # neither mentions it
    assert reports_view.agreement(gen, ref, "No Finding") is None                # its miss is the effusion's
    assert reports_view.agreement({"Edema": "uncertain"}, {"Edema": "positive"}, "Edema") == "agree"


def test_report_text_is_escaped():
    card = report_view.report_card("<i>m</i>", "<script>alert(1)</script>", report_view.chips(
        [("<b>気胸</b>", "positive", "unmentioned", "extra")], "ja"), [("BLEU-4", 0.5)])
    assert "<script>" not in card and "&lt;script&gt;" in card and "&lt;b&gt;気胸" in card and "<i>" not in card


def test_per_finding_table_and_summary(workspace, pair):
    state = AppState(workspace)
    _, summary, comparison, per_finding, _ = reports_tables.render(state, pair, False, None, "ja")
    rows = per_finding.set_index("所見")
    # Hand-counted over the six studies (uncertain counts as positive).
    assert rows.loc["骨折", "参照で陽性（件）"] == 1
    assert rows.loc["骨折", "demo-vlm"] == "0.00（一致0・見落とし1・過剰0）"
    assert rows.loc["骨折", "demo-vlm+cxr-lora"] == "1.00（一致1・見落とし0・過剰0）"
    assert rows.loc["気胸", "demo-vlm"] == "0.00（一致0・見落とし0・過剰1）"
    assert rows.loc["気胸", "demo-vlm+cxr-lora"] == "–"                  # never positive on either side
    assert rows.loc["所見なし", "demo-vlm"] == "0.67（一致2・見落とし0・過剰2）"
    assert rows.loc["所見なし", "参照で陽性（件）"] == 2
    # Summary: micro F1 of the weak model = 2·3 / (2·3 + 3 + 4) = 6/13, with its interval.
    s = summary.set_index("指標")
    assert list(s.columns) == ["demo-vlm", "demo-vlm+cxr-lora"]
    assert s.loc["件数", "demo-vlm"] == "6" and s.loc["所見 F1（マイクロ平均）", "demo-vlm"].startswith("0.462 [")
    assert s.loc["速度（件/秒）", "demo-vlm"] == "2.00"
    # The tuned model against the weak one, paired: micro F1 up by 1 − 6/13.
    diff = comparison.set_index("指標").loc["所見 F1（マイクロ平均）", "demo-vlm+cxr-lora − demo-vlm"]
    assert diff.startswith("+0.538 [") and "p=" in diff and diff.endswith("(n=6)")


def test_filters_navigation_and_limits(workspace, pair, tmp_path):
    state = AppState(workspace)
    *_, study = reports_tables.render(state, pair, True, None, "en")
    ids = [sid for _, sid in study["choices"]]
    assert ids == ["synthetic-cardiomegaly", "synthetic-effusion-left", "synthetic-consolidation-right-lower",
                   "synthetic-rib-fracture-right"]
    assert reports_view.step_study(state, 1, pair, ids[-1], True, "en")["value"] == ids[0]        # wraps
    assert reports_view.step_study(state, -1, pair, ids[1], True, "en")["value"] == ids[0]
    more = [record_report(workspace, tmp_path / f"x{i}", f"m{i}", WEAK) for i in range(3)]
    html, summary, *_ = reports_tables.render(state, pair + more, False, None, "en")
    assert "At most four" in html and len(summary.columns) == 1 + 4
    html, *_ = reports_tables.render(state, pair[:1], False, None, "ja")
    assert "もう1件" in html


def test_a_missing_image_is_a_notice_not_a_traceback(workspace, tmp_path):
    folder = tmp_path / "reports"
    shutil.copytree(SAMPLE.parent, folder)
    out = record_report(workspace, tmp_path / "ev", "demo-vlm", WEAK, data=folder / SAMPLE.name)
    (folder / "cardiomegaly_pa.png").unlink()
    state = AppState(workspace)
    image, side = reports_view.show_study(state, [out], "synthetic-cardiomegaly", 1, "ja")
    assert "notice error" in image and "synthetic-cardiomegaly の画像を表示できません" in image
    assert "cardiomegaly_pa.png：ファイルが見つかりません" in image and "Traceback" not in image
    assert "両側肺野に明らかな浸潤影なし。心拡大なし。" in side          # the reports still show
    image, _ = reports_view.show_study(state, [out], "synthetic-normal", 1, "ja")
    assert "data:image/jpeg" in image


def test_blind_rating_with_harm_flag_is_stored_audited_and_blind(workspace, pair):
    state = AppState(workspace)
    dr = as_user("dr-a")
    queue, done, card, summary, msg, harm, note = reports_review.begin(state, pair, "ja", dr)
    assert len(queue) == 12 and summary["visible"] is False and "伏せて" in msg
    assert harm["value"] is False and note["value"] == ""
    assert "demo-vlm" not in card and "cxr-lora" not in card                 # the card does not name the writer
    assert "参照レポート" in card and "data:image/jpeg" in card and "生成レポート #" in card
    assert "rv-chip" not in card and "スライダー" not in card             # no chips, no slider to point at
    first = queue[0]
    queue, done, card, summary, *_ = reports_review.rate(state, "partly", queue, done, pair, True, "気胸の見落とし",
                                                         "ja", dr)
    store = reviews.ReviewStore(workspace)
    assert store.current(first, "dr-a") == {"rating": "partly", "harm": True, "note": "気胸の見落とし"}
    entry = audit.entries(workspace.root)[-1]
    assert entry["action"] == "rate" and entry["user"] == "dr-a"
    assert entry["detail"]["harm"] is True and entry["detail"]["rating"] == "partly"
    assert "demo-vlm" not in card
    # Back to it: the flag and note come back with it; changing it keeps the first in the history.
    queue, done, card, summary, _, harm, note = reports_review.back(state, queue, done, pair, "ja", dr)
    assert queue[0] == first and harm["value"] is True and note["value"] == "気胸の見落とし"
    assert "現在の評価: 軽微な誤り・⚠ 有害" in card
    queue, done, *_ = reports_review.rate(state, "wrong", queue, done, pair, True, "気胸の見落とし", "ja", dr)
    assert [(h["rating"], h["harm"]) for h in store.history(first, "dr-a")] == [("partly", 1), ("wrong", 1)]
    for i in range(10):
        queue, done, card, summary, *_ = reports_review.rate(state, "correct", queue, done, pair, False, "", "ja", dr)
        assert summary["visible"] is False, f"summary shown after {i + 2} of 12 ratings"
    queue, done, card, summary, *_ = reports_review.rate(state, "correct", queue, done, pair, False, "", "ja", dr)
    assert queue == [] and summary["visible"] is True
    frame = summary["value"].set_index("モデル")
    assert sorted(frame["評価数"]) == [6, 6] and sorted(frame["有害 %"]) == [0.0, round(100 / 6, 1)]
    assert "正確 %" in frame.columns and "有害 %" in frame.columns
    # Another reviewer starts blind; only an administrator may reveal early.
    *_, summary, _, _, _ = reports_review.begin(state, pair, "ja", as_user("dr-b"))
    assert summary["visible"] is False
    summary, msg = reports_review.reveal(state, pair, "ja", as_user("dr-b"))
    assert "管理者だけ" in msg and summary == {"__type__": "update"}
    auth.set_user(workspace.root, "chief", "a-long-password-1", role="admin")
    summary, _ = reports_review.reveal(state, pair, "en", as_user("chief"))
    assert summary["visible"] is True and "harmful %" in summary["value"].columns


def test_the_dicom_study_shows_pixels_only_no_patient_data(workspace, pair):
    """The sample DICOM's header holds a made-up patient (assets/reports/make_samples.py): the page gets a
    JPEG re-encoded from the pixels, and neither it nor any HTML or table names the patient."""
    import base64
    import re
    state = AppState(workspace)
    image, reports = reports_view.show_study(state, pair, "synthetic-normal-dicom", 1, "ja")
    (encoded,) = re.findall(r"data:image/jpeg;base64,([A-Za-z0-9+/=]+)", image)
    jpeg = base64.b64decode(encoded)
    assert jpeg[:2] == b"\xff\xd8" and len(jpeg) > 1000
    frames = reports_tables.tables(reports_view.read_shown(state, pair), "ja")[:3]
    page = image + reports + "".join(f.to_csv() for f in frames)
    for secret in ("YAMADA", "TARO", "FAKE-0001", "19500101", "FAKEACC01", "SYNTHETIC HOSPITAL"):
        assert secret.encode() not in jpeg and secret not in page
