"""Chest X-ray report files: import a folder of images and a CSV of reports, or validate a report JSONL.

    jmedlora reports import --images DIR --csv reports.csv [--out DIR/reports.jsonl] [--allow-untranslated]
    jmedlora reports validate DIR/reports.jsonl [--no-check-images] [--json]
    jmedlora reports translate DIR/reports.jsonl [--out DIR/reports_ja.jsonl] [--base-url URL] [--json]

The report file's format is ``pipelines/tasks/reports.py``'s. The CSV's columns are found by name
(any case), so the public data sets' files work as they come:

- MIMIC-CXR style: ``dicom_id``, ``subject_id``, ``study_id``, ``findings``, ``impression``,
  ``ViewPosition``, and the image in a ``path`` column; without one, the image is looked for at MIMIC's
  ``files/pNN/pSUBJECT/sSTUDY/DICOM_ID.dcm`` (or ``.jpg``, ``.png``), then at ``DICOM_ID.dcm`` in the folder;
- IU X-ray style: ``uid``, ``filename`` (or ``image``), ``findings``, ``impression``, ``projection``;
  a report with two images (frontal and lateral) gives two lines, ids ``UID/IMAGE-NAME``;
- ``findings_ja`` and ``impression_ja`` for the Japanese; ``findings``/``findings_en`` and
  ``impression``/``impression_en`` for the English; ``id`` for your own ids.

Without a ``findings_ja`` column the import stops: the format requires the Japanese. With
``--allow-untranslated`` it writes ``findings_ja: ""`` and the English, to translate later (such a file
loads only with ``require_ja=False``); ``translate`` fills it (``pipelines/data/translate.py``).
Bad rows are reported as ``file:line: column: problem``; with ``--on-error skip`` the good rows are
written and the rest counted by reason.

The images' own DICOM headers are never read beyond the pixel module, so no patient name or ID can
reach the report file. The CSV's ``subject_id``, ``study_id`` and ``uid`` are data-set ids, not names,
but they link a line back to a person's other studies: they are not written as fields unless
``--keep-ids`` (needed to split by patient) puts them in ``metadata``. (MIMIC's folder layout spells
them in the image path all the same.) Make sure an ``id`` column holds no hospital patient number.
"""
from __future__ import annotations

import collections
import csv
import dataclasses
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from pipelines.core import cli, safe_load
from pipelines.core.errors import Interrupted, UserError, cli_guard, same_command
from pipelines.core.jsonl import DataProblem
from pipelines.data import translate
from pipelines.tasks import reports
from pipelines.tasks.images import IMAGE_SUFFIXES

MAX_CSV_BYTES = 500_000_000                  # MIMIC-CXR's ~230,000 reports are a few hundred MB with their text
# Report field → the CSV columns that may hold it, preferred first (matched in any case).
COLUMNS = {
    "id": ("id", "dicom_id", "uid"),
    "image": ("path", "image_path", "filename", "file", "image"),
    "findings_ja": ("findings_ja",),
    "findings_en": ("findings_en", "findings"),
    "impression_ja": ("impression_ja",),
    "impression_en": ("impression_en", "impression"),
    "view": ("view", "viewposition", "projection"),
}
# Data-set ids that may link a line to a person's other studies: kept only with --keep-ids.
DATASET_ID_COLUMNS = ("subject_id", "study_id", "uid")


@dataclass
class ImportConfig:
    images: str = field(metadata=cli.required())        # folder holding the images (the CSV's paths start here)
    csv: str = field(metadata=cli.required())           # CSV of reports, one row per image
    out: str | None = None                              # report JSONL to write (default: IMAGES/reports.jsonl)
    allow_untranslated: bool = False                    # without findings_ja: write "" and the English, to translate later
    keep_ids: bool = False                              # keep subject_id, study_id, uid in metadata (to split by patient)
    check_images: bool = True                           # decode every image now (slower; finds broken files early)
    on_error: Literal["stop", "skip"] = "stop"          # stop at bad rows (nothing written), or skip them
    encoding: Literal["utf-8", "cp932"] = "utf-8"       # the CSV's encoding (cp932: Excel's Japanese CSV)
    overwrite: bool = False                             # replace an existing report file
    json: bool = False


@dataclass
class ValidateConfig:
    file: str = field(metadata=cli.meta(cli.required(), cli.positional()))  # report JSONL to check
    check_images: bool = True                           # decode every image too (slower)
    allow_untranslated: bool = False                    # accept findings_ja "" where findings_en is given
    json: bool = False


COMMANDS = {"import": (ImportConfig, "a folder of images and a CSV of reports → a report JSONL"),
            "validate": (ValidateConfig, "check every line of a report JSONL and its images"),
            "translate": (translate.TranslateConfig, "fill findings_ja from findings_en with a model (local by default)")}


