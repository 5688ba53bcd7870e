"""Chest X-ray report files: one image and its Japanese findings (所見) per line, loaded and checked.

The task follows JRadiEvo: the model sees one chest X-ray (resized to 512 × 512) and writes the
findings section of the report in Japanese, asked with ``REPORT_PROMPT_JA`` (their prompt, verbatim).

**The format** (UTF-8 JSONL, one JSON object per line)::

    {"id": "cxr-0001", "image": "images/cxr-0001.png", "findings_ja": "心拡大を認める。両側肺野に明らかな浸潤影なし。",
     "findings_en": "Cardiomegaly. No focal consolidation in either lung.", "view": "PA"}

- ``id`` (text or integer, required): unique in the file; results and splits are keyed by it.
- ``image`` (required): a PNG, JPEG or DICOM file, as a path relative to the JSONL file's folder. After
  links are resolved it must lie inside that folder (``../x.png``, an absolute path or a link leading
  out are refused: a report file cannot make the workbench read files elsewhere), and be a regular file.
- ``findings_ja`` (required): the reference findings, non-empty. A file imported from English reports
  before translation (``jmedlora reports import --allow-untranslated``) has ``""`` here and the English
  in ``findings_en``; ``load_reports(require_ja=False)`` accepts it (for translating), the default refuses.
- optional: ``findings_en``, ``impression_ja``, ``impression_en`` (text or null); ``view`` (``PA``, ``AP``,
  ``LATERAL``, ``LL``…, stored upper-case); ``metadata`` (a JSON object, kept as it is).
- Any other field is an error naming the field, with the nearest known name: a misspelt optional field
  (``impresion_ja``) would otherwise vanish silently from every evaluation. Extra data goes in ``metadata``.

Bad lines are collected and reported together as ``file:line: field: problem`` (as question files are,
``pipelines/tasks/igakuqa.py``). ``pipelines/data/report_import.py`` writes these files from a CSV;
``write_reports`` rewrites one whole (translation, the Data tab's review), under ``lock_path``'s lock.
"""
from __future__ import annotations

import difflib
import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import safe_load
from pipelines.core.errors import UserError
from pipelines.core.jsonl import DataProblem, read_jsonl
from pipelines.tasks.images import load_image

# JRadiEvo's instruction, verbatim; the English one says the same for English reports.
REPORT_PROMPT_JA = ("あなたは優秀な放射線科医です。このレントゲン写真を見て、所見文を書いてください。"
                    "肺・心臓・骨に異常があるかに注目して読影してください。日本語で書いてください。")
REPORT_PROMPT_EN = ("You are an excellent radiologist. Look at this X-ray image and write the findings of the "
                    "report. Read it with attention to whether there are abnormalities of the lungs, the heart "
                    "and the bones. Write in English.")
REPORT_FIELDS = ("id", "image", "findings_ja", "findings_en", "impression_ja", "impression_en", "view", "metadata")
OPTIONAL_TEXTS = ("findings_en", "impression_ja", "impression_en")
MAX_VIEW_CHARS = 32


@dataclass(frozen=True)
class ReportSample:
    id: str
    image: str                      # as the file wrote it (relative to the file's folder)
    image_path: Path                # resolved: inside the file's folder
    findings_ja: str                # "" only in a file loaded with require_ja=False
    findings_en: str | None = None
    impression_ja: str | None = None
    impression_en: str | None = None
    view: str | None = None
    metadata: dict = field(default_factory=dict, hash=False)

    @property
    def translated(self) -> bool:
        return bool(self.findings_ja)

    def to_dict(self) -> dict:
        """The line as written to a report file (optional fields only when set)."""
        row = {"id": self.id, "image": self.image, "findings_ja": self.findings_ja}
        for name in (*OPTIONAL_TEXTS, "view"):
            if getattr(self, name) is not None:
                row[name] = getattr(self, name)
        if self.metadata:
            row["metadata"] = self.metadata
        return row


