"""Report files: the sample set loads, every bad line is named as ``file:line: field: problem``, and an
image path cannot lead the loader out of the file's folder or into a pipe."""
from __future__ import annotations

import json
import os
import runpy

import pytest
from PIL import Image

from pipelines.core.errors import UserError
from pipelines.tasks import reports
from pipelines.tasks.images import file_pixel_hash, read_image
from pipelines.tasks.reports import REPORT_PROMPT_JA, ReportSample, load_reports
from tests.conftest import REPO
from tests.pipelines.dicom_files import SECRETS

SAMPLES = REPO / "assets" / "reports"


def write_lines(path, rows) -> str:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n" for r in rows),
                    encoding="utf-8")
    return str(path)


def row(**kw) -> dict:
    return {"id": "r1", "image": "a.png", "findings_ja": "心拡大を認める。", **kw}


@pytest.fixture
def data(tmp_path):
    folder = tmp_path / "data"
    folder.mkdir()
    Image.new("L", (8, 8), 40).save(folder / "a.png")
    return folder


def test_the_prompt_is_jradievos_verbatim():
    assert REPORT_PROMPT_JA == ("あなたは優秀な放射線科医です。このレントゲン写真を見て、所見文を書いてください。"
                                "肺・心臓・骨に異常があるかに注目して読影してください。日本語で書いてください。")
    assert reports.REPORT_PROMPT_EN.startswith("You are an excellent radiologist.")


def test_the_sample_set_loads_cleanly():
    samples = load_reports(SAMPLES / "sample_ja.jsonl")
    assert [s.image for s in samples] == ["normal_pa.png", "cardiomegaly_pa.png", "effusion_left_pa.png",
                                          "consolidation_right_lower_pa.png", "rib_fracture_right_pa.png",
                                          "normal_pa_tiny.dcm"]
    assert all(s.findings_ja and s.findings_en and s.view == "PA" and s.metadata["synthetic"] for s in samples)
    assert samples[1].findings_ja.startswith("心拡大を認める") and "胸水" in samples[2].findings_ja
    for s in samples:
        image, info = read_image(s.image_path)
        assert s.image_path.parent == SAMPLES.resolve()
        assert image.size == ((128, 128) if info["format"] == "DICOM" else (512, 512))
        if info["format"] == "PNG":
            assert s.image_path.stat().st_size < 60_000
        assert not [x for x in SECRETS[:2] if x in json.dumps(info)]
    assert b"YAMADA^TARO" in (SAMPLES / "normal_pa_tiny.dcm").read_bytes()      # the name it must not leak


def test_the_samples_are_what_the_script_makes(tmp_path):
    made = runpy.run_path(str(SAMPLES / "make_samples.py"))["main"](tmp_path)
    assert len(made) == 6
    for path in made:
        assert file_pixel_hash(path) == file_pixel_hash(SAMPLES / path.name), path.name


def test_minimal_and_full_rows(data):
    f = write_lines(data / "r.jsonl", [
        row(),
        row(id=7, image="./a.png", findings_ja="  所見なし。 ", findings_en="Normal.", impression_ja=None,
            view="lateral", metadata={"source": "x"}),
    ])
    one, two = load_reports(f)
    assert one == ReportSample(id="r1", image="a.png", image_path=(data / "a.png").resolve(),
                               findings_ja="心拡大を認める。")
    assert (two.id, two.findings_ja, two.findings_en, two.impression_ja, two.view, two.metadata) == \
           ("7", "所見なし。", "Normal.", None, "LATERAL", {"source": "x"})
    assert two.to_dict() == {"id": "7", "image": "./a.png", "findings_ja": "所見なし。", "findings_en": "Normal.",
                             "view": "LATERAL", "metadata": {"source": "x"}}