def _header_map(header: list[str]) -> dict[str, str]:
    """Report field (and data-set id) → the CSV column that holds it."""
    by_lower = {}
    for name in header:
        by_lower.setdefault(name.strip().lower(), name)
    found = {key: next((by_lower[c] for c in names if c in by_lower), None) for key, names in COLUMNS.items()}
    found.update({key: by_lower.get(key) for key in (*DATASET_ID_COLUMNS, "dicom_id")})
    return {k: v for k, v in found.items() if v is not None}


def _mimic_image(images: Path, row: dict, columns: dict) -> tuple[str | None, str]:
    """(path under ``images``, what was looked for) for a MIMIC-CXR row without a path column."""
    dicom = row.get(columns.get("dicom_id", ""), "").strip()
    subject = row.get(columns.get("subject_id", ""), "").strip().removeprefix("p")
    study = row.get(columns.get("study_id", ""), "").strip().removeprefix("s")
    if not dicom:
        return None, "nothing: the dicom_id is empty"
    stems = [f"files/p{subject[:2]}/p{subject}/s{study}/{dicom}"] if subject and study else []
    stems.append(dicom)
    for stem in stems:
        for suffix in IMAGE_SUFFIXES:
            if (images / f"{stem}{suffix}").is_file():
                return f"{stem}{suffix}", ""
    return None, " or ".join(f"{s}.dcm|.jpg|.png" for s in stems)


