"""The Reports tab's handlers: which report evaluations exist and are shown, the list of
studies, and one study side by side (the image, the reference report, each model's report with
its finding chips). Module-level functions taking the app state first (bound with
``workbench.wiring.bind``, tested by calling them); the tables under the study are in
``reports_tables``, the blind rating in ``reports_review``.

What is read: the workspace's report evaluations (``Workspace.evaluations(task="report")``),
each one's ``OUT/results.jsonl`` (one row per image) and the report file it ran on, for the
images (``pipelines.tasks.reports.load_reports``; pixels only through ``load_image``: nothing
of a DICOM header reaches the page).
"""
from __future__ import annotations

import base64
import io
import os
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from components import notice, report_view
from pipelines.core.errors import UserError
from pipelines.evaluation import findings, metrics
from pipelines.evaluation.results import read_results
from pipelines.tasks import reports
from pipelines.tasks.images import load_image
from workbench import users
from workbench.field_errors import error_html
from workbench.reports_text import HEAD, MSG
from workbench.state import AppState

MAX_SHOWN = 4
DISPLAY_PIXELS = 1536        # the longest side sent to the page: room to zoom, a light page
STATUS = {"running": {"ja": "実行中", "en": "running"}, "finished": {"ja": "完了", "en": "finished"},
          "failed": {"ja": "失敗", "en": "failed"}, "stopped": {"ja": "停止", "en": "stopped"}}


@dataclass
class Shown:
    """The chosen evaluations, read: display name -> registry row and result rows (by study id)."""
    evs: dict[str, dict] = field(default_factory=dict)
    rows: dict[str, dict[str, dict]] = field(default_factory=dict)

    @property
    def names(self) -> list[str]:
        return list(self.evs)

    def study_ids(self) -> list[str]:
        """Every study any chosen evaluation has, in the order the evaluations hold them."""
        return list(dict.fromkeys(i for rows in self.rows.values() for i in rows))

    def reference_row(self, study_id: str) -> dict | None:
        return next((rows[study_id] for rows in self.rows.values() if study_id in rows), None)


def registered_names(state: AppState) -> dict[str, str]:
    """Model directory (links followed) -> its registry name."""
    return {os.path.realpath(m["path"]): m["name"] for m in state.workspace.models() if m.get("path")}


def display_name(ev: dict, names: dict[str, str] | None = None) -> str:
    """The model as the evaluation names it; one given as a directory that ``names`` (from
    ``registered_names``) knows by its registry name: a report merge's test evaluation of
    ``OUT/model`` ran before the merge was registered, and shows as ``merge-N``, not a long path."""
    model = ev["model"]
    if names and os.sep in model:
        model = names.get(os.path.realpath(model), model)
    return model + (f"+{Path(ev['adapter']).name}" if ev.get("adapter") else "")


def report_evaluations(state: AppState) -> list[dict]:
    return state.workspace.evaluations(task="report")


def evaluation_choices(state: AppState, lang: str = "ja") -> list[tuple[str, str]]:
    """(label, out_dir) of every report evaluation, newest first."""
    out, names = [], registered_names(state)
    for ev in reversed(report_evaluations(state)):
        n = (ev.get("summary") or {}).get("n")
        status = STATUS.get(ev["status"], {}).get(lang, ev["status"])
        count = f" · n={n}" if n is not None else ""
        out.append((f"{display_name(ev, names)} · {Path(ev['data']).name}{count} ({status})", ev["out_dir"]))
    return out


def default_selection(state: AppState) -> list[str]:
    """The newest finished evaluations on the report file of the newest one, up to four, oldest first."""
    finished = [e for e in report_evaluations(state) if e["status"] == "finished"]
    if not finished:
        return []
    data = finished[-1]["data"]
    return [e["out_dir"] for e in finished if e["data"] == data][-MAX_SHOWN:]


