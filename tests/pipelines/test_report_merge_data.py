"""A report merge's dev and test studies: a seeded split that keeps duplicates together, dev and test
refused when they share an id, an image (under another name, in other bytes, or as DICOM and PNG) or
findings (other punctuation), images decoded once, hashes for the card, and both per-candidate scorers."""
from __future__ import annotations

import hashlib
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from pipelines.core.errors import UserError
from pipelines.evaluation import report_metrics
from pipelines.merging import report_data
from pipelines.merging.report_data import (
    REPORT_PROMPT,
    ReportDataConfig,
    load_report_merge_data,
    report_settings,
    score_loglik,
    score_rouge,
)
from pipelines.models.generation import Completion
from pipelines.models.references import resolve_model
from pipelines.models.vision import VisionGenerator, load_vision_model
from pipelines.models.vision_loglik import reference_logliks
from pipelines.tasks.reports import REPORT_PROMPT_JA

REPO = Path(__file__).resolve().parents[2]
FINDINGS = ["心拡大を認める。", "両側肺野に浸潤影なし。", "左胸水を疑う。", "右下肺野に浸潤影。", "右第6肋骨骨折を疑う。",
            "気胸なし。", "縦隔拡大なし。", "肺門部の腫大なし。", "横隔膜の挙上なし。", "骨に明らかな異常なし。"]


def _png(folder: Path, name: str, seed: int) -> str:
    pixels = np.random.default_rng(seed).integers(0, 256, (24, 24), dtype=np.uint8)
    Image.fromarray(pixels).save(folder / name)
    return name


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def dev_file(tmp_path) -> str:
    return _write(tmp_path / "dev.jsonl", [{"id": f"cxr-{i}", "image": _png(tmp_path, f"cxr-{i}.png", i),
                                            "findings_ja": text} for i, text in enumerate(FINDINGS)])


def _config(dev, test=None, **kw) -> ReportDataConfig:
    return ReportDataConfig(dev=dev, test=test, image_size=16, **{"max_new_tokens": 8, **kw})


def test_the_split_is_seeded_disjoint_and_holds_the_fraction_out(dev_file):
    data = load_report_merge_data(_config(dev_file, test_fraction=0.3, seed=0))
    again = load_report_merge_data(_config(dev_file, test_fraction=0.3, seed=0))
    other = load_report_merge_data(_config(dev_file, test_fraction=0.3, seed=1))
    assert (len(data.dev), len(data.test)) == (7, 3)
    assert sorted(data.dev.ids + data.test.ids) == sorted(f"cxr-{i}" for i in range(10))
    assert (data.dev.ids, data.test.ids) == (again.dev.ids, again.test.ids)
    assert set(other.test.ids) != set(data.test.ids)
    assert data.dev.ids == sorted(data.dev.ids, key=lambda s: int(s.split("-")[1]))   # file order kept
    reference = {f"cxr-{i}": t for i, t in enumerate(FINDINGS)}
    assert data.test.references == [reference[i] for i in data.test.ids]


def test_images_are_decoded_once_resized_and_hashed_for_the_card(dev_file, monkeypatch):
    calls = []
    load = report_data.load_image
    monkeypatch.setattr(report_data, "load_image", lambda path, size: calls.append(path) or load(path, size=size))
    data = load_report_merge_data(_config(dev_file))
    assert len(calls) == 10
    assert all(im.mode == "RGB" and im.size == (16, 16) for im in data.dev.images + data.test.images)
    summary = data.summary()
    assert summary["dev_sha256"] == summary["test_sha256"] == hashlib.sha256(Path(dev_file).read_bytes()).hexdigest()
    assert summary["dev_ids"] == hashlib.sha256("\n".join(data.dev.ids).encode()).hexdigest()[:16]
    assert (summary["dev"], summary["test"], summary["image_size"]) == (7, 3, 16)
    assert data.prompt == REPORT_PROMPT == REPORT_PROMPT_JA