def _problem(file: str, line: int, fieldname: str, message: str, code: str, **params) -> DataProblem:
    return DataProblem(file, line, fieldname, message, f"report.{code}", params)


def image_problem(folder: Path, image: str, *, check_image: bool = True) -> tuple[Path | None, tuple | None]:
    """(resolved path, None) for a usable ``image`` path relative to ``folder``, else (None, (message,
    code, params)). ``folder`` must be resolved already."""
    written = Path(image)
    if written.is_absolute():
        return None, ("an absolute path; write it relative to the report file's folder", "image_absolute", {})
    target = folder / written
    resolved = target.resolve()
    if not resolved.is_relative_to(folder):
        return None, ("leads outside the report file's folder (through '..' or a link); "
                      "keep the images in that folder or below it", "image_outside", {})
    if not target.exists():
        return None, ("file not found (paths are relative to the report file's folder)", "image_missing", {})
    if target.is_dir():
        return None, ("a folder, not an image file", "image_not_file", {"kind": "a folder"})
    try:
        safe_load.regular_file(target, "image file")
        if check_image:
            load_image(target)
    except UserError as exc:
        if exc.code == "files.not_regular":
            kind = exc.params.get("kind", "")
            return None, (f"{kind}, not an image file", "image_not_file", {"kind": kind})
        inner = {"code": exc.code, "params": exc.params, "problem": exc.problem}
        return None, (f"not a usable image: {exc.problem}", "image_unreadable", {"inner": inner})
    return resolved, None


def _text(obj: dict, name: str, err) -> str | None:
    value = obj.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        err(name, f"must be text or null; got {type(value).__name__}", "not_text", got=type(value).__name__)
        return None
    return value.strip()


def _view(obj: dict, err) -> str | None:
    view = _text(obj, "view", err)
    if view is not None and len(view) > MAX_VIEW_CHARS:
        err("view", f"longer than {MAX_VIEW_CHARS} characters; a view is a short code such as PA, AP or LATERAL",
            "view_too_long", limit=MAX_VIEW_CHARS)
        return None
    if view is None or not view:
        return None
    return view.upper()


def parse_report(obj: dict, folder: Path, file: str, line: int, *, check_images: bool = True,
                 require_ja: bool = True) -> tuple[ReportSample | None, list[DataProblem]]:
    """One line's object checked; ``folder`` (resolved) is where ``image`` paths start."""
    errs: list[DataProblem] = []

    def err(fieldname: str, message: str, code: str, **params) -> None:
        errs.append(_problem(file, line, fieldname, message, code, **params))

    for name in sorted(set(obj) - set(REPORT_FIELDS)):
        close = difflib.get_close_matches(name, REPORT_FIELDS, n=1)
        if close:
            err(name, f"unknown field (did you mean {close[0]!r}?); put extra data under 'metadata'",
                "unknown_field_close", suggestion=close[0])
        else:
            err(name, "unknown field; put extra data under 'metadata'", "unknown_field")
    missing = [name for name in ("id", "image", "findings_ja") if name not in obj]
    for name in missing:
        err(name, "missing required field", "missing")
    if missing:
        return None, errs
    raw_id = obj["id"]
    if isinstance(raw_id, bool) or not isinstance(raw_id, (str, int)) or not str(raw_id).strip():
        err("id", "must be non-blank text or an integer (results and splits are keyed by it)", "blank_id")
    image = obj["image"]
    resolved = None
    if not isinstance(image, str) or not image.strip():
        err("image", "must be a non-empty path (text)", "image_blank")
    else:
        resolved, bad = image_problem(folder, image.strip(), check_image=check_images)
        if bad:
            message, code, params = bad
            err("image", f"{image.strip()}: {message}", code, image=image.strip(), **params)
    if obj["findings_ja"] is None:
        err("findings_ja", "must be text; got null", "not_text", got="NoneType")
    findings_ja = _text(obj, "findings_ja", err)
    texts = {name: _text(obj, name, err) for name in OPTIONAL_TEXTS}
    if findings_ja == "" and require_ja:
        err("findings_ja", "empty: the reference findings in Japanese are required (an untranslated import "
                           "is loaded with require_ja=False)", "findings_ja_empty")
    elif findings_ja == "" and not texts["findings_en"]:
        err("findings_ja", "empty, and no findings_en to translate from either", "nothing_to_translate")
    view = _view(obj, err)
    metadata = obj.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        err("metadata", f"must be a JSON object; got {type(metadata).__name__}", "metadata_type",
            got=type(metadata).__name__)
    if errs:
        return None, errs
    return ReportSample(id=str(raw_id).strip(), image=image.strip(), image_path=resolved, findings_ja=findings_ja,
                        view=view, metadata=dict(metadata or {}), **texts), []