def read_shown(state: AppState, out_dirs) -> Shown:
    evs = {e["out_dir"]: e for e in report_evaluations(state)}
    shown, names = Shown(), registered_names(state)
    for d in list(out_dirs or [])[:MAX_SHOWN]:
        ev = evs.get(d)
        if ev is None:
            continue
        name = display_name(ev, names)
        if name in shown.evs:
            name = f"{name} [{Path(d).name}]"
        shown.evs[name] = ev
        shown.rows[name] = {str(r["id"]): r for r in read_results(Path(d)) if "id" in r}
    return shown


# -- finding chips ---------------------------------------------------------------------------------

def finding_name(name: str, lang: str) -> str:
    return findings.load_catalog().japanese.get(name, name) if lang == "ja" else name


def agreement(generated: dict[str, str], reference: dict[str, str], name: str) -> str | None:
    """How one finding of a generated report agrees with the reference (``report_view.AGREEMENTS``),
    uncertain counting as positive as in the finding F1; None when neither report mentions it.
    No Finding shows only when both reports are normal: its misses and extras are the other
    findings' extras and misses, already shown."""
    tp, fp, fn = findings.finding_counts(generated, reference, (name,))[0]
    gen, ref = generated.get(name, "unmentioned"), reference.get(name, "unmentioned")
    if name == findings.load_catalog().no_finding:
        return "agree" if tp else None
    if tp:
        return "agree"
    if fn:
        return "missed"
    if fp:
        return "extra"
    if gen == ref == "negative":
        return "agree_negative"
    return None if gen == ref == "unmentioned" else "neutral"


def study_chips(row: dict, lang: str) -> list[report_view.Chip]:
    """One generated report's chips (``report_view.Chip``), in the catalog's order."""
    gen, ref = row.get("findings_generated") or {}, row.get("findings_reference") or {}
    out = []
    for name in findings.load_catalog().findings:
        kind = agreement(gen, ref, name)
        if kind is not None:
            out.append((finding_name(name, lang), gen.get(name, "unmentioned"), ref.get(name, "unmentioned"), kind))
    return out


def study_counts(shown: Shown, study_id: str) -> tuple[int, int]:
    """(missed, extra) findings of one study, over the chosen models."""
    missed = extra = 0
    for rows in shown.rows.values():
        row = rows.get(study_id)
        if row is not None:
            kinds = [c[3] for c in study_chips(row, "en")]
            missed, extra = missed + kinds.count("missed"), extra + kinds.count("extra")
    return missed, extra


def study_choices(shown: Shown, only_disagree: bool, lang: str) -> list[tuple[str, str]]:
    out = []
    for sid in shown.study_ids():
        fn, fp = study_counts(shown, sid)
        if only_disagree and not (fn or fp):
            continue
        out.append((sid + (HEAD["study_marks"][lang].format(fn=fn, fp=fp) if fn or fp else ""), sid))
    return out


# -- one study -------------------------------------------------------------------------------------

def reports_html(shown: Shown, study_id: str, lang: str) -> str:
    """The reference report and each model's report of one study, with chips and per-report scores."""
    ref_row = shown.reference_row(study_id)
    if ref_row is None:
        return notice.notice("info", MSG["no_match"][lang])
    catalog = findings.load_catalog()
    ref_labels = ref_row.get("findings_reference") or {}
    ref_items = [(finding_name(n, lang), ref_labels.get(n, "unmentioned")) for n in catalog.findings
                 if n != catalog.no_finding or ref_labels.get(n) == "positive"]
    ref_card = report_view.report_card(MSG["reference"][lang] + f" · {study_id}", ref_row.get("reference") or "",
                                       report_view.reference_chips(ref_items, lang), reference=True, lang=lang,
                                       key="reference")
    specs = [(k, name) for k, name, style in metrics.badge_specs(lang, task="report") if style == "score"]
    cards = []
    for name, rows in shown.rows.items():
        row = rows.get(study_id)
        if row is None:
            cards.append(report_view.report_card(name, None, lang=lang, key=name))
            continue
        scores = [(label, float(row[k])) for k, label in specs if isinstance(row.get(k), (int, float))]
        cards.append(report_view.report_card(name, row.get("generated") or "",
                                             report_view.chips(study_chips(row, lang), lang), scores, lang=lang,
                                             key=name))
    return report_view.side_by_side(ref_card, cards, lang)