def test_a_split_keeps_the_same_study_on_one_side(tmp_path):
    rows = []
    for i, text in enumerate(FINDINGS):
        rows.append({"id": f"a-{i}", "image": _png(tmp_path, f"a-{i}.png", i), "findings_ja": text})
        shutil.copy(tmp_path / f"a-{i}.png", tmp_path / f"b-{i}.png")           # the same image, other name
        rows.append({"id": f"b-{i}", "image": f"b-{i}.png", "findings_ja": f"別の所見{i}"})
    dev = _write(tmp_path / "dev.jsonl", rows)
    for seed in range(5):
        data = load_report_merge_data(_config(dev, seed=seed))             # no overlap error
        assert {i[2:] for i in data.dev.ids}.isdisjoint({i[2:] for i in data.test.ids})
        assert len(data.test) == 6 and len(data.dev) == 14


def _refused(dev, test) -> UserError:
    with pytest.raises(UserError) as err:
        load_report_merge_data(_config(dev, test))
    return err.value


def test_a_shared_id_is_refused(dev_file, tmp_path):
    test = _write(tmp_path / "test.jsonl", [{"id": "cxr-3", "image": _png(tmp_path, "t.png", 99),
                                              "findings_ja": "新しい所見。"}])
    err = _refused(dev_file, test)
    assert err.code == "merge.report_overlap_id" and err.params["shown"] == "cxr-3" and err.params["n"] == 1


def test_the_same_image_under_another_name_and_other_bytes_is_refused(dev_file, tmp_path):
    Image.open(tmp_path / "cxr-4.png").save(tmp_path / "copy.png", compress_level=0)   # same pixels, other bytes
    assert (tmp_path / "copy.png").read_bytes() != (tmp_path / "cxr-4.png").read_bytes()
    test = _write(tmp_path / "test.jsonl", [{"id": "t-1", "image": "copy.png", "findings_ja": "新しい所見。"}])
    err = _refused(dev_file, test)
    assert err.code == "merge.report_overlap_image" and err.params["shown"] == "cxr-4 = t-1"


def test_a_png_of_a_dicoms_displayed_pixels_is_the_same_image(tmp_path):
    from pipelines.tasks.images import load_image
    shutil.copy(REPO / "assets" / "reports" / "normal_pa_tiny.dcm", tmp_path / "study.dcm")
    load_image(tmp_path / "study.dcm").save(tmp_path / "study.png")
    dev = _write(tmp_path / "dev.jsonl", [{"id": "d", "image": "study.dcm", "findings_ja": "所見A。"}])
    test = _write(tmp_path / "test.jsonl", [{"id": "p", "image": "study.png", "findings_ja": "所見B。"}])
    assert _refused(dev, test).code == "merge.report_overlap_image"


def test_the_same_findings_with_other_punctuation_are_refused(dev_file, tmp_path):
    text = " 右第６肋骨骨折を疑う、"                 # FINDINGS[4]: a space, a full-width digit, 、 for 。
    test = _write(tmp_path / "test.jsonl", [{"id": "t-1", "image": _png(tmp_path, "t.png", 99), "findings_ja": text},
                                            {"id": "t-2", "image": _png(tmp_path, "u.png", 98),
                                             "findings_ja": "全く別の所見。"}])
    err = _refused(dev_file, test)
    assert err.code == "merge.report_overlap_text" and err.params["shown"] == "cxr-4 = t-1"
    assert (err.params["ids"], err.params["images"], err.params["texts"]) == (0, 0, 1)
    assert report_data.folded_findings("心胸郭比 約63%（軽度）。") == report_data.folded_findings("心胸郭比約６３％軽度")


