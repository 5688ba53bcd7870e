"""``jmedlora reports``: MIMIC-CXR and IU X-ray style CSVs become report files, bad rows are named as
``file:line: column: problem``, and no DICOM patient field or unasked-for data-set id reaches the output."""
from __future__ import annotations

import json

import pytest
from PIL import Image

from pipelines.core.errors import UserError
from pipelines.data import report_import
from pipelines.data.report_import import import_reports
from pipelines.tasks.reports import load_reports
from tests.pipelines.dicom_files import SECRETS, dicom_file


def write_csv(path, text: str, encoding: str = "utf-8") -> str:
    path.write_bytes(text.encode(encoding))
    return str(path)


def lines(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def mimic(tmp_path):
    """A MIMIC-CXR-like folder: DICOMs whose headers hold a made-up patient, under files/pNN/pSUBJECT/sSTUDY/."""
    images = tmp_path / "mimic"
    study = images / "files" / "p10" / "p10000032" / "s50414267"
    study.mkdir(parents=True)
    dicom_file(study / "d1.dcm", [[0, 100], [200, 400]], photometric="MONOCHROME1")
    dicom_file(study / "d2.dcm", [[0, 1], [2, 3]], view="LL")
    return images


MIMIC_CSV = ("dicom_id,subject_id,study_id,ViewPosition,findings_ja,findings,impression\n"
             "d1,10000032,50414267,PA,心拡大を認める。,\"Cardiomegaly.\nNo effusion.\",Cardiomegaly.\n"
             "d2,10000032,50414267,LL,側面像で異常なし。,Normal lateral.,\n")


def test_mimic_style_without_a_path_column_finds_mimics_layout(mimic, tmp_path):
    summary = import_reports(mimic, write_csv(tmp_path / "mimic.csv", MIMIC_CSV))
    out = mimic / "reports.jsonl"
    assert summary == {"out": str(out), "written": 2, "skipped": 0, "reasons": {}, "problems": []}
    assert lines(out) == [
        {"id": "d1", "image": "files/p10/p10000032/s50414267/d1.dcm", "findings_ja": "心拡大を認める。",
         "findings_en": "Cardiomegaly.\nNo effusion.", "impression_en": "Cardiomegaly.", "view": "PA"},
        {"id": "d2", "image": "files/p10/p10000032/s50414267/d2.dcm", "findings_ja": "側面像で異常なし。",
         "findings_en": "Normal lateral.", "view": "LL"}]
    written = out.read_text(encoding="utf-8")
    # Neither the headers' patient nor the CSV's data-set ids as fields (not asked for) are in the file.
    assert not [s for s in SECRETS if s in written] and "subject_id" not in written and "metadata" not in written
    assert [s.id for s in load_reports(out)] == ["d1", "d2"]


def test_keep_ids_puts_the_data_set_ids_in_metadata(mimic, tmp_path):
    csv = write_csv(tmp_path / "mimic.csv", MIMIC_CSV)
    import_reports(mimic, csv, keep_ids=True)
    assert lines(mimic / "reports.jsonl")[0]["metadata"] == {"subject_id": "10000032", "study_id": "50414267"}


def test_iu_xray_style_two_images_per_report_untranslated(tmp_path):
    images = tmp_path / "iu"
    (images / "png").mkdir(parents=True)
    for name in ("1_IM-0001-4001.png", "1_IM-0001-3001.png", "2_IM-0652-1001.png"):
        Image.new("L", (16, 16), 60).save(images / "png" / name)
    csv = write_csv(tmp_path / "iu.csv",
                    "uid,filename,projection,findings,impression\n"
                    "1,png/1_IM-0001-4001.png,Frontal,The cardiac silhouette is normal.,Normal chest.\n"
                    "1,png/1_IM-0001-3001.png,Lateral,The cardiac silhouette is normal.,Normal chest.\n"
                    "2,png/2_IM-0652-1001.png,Frontal,Borderline cardiomegaly.,No acute disease.\n")
    with pytest.raises(UserError) as exc:
        import_reports(images, csv)
    assert exc.value.code == "report_import.no_japanese" and "--allow-untranslated" in exc.value.fix
    out = tmp_path / "iu.jsonl"
    import_reports(images, csv, out=out, allow_untranslated=True)
    rows = lines(out)
    assert [r["id"] for r in rows] == ["1/1_IM-0001-4001", "1/1_IM-0001-3001", "2"]
    assert rows[0] == {"id": "1/1_IM-0001-4001", "image": "iu/png/1_IM-0001-4001.png", "findings_ja": "",
                       "findings_en": "The cardiac silhouette is normal.", "impression_en": "Normal chest.",
                       "view": "FRONTAL"}
    with pytest.raises(UserError):
        load_reports(out)                                    # the format wants the Japanese …
    assert len(load_reports(out, require_ja=False)) == 3     # … except for translating


def test_bad_rows_are_named_by_csv_line_and_column(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    Image.new("L", (8, 8)).save(images / "a.png")
    csv = write_csv(tmp_path / "r.csv",
                    "id,path,findings_ja\n"
                    "a,a.png,\"所見なし。\n二行目。\"\n"        # a quoted report over two lines: 2–3
                    "b,gone.png,心拡大。\n"                      # 4
                    "c,a.png,\n"                               # 5
                    "d,../r.csv,所見。\n"                       # 6
                    "e,a.png\n"                                # 7
                    "a,a.png,重複。\n")                          # 8
    with pytest.raises(UserError) as exc:
        import_reports(images, csv)
    text = str(exc.value)
    for where in ("4: path: gone.png: file not found", "5: findings_ja: empty", "6: path: ../r.csv: leads outside",
                  "7: (row): 2 values for 3 columns", "8: id: duplicate id 'a'"):
        assert f"{csv}:{where}" in text, where
    assert not (images / "reports.jsonl").exists()             # stop: nothing written
    summary = import_reports(images, csv, on_error="skip")
    assert summary["written"] == 1 and summary["skipped"] == 5
    assert summary["reasons"] == {"report.image_missing": 1, "report.findings_ja_empty": 1,
                                  "report.image_outside": 1, "report_import.row_width": 1, "report.duplicate_id": 1}
    assert lines(images / "reports.jsonl") == [{"id": "a", "image": "a.png", "findings_ja": "所見なし。\n二行目。"}]


def test_files_the_import_refuses(tmp_path):
    images = tmp_path / "img"
    images.mkdir()
    Image.new("L", (8, 8)).save(images / "a.png")
    good = write_csv(tmp_path / "ok.csv", "path,findings_ja\na.png,所見なし。\n")
    cases = {
        "report_import.no_image_column": (images, write_csv(tmp_path / "n.csv", "id,findings_ja\nx,所見。\n"), {}),
        "report_import.csv_encoding": (images, write_csv(tmp_path / "sjis.csv", "path,findings_ja\na.png,心拡大。\n",
                                                         "cp932"), {}),
        "report_import.csv_empty": (images, write_csv(tmp_path / "e.csv", ""), {}),
        "report_import.csv_missing": (images, str(tmp_path / "none.csv"), {}),
        "report_import.csv_unreadable": (images, str(images), {}),            # a folder given as the CSV
        "report_import.no_folder": (tmp_path / "nowhere", good, {}),
        "report_import.out_outside": (images, good, {"out": tmp_path / "elsewhere" / "r.jsonl"}),
    }
    (tmp_path / "elsewhere").mkdir()
    for code, (folder, csv, kwargs) in cases.items():
        with pytest.raises(UserError) as exc:
            import_reports(folder, csv, **kwargs)
        assert exc.value.code == code, (code, str(exc.value))
    import_reports(images, good)
    with pytest.raises(UserError) as exc:
        import_reports(images, good)
    assert exc.value.code == "report_import.out_exists" and "--overwrite" in exc.value.fix
    # Excel's Japanese CSV, said so; the image id is then the path without its suffix.
    summary = import_reports(images, str(tmp_path / "sjis.csv"), encoding="cp932", overwrite=True)
    assert summary["written"] == 1 and lines(images / "reports.jsonl")[0]["id"] == "a"
    # An absolute path inside the folder is written relative to the report file.
    absolute = write_csv(tmp_path / "abs.csv", f"path,findings_ja\n{images / 'a.png'},所見なし。\n")
    import_reports(images, absolute, overwrite=True)
    assert lines(images / "reports.jsonl")[0]["image"] == "a.png"


def test_the_command_line(mimic, tmp_path, capsys):
    csv = write_csv(tmp_path / "mimic.csv", MIMIC_CSV)
    report_import.main(["import", "--images", str(mimic), "--csv", csv, "--json"])
    printed = json.loads(capsys.readouterr().out)
    assert printed["written"] == 2 and printed["skipped"] == 0
    report_import.main(["validate", str(mimic / "reports.jsonl")])
    assert capsys.readouterr().out.startswith("2 report(s) (0 untranslated; views: PA 1, LL 1); 0 problem(s)")
    with open(mimic / "reports.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"id": "d3", "image": "files/none.dcm", "findings_ja": "x"}\n')
    with pytest.raises(SystemExit) as exc:
        report_import.main(["validate", str(mimic / "reports.jsonl"), "--json"])
    assert exc.value.code == 1
    out = capsys.readouterr().out
    assert json.loads(out)["problems"][0]["line"] == 3 and not [s for s in SECRETS if s in out]