_SAMPLES: dict[tuple[str, int], dict[str, Path]] = {}
_IMAGES: dict[tuple[str, int], str] = {}


def image_paths(data: str) -> dict[str, Path]:
    """study id -> image path of a report file (read once per version of the file)."""
    p = Path(data)
    key = (str(p), p.stat().st_mtime_ns)
    if key not in _SAMPLES:
        _SAMPLES[key] = {s.id: s.image_path for s in reports.load_reports(p, check_images=False, problems=[])}
    return _SAMPLES[key]


def image_path(shown: Shown, study_id: str) -> Path:
    """The study's image, found through the report file of the first evaluation that has it (the
    row's own relative path, checked as the loader checks it, when the file no longer lists it)."""
    name = next(n for n, rows in shown.rows.items() if study_id in rows)
    data, row = shown.evs[name]["data"], shown.rows[name][study_id]
    if not Path(data).exists():
        raise UserError(f"Report file {data} does not exist.", "Put the report file back where it was evaluated.",
                        code="reports.missing", params={"path": str(data)})
    found = image_paths(data).get(study_id)
    if found is not None:
        return found
    resolved, bad = reports.image_problem(Path(data).absolute().parent.resolve(), str(row.get("image") or ""),
                                          check_image=False)
    if bad:
        message, code, params = bad
        raise UserError(f"{data}: image {row.get('image')!r}: {message}", "Check the report file's image paths.",
                        code=f"report.{code}", params={"image": str(row.get("image")), **params})
    return resolved


def data_url(path: Path) -> str:
    """The image as a JPEG data URL, at most ``DISPLAY_PIXELS`` on its longest side (cached)."""
    key = (str(path), path.stat().st_mtime_ns)
    if key not in _IMAGES:
        image = load_image(path)
        image.thumbnail((DISPLAY_PIXELS, DISPLAY_PIXELS))
        buf = io.BytesIO()
        image.convert("RGB").save(buf, format="JPEG", quality=92)
        if len(_IMAGES) > 64:
            _IMAGES.clear()
        _IMAGES[key] = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
    return _IMAGES[key]


def image_html(shown: Shown, study_id: str, zoom: float, lang: str, *, hint: bool = True) -> str:
    """The study's image (zoomable; ``hint``: say how), or the reason it cannot be shown."""
    if shown.reference_row(study_id) is None:
        return ""
    try:
        return report_view.zoomable_image(data_url(image_path(shown, study_id)), study_id, zoom, study_id, lang,
                                          hint=hint)
    except UserError as exc:
        return notice.error(MSG["no_image"][lang].format(id=study_id), lang=lang) + error_html(exc, lang=lang)
    except OSError as exc:        # unreadable after it was listed (moved, permissions)
        return notice.error(MSG["no_image"][lang].format(id=study_id), f"{type(exc).__name__}: {exc}", lang)


def show_study(state: AppState, out_dirs, study_id, zoom, lang: str, request: gr.Request = None):
    """(image html, reports html) of one study of the chosen evaluations."""
    shown = read_shown(state, out_dirs)
    if not shown.evs or not study_id:
        return "", ""
    users.record(state.workspace.root, users.current_user(request), "view", "reports",
                 evaluations=[e["out_dir"] for e in shown.evs.values()], study=str(study_id))
    return image_html(shown, str(study_id), zoom, lang), reports_html(shown, str(study_id), lang)


def step_study(state: AppState, delta: int, out_dirs, study_id, only_disagree, lang: str):
    """The study ``delta`` places after (before, when negative) the one shown, as a dropdown update."""
    ids = [sid for _, sid in study_choices(read_shown(state, out_dirs), bool(only_disagree), lang)]
    if not ids:
        return gr.update()
    at = ids.index(study_id) if study_id in ids else -1 if delta > 0 else 0
    return gr.update(value=ids[(at + delta) % len(ids)])