def test_a_separate_test_file_without_overlap_loads(dev_file, tmp_path):
    test = _write(tmp_path / "test.jsonl", [{"id": "t-1", "image": _png(tmp_path, "t.png", 99),
                                              "findings_ja": "全く別の所見。"}])
    data = load_report_merge_data(_config(dev_file, test))
    assert (len(data.dev), data.test.ids) == (10, ["t-1"])
    assert data.summary()["test_sha256"] == hashlib.sha256(Path(test).read_bytes()).hexdigest()


def test_too_few_reports_to_split_are_refused(tmp_path):
    dev = _write(tmp_path / "dev.jsonl", [{"id": "a", "image": _png(tmp_path, "a.png", 1), "findings_ja": "所見。"}])
    with pytest.raises(UserError) as err:
        load_report_merge_data(_config(dev))
    assert err.value.code == "merge.report_too_few"


# -- the scorers ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def vlm(tiny_vlm_dir):
    return VisionGenerator(*load_vision_model(resolve_model(str(tiny_vlm_dir)), device="cpu"), label="tiny-vlm")


class Echo:
    """A generator that writes each image's reference back (or a fixed text for the ids in ``wrong``)."""

    def __init__(self, part, wrong):
        self.part, self.wrong, self.prompts = part, wrong, []

    def generate_reports(self, images, prompt, settings):
        self.prompts.append(prompt)
        for i in reversed(range(len(images))):          # any order
            text = "心拡大なし。" if self.part.ids[i] in self.wrong else self.part.references[i]
            yield i, Completion(text=text, n_tokens=1, seconds=0.0)


def test_rouge_is_one_for_the_reference_itself_and_the_metrics_value_otherwise(dev_file, tmp_path):
    test = _write(tmp_path / "test.jsonl", [{"id": "t-1", "image": _png(tmp_path, "t.png", 99),
                                              "findings_ja": "全く別の所見。"}])
    data = load_report_merge_data(_config(dev_file, test))          # dev: all ten, in file order
    echo = Echo(data.dev, {"cxr-0"})
    scores = score_rouge(echo, data.dev, report_settings(_config(dev_file)))
    assert echo.prompts == [REPORT_PROMPT_JA]
    assert sorted(scores) == sorted(data.dev.ids)
    assert all(scores[i] == 1.0 for i in data.dev.ids if i != "cxr-0")
    tokens = report_metrics.tokenize_ja
    assert (tokens("心拡大を認める。"), tokens("心拡大なし。")) == (["心", "拡大", "を", "認める", "。"],
                                                                   ["心", "拡大", "なし", "。"])
    # LCS 心 拡大 。 = 3: P = 3/4, R = 3/5
    assert scores["cxr-0"] == pytest.approx(2 * (3 / 4) * (3 / 5) / (3 / 4 + 3 / 5))


def test_both_scorers_give_one_value_per_sample_with_a_tiny_vlm(dev_file, vlm):
    config = _config(dev_file, max_new_tokens=8)
    data = load_report_merge_data(config)
    settings = report_settings(config)
    assert settings.max_new_tokens == 8 and settings.seed == config.seed
    rouge = score_rouge(vlm, data.test, settings)
    assert set(rouge) == set(data.test.ids) and all(0.0 <= v <= 1.0 for v in rouge.values())
    generated = dict(vlm.generate_reports(data.test.images, REPORT_PROMPT_JA, settings))
    for i, sid in enumerate(data.test.ids):                 # the report the search scored is the one generated
        want = report_metrics.score_report(generated[i].text, data.test.references[i])["rouge_l"]
        assert rouge[sid] == pytest.approx(want)
    loglik = score_loglik(vlm, data.test)
    pairs = reference_logliks(vlm, data.test.images, REPORT_PROMPT_JA, data.test.references, batch_size=1)
    assert list(loglik) == data.test.ids
    for sid, (total, n) in zip(data.test.ids, pairs):
        assert loglik[sid] == pytest.approx(total / n, abs=1e-5) and math.isfinite(loglik[sid]) and loglik[sid] < 0