def load_reports(path: str | Path, *, check_images: bool = True, require_ja: bool = True,
                 problems: list[DataProblem] | None = None) -> list[ReportSample]:
    """Every sample of a report file, each line checked (``check_images`` also decodes every image:
    slower, but a truncated file is found now rather than in the middle of a training run).

    Without ``problems``, any bad line raises one UserError listing them all (``file:line: field:
    problem``); with a list, bad lines are recorded there and skipped.
    """
    path = Path(path)
    if not path.exists():
        raise UserError(f"Report file {path} does not exist.",
                        "Pass a report JSONL (e.g. assets/reports/sample_ja.jsonl), or make one with "
                        "`jmedlora reports import`.", code="reports.missing", params={"path": str(path)})
    found: list[DataProblem] = []
    rows = read_jsonl(path, found)
    folder = path.absolute().parent.resolve()
    samples: list[ReportSample] = []
    seen: set[str] = set()
    for line, obj in rows:
        sample, errs = parse_report(obj, folder, str(path), line, check_images=check_images, require_ja=require_ja)
        found.extend(errs)
        if sample is None:
            continue
        if sample.id in seen:
            found.append(_problem(str(path), line, "id", f"duplicate id {sample.id!r}", "duplicate_id", got=sample.id))
            continue
        seen.add(sample.id)
        samples.append(sample)
    found.sort(key=lambda p: p.line)
    if found and (problems is None or not samples):     # nothing usable: the reasons, not just "none"
        raise bad_lines(path, found, "Fix those lines, then load the file again (`jmedlora reports validate FILE` "
                                     "lists every one).")
    if problems is not None:
        problems.extend(found)
    if not samples:
        raise UserError(f"{path} holds no usable report.",
                        "Check that it is a report JSONL: one {\"id\", \"image\", \"findings_ja\"} object per line.",
                        code="reports.none_usable", params={"path": str(path)})
    return samples


def bad_lines(path: str | Path, problems: list[DataProblem], fix: str) -> UserError:
    """One UserError for every bad line (the first ten shown) of a report file or a CSV being imported."""
    shown = "\n  ".join(str(p) for p in problems[:10])
    more = f"\n  … and {len(problems) - 10} more" if len(problems) > 10 else ""
    return UserError(f"{len(problems)} bad line(s) in {path}:\n  {shown}{more}", fix, code="reports.bad_lines",
                     params={"path": str(path), "n": len(problems),
                             "problems": [p.as_params() for p in problems[:10]]})


# -- writing a report file (translation, the Data tab's review) -------------------------------

def lock_path(path: Path) -> Path:
    """The lock a report file's writers hold while they read and rewrite it (translation, review saves)."""
    path = Path(path)
    return path.with_name(f".{path.name}.lock")


def fingerprint(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_reports(out: Path, source: Path, samples: list[ReportSample]) -> None:
    """Whole or not at all (written beside the target, then renamed over it); image paths are
    rewritten relative to the new file's folder."""
    in_folder, out_folder = source.absolute().parent, out.absolute().parent
    partial = out.with_name(out.name + ".partial")
    with open(partial, "w", encoding="utf-8") as fh:
        for s in samples:
            row = s.to_dict()
            row["image"] = Path(os.path.relpath(in_folder / s.image, out_folder)).as_posix()
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(partial, out)