def test_every_bad_line_is_reported_with_file_line_and_field(data):
    f = write_lines(data / "bad.jsonl", [
        row(),                                                     # 1: good
        row(id="r2", findings_ja=""),                              # 2
        row(id="r1"),                                              # 3: duplicate id
        row(id="r4", image="missing.png"),                         # 4
        row(id="r5", impresion_ja="x"),                            # 5: misspelt field
        "{not json",                                               # 6
        {"id": "r7", "image": "a.png"},                            # 7: no findings
        row(id="r8", findings_ja=3, metadata=[1], view="P" * 40),   # 8: three problems
        row(id=" ", image=""),                                     # 9
    ])
    with pytest.raises(UserError) as exc:
        load_reports(f)
    assert exc.value.code == "reports.bad_lines" and exc.value.params["n"] == 11
    assert str(exc.value).count(f"\n  {f}:") == 10 and "… and 1 more" in str(exc.value)
    problems = []
    assert [s.id for s in load_reports(f, problems=problems)] == ["r1"]
    text = "\n".join(str(p) for p in problems)
    for where in ("2: findings_ja: empty", "3: id: duplicate id 'r1'", "4: image: missing.png: file not found",
                  "5: impresion_ja: unknown field (did you mean 'impression_ja'?)", "6: (line): malformed JSON",
                  "7: findings_ja: missing required field", "8: findings_ja: must be text", "8: metadata: must be",
                  "8: view: longer than 32", "9: id: must be non-blank", "9: image: must be a non-empty"):
        assert f"{f}:{where}" in text, where
    assert len(problems) == 11 and [p.line for p in problems] == sorted(p.line for p in problems)


def test_image_paths_stay_inside_the_folder(data, tmp_path):
    Image.new("L", (8, 8)).save(tmp_path / "outside.png")
    os.symlink(tmp_path / "outside.png", data / "link.png")
    os.symlink(data / "a.png", data / "inner_link.png")            # a link that stays inside is fine
    os.mkfifo(data / "pipe.png")
    (data / "sub").mkdir()
    f = write_lines(data / "r.jsonl", [
        row(id="up", image="../outside.png"), row(id="link", image="link.png"),
        row(id="abs", image=str(tmp_path / "outside.png")), row(id="pipe", image="pipe.png"),
        row(id="dir", image="sub"), row(id="ok", image="inner_link.png"),
        row(id="deep", image="sub/../a.png"),
    ])
    problems = []
    assert [(s.id, s.image_path) for s in load_reports(f, problems=problems)] == \
           [("ok", (data / "a.png").resolve()), ("deep", (data / "a.png").resolve())]
    assert [(p.line, p.code) for p in problems] == [
        (1, "report.image_outside"), (2, "report.image_outside"), (3, "report.image_absolute"),
        (4, "report.image_not_file"), (5, "report.image_not_file")]
    assert problems[3].params["kind"] == "a named pipe"


def test_unreadable_images_are_found_only_when_checked(data):
    (data / "broken.png").write_bytes((data / "a.png").read_bytes()[:40])
    f = write_lines(data / "r.jsonl", [row(image="broken.png")])
    with pytest.raises(UserError) as exc:
        load_reports(f)
    (bad,) = exc.value.params["problems"]
    assert bad["code"] == "report.image_unreadable" and bad["params"]["inner"]["code"] == "image.corrupt"
    assert load_reports(f, check_images=False)[0].image == "broken.png"


def test_untranslated_rows_load_only_when_asked(data):
    f = write_lines(data / "r.jsonl", [row(findings_ja="", findings_en="Cardiomegaly."),
                                       row(id="r2", findings_ja="")])
    with pytest.raises(UserError):
        load_reports(f)
    problems = []
    (sample,) = load_reports(f, require_ja=False, problems=problems)
    assert not sample.translated and sample.findings_en == "Cardiomegaly."
    assert [p.code for p in problems] == ["report.nothing_to_translate"]


def test_a_missing_or_empty_file(tmp_path):
    with pytest.raises(UserError) as exc:
        load_reports(tmp_path / "none.jsonl")
    assert exc.value.code == "reports.missing"
    (tmp_path / "empty.jsonl").write_text("\n", encoding="utf-8")
    with pytest.raises(UserError) as exc:
        load_reports(tmp_path / "empty.jsonl")
    assert exc.value.code == "reports.none_usable"