def _read_csv(path: Path, encoding: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, [(line where the row starts, values)]): a quoted report may span several lines."""
    safe_load.regular_file(path, "CSV file")
    try:
        if path.stat().st_size > MAX_CSV_BYTES:
            raise UserError(f"{path} is over {MAX_CSV_BYTES // 1_000_000} MB, more than a report CSV.",
                            "Check that it is the right file, or split it into parts.",
                            code="report_import.csv_too_big", params={"path": str(path),
                                                                       "limit_mb": MAX_CSV_BYTES // 1_000_000})
        rows, line = [], 1
        with open(path, encoding="utf-8-sig" if encoding == "utf-8" else encoding, newline="") as fh:
            reader = csv.reader(fh)
            header = next(reader, None)
            line = reader.line_num + 1
            for values in reader:
                if any(v.strip() for v in values):
                    rows.append((line, values))
                line = reader.line_num + 1
    except FileNotFoundError:
        raise UserError(f"CSV file {path} does not exist.", "Check the path given to --csv.",
                        code="report_import.csv_missing", params={"path": str(path)}) from None
    except OSError as exc:
        raise UserError(f"Cannot read CSV file {path}: {exc.strerror}.", "Check the path given to --csv and its "
                        "permissions.", code="report_import.csv_unreadable",
                        params={"path": str(path), "errno": exc.errno}) from None
    except UnicodeDecodeError:
        raise UserError(f"{path} is not {encoding} text (near line {line}).",
                        "Save it as UTF-8 (Excel: 'CSV UTF-8'), or pass --encoding cp932 for a Japanese Excel CSV.",
                        code="report_import.csv_encoding", params={"path": str(path), "encoding": encoding,
                                                                    "line": line}) from None
    except csv.Error as exc:
        raise UserError(f"{path}:{line}: not readable as CSV ({exc}).",
                        "Check the quoting on that line (a report with commas or line breaks must be in quotes).",
                        code="report_import.csv_malformed", params={"path": str(path), "line": line,
                                                                     "detail": str(exc)[:200]}) from None
    if not header:
        raise UserError(f"{path} is empty.", "Give a CSV whose first line names the columns.",
                        code="report_import.csv_empty", params={"path": str(path)})
    return header, rows


def _check_columns(path: Path, columns: dict, allow_untranslated: bool) -> None:
    if "image" not in columns and "dicom_id" not in columns:
        raise UserError(f"{path} has no image column.", "Name it path, filename or image (MIMIC-CXR's dicom_id "
                        "with subject_id and study_id also works).", code="report_import.no_image_column",
                        params={"path": str(path)})
    if "findings_ja" not in columns and not allow_untranslated:
        raise UserError(f"{path} has no findings_ja column: the report format requires the Japanese findings.",
                        "Add the translations as a findings_ja column, or import the English for now with "
                        "--allow-untranslated.", code="report_import.no_japanese", params={"path": str(path)})
    if "findings_ja" not in columns and "findings_en" not in columns:
        raise UserError(f"{path} has neither findings_ja nor findings nor findings_en column.",
                        "Name the column holding the findings findings_ja (Japanese) or findings (English).",
                        code="report_import.no_findings", params={"path": str(path)})


def _row_to_report(images: Path, out_folder: Path, row: dict, columns: dict, keep_ids: bool) -> tuple[dict, str]:
    """The report line for one CSV row (its image relative to the report file), and where the image
    was looked for when it was found nowhere ("" otherwise)."""
    def cell(key: str) -> str:
        return row.get(columns[key], "").strip() if key in columns else ""

    looked = ""
    image = cell("image")
    if "image" not in columns:
        image, looked = _mimic_image(images, row, columns)
        image = image or ""
    if image:                                  # relative to the report file (an absolute path too, if inside)
        image = Path(os.path.relpath((images / image).absolute(), out_folder)).as_posix()
    obj = {"id": cell("id"), "image": image, "findings_ja": cell("findings_ja")}
    for key in ("findings_en", "impression_ja", "impression_en", "view"):
        if cell(key):
            obj[key] = cell(key)
    if keep_ids:
        ids = {key: cell(key) for key in DATASET_ID_COLUMNS if cell(key) and columns.get(key) != columns.get("id")}
        if ids:
            obj["metadata"] = ids
    return obj, looked


def _unique_ids(objs: list[dict]) -> None:
    """An id shared by rows with different images (IU X-ray: one report, a frontal and a lateral image)
    becomes ``ID/IMAGE-NAME``; a row without an id is named by its image path. Rows sharing an id and an
    image name stay as they are: a duplicate, reported as one."""
    for obj in objs:
        if not obj["id"]:
            obj["id"] = str(Path(obj["image"]).with_suffix("")) if obj["image"] else ""
    groups = collections.defaultdict(list)
    for obj in objs:
        groups[obj["id"]].append(obj)
    for shared, group in groups.items():
        stems = [Path(obj["image"]).stem for obj in group]
        if len(group) > 1 and all(stems) and len(set(stems)) == len(stems):
            for obj, stem in zip(group, stems):
                obj["id"] = f"{shared}/{stem}"


def _column(problem: DataProblem, columns: dict) -> str:
    """The CSV column a problem found in a report field is about (``file:line: column: problem``)."""
    if problem.code == "report.nothing_to_translate":
        return columns.get("findings_en", "findings")
    source = columns.get(problem.field) or (columns.get("dicom_id") if problem.field == "image" else None)
    return source or problem.field


def _out_path(images: Path, out: str | Path | None, overwrite: bool) -> Path:
    if not images.is_dir():
        raise UserError(f"Image folder {images} does not exist or is not a folder.",
                        "Pass the folder holding the images with --images.",
                        code="report_import.no_folder", params={"path": str(images)})
    out = Path(out) if out else images / "reports.jsonl"
    if not images.resolve().is_relative_to(out.absolute().parent.resolve()):
        raise UserError(f"The report file {out} is neither in the image folder {images} nor above it, and a "
                        "report file reads images only in its own folder and below.",
                        f"Leave out --out (it then goes to {images / 'reports.jsonl'}), or write it in a folder "
                        "above the images.", code="report_import.out_outside",
                        params={"path": str(out), "images": str(images)})
    if out.exists() and not overwrite:
        raise UserError(f"{out} already exists.", "Pass --overwrite to replace it, or choose another --out.",
                        code="report_import.out_exists", params={"path": str(out)})
    return out


def import_reports(images: str | Path, csv_path: str | Path, *, out: str | Path | None = None,
                   allow_untranslated: bool = False, keep_ids: bool = False, check_images: bool = True,
                   on_error: str = "stop", encoding: str = "utf-8", overwrite: bool = False) -> dict:
    """Write the report file for ``csv_path``'s rows; returns the summary (``written``, ``skipped``,
    ``reasons``: skipped rows by problem code, ``problems``: every ``file:line: column: problem``)."""
    images, csv_path = Path(images), Path(csv_path)
    out = _out_path(images, out, overwrite)
    out_folder = out.absolute().parent          # as given, for relative paths; resolved, for the checks
    checked_folder = out_folder.resolve()
    header, rows = _read_csv(csv_path, encoding)
    columns = _header_map(header)
    _check_columns(csv_path, columns, allow_untranslated)
    problems: list[DataProblem] = []
    candidates = []
    for line, values in rows:
        if len(values) != len(header):
            problems.append(DataProblem(str(csv_path), line, "(row)", f"{len(values)} values for {len(header)} "
                                        "columns", "report_import.row_width", {"got": len(values), "expected": len(header)}))
            continue
        candidates.append((line, *_row_to_report(images, out_folder, dict(zip(header, values)), columns, keep_ids)))
    _unique_ids([obj for _, obj, _ in candidates])
    samples, seen = [], set()
    for line, obj, looked in candidates:
        if looked:
            problems.append(DataProblem(str(csv_path), line, columns["dicom_id"], f"no image found (looked for {looked})",
                                        "report_import.image_not_found", {"looked": looked}))
            continue
        sample, errs = reports.parse_report(obj, checked_folder, str(csv_path), line, check_images=check_images,
                                            require_ja=not allow_untranslated)
        problems.extend(dataclasses.replace(p, field=_column(p, columns)) for p in errs)
        if sample is not None and sample.id in seen:
            problems.append(DataProblem(str(csv_path), line, columns.get("id", "id"), f"duplicate id {sample.id!r}",
                                        "report.duplicate_id", {"got": sample.id}))
        elif sample is not None:
            seen.add(sample.id)
            samples.append(sample)
    problems.sort(key=lambda p: p.line)
    if problems and on_error == "stop":
        raise reports.bad_lines(csv_path, problems, "Fix those rows, or write the good ones and skip these "
                                                    "(--on-error skip).")
    if not samples:
        raise UserError(f"No row of {csv_path} could be imported.", "See the problems listed above; fix the rows.",
                        code="report_import.nothing_written", params={"path": str(csv_path)})
    _write_jsonl(out, samples)
    skipped = sorted({(p.line, p.code) for p in problems})
    return {"out": str(out), "written": len(samples), "skipped": len({line for line, _ in skipped}),
            "reasons": dict(collections.Counter(code for _, code in skipped)),
            "problems": [str(p) for p in problems]}


def _write_jsonl(out: Path, samples: list[reports.ReportSample]) -> None:
    """Whole or not at all: written beside the target, then renamed over it."""
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w", encoding="utf-8") as fh:
        for sample in samples:
            fh.write(json.dumps(sample.to_dict(), ensure_ascii=False) + "\n")
    os.replace(partial, out)


def _print_import(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    print(f"{summary['written']} report(s) written to {summary['out']}; {summary['skipped']} row(s) skipped")
    for code, n in summary["reasons"].items():
        print(f"  {n} × {code}")
    for shown in summary["problems"][:20]:
        print(f"  {shown}", file=sys.stderr)
    if len(summary["problems"]) > 20:
        print(f"  … and {len(summary['problems']) - 20} more (--json lists every one)", file=sys.stderr)


def validate(a: ValidateConfig) -> int:
    """Print what the file holds and every bad line; 1 when some line is bad (for scripts and CI)."""
    problems: list[DataProblem] = []
    samples = reports.load_reports(a.file, check_images=a.check_images, require_ja=not a.allow_untranslated,
                                   problems=problems)
    untranslated = sum(1 for s in samples if not s.translated)
    views = dict(collections.Counter(s.view or "(none)" for s in samples))
    if a.json:
        print(json.dumps({"reports": len(samples), "untranslated": untranslated, "views": views,
                          "problems": [p.as_params() for p in problems]}, ensure_ascii=False, indent=2))
    else:
        shown = ", ".join(f"{view} {n}" for view, n in views.items())
        print(f"{len(samples)} report(s) ({untranslated} untranslated; views: {shown}); {len(problems)} problem(s)")
        for p in problems:
            print(f"  {p}")
    return 1 if problems else 0


@cli_guard
def main(argv: list[str] | None = None) -> None:
    args = cli.subcommands_parser("reports", __doc__, COMMANDS).parse_args(argv)
    a = cli.config_from_args(COMMANDS[args.command][0], args)
    if args.command == "import":
        summary = import_reports(a.images, a.csv, out=a.out, allow_untranslated=a.allow_untranslated,
                                 keep_ids=a.keep_ids, check_images=a.check_images, on_error=a.on_error,
                                 encoding=a.encoding, overwrite=a.overwrite)
        _print_import(summary, a.json)
    elif args.command == "translate":
        try:
            summary = translate.run(a, translate.print_event)
        except KeyboardInterrupt:
            raise Interrupted(same_command("reports", argv) + "   (answers received are not asked for again)") from None
        translate.print_summary(summary, a.json)
        if summary.get("errors"):              # lines left untranslated: a script must not take this for success
            again = same_command("reports", argv)
            again += "" if a.overwrite or a.in_place else " --overwrite"      # the file it wrote is there now
            print(f"{len(summary['errors'])} line(s) were not translated (findings_ja left empty). Run it again "
                  f"(answers received come from the cache; only those lines are asked for):\n  {again}",
                  file=sys.stderr)
            raise SystemExit(1)
    elif validate(a):
        raise SystemExit(1)


if __name__ == "__main__":
    main()
