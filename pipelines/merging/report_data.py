"""A report merge's dev and test studies: split, kept apart, decoded once, and scored per candidate.

The report counterpart of ``merging/data.py`` (questions) for JRadiEvo's merge of a vision-language
model's language tower: the dev studies (about 50 chest X-rays with Japanese findings) choose the
merge coefficients, the test studies only report on the result. Both are report files
(``pipelines/tasks/reports.py``); without ``--test``, a seeded share of ``--dev`` is held out.

**Dev and test never share a study**, by any of three keys, each refused with its own code:

* ``id`` (``merge.report_overlap_id``);
* the image (``merge.report_overlap_image``): SHA-256 of the decoded pixels as the model sees them
  (RGB, resized to ``image_size`` as the report evaluation does; ``tasks.images.pixel_hash``, the
  ``image_hash`` of a report evaluation's ``results.jsonl``), not of the file's bytes: the same
  picture copied under another name, re-saved with other PNG settings or other metadata, or
  stored as PNG and as DICOM, has other bytes but the same pixels. A DICOM and a PNG are caught
  when the PNG holds the pixels this reader displays for the DICOM (its window, 8 bits); a PNG
  exported with another window, or a JPEG (lossy), differs in its pixels and is not caught: that
  needs a near-duplicate (perceptual) check, which this is not;
* the findings (``merge.report_overlap_text``): NFKC-normalised and lower-cased, with every
  character that is not a letter or a digit (punctuation 。、・（）, spaces) dropped, so the same
  report with other punctuation or full-width digits is the same report.

A held-out split keeps such duplicates inside one file together (the whole group goes to one
side), so splitting a file never makes an overlap its user could not have avoided.

Each image is decoded once (``tasks.images.load_image`` at ``image_size``) and kept, with the
reference findings: a search scores every candidate on the same images without reading a file
again. ``hashes`` (file SHA-256, ids and pixel hashes) go into the merge card.

Per candidate, the search calls one of the scorers, each id → value, higher is better:
``score_rouge`` (generate each report with the report evaluation's prompt and score ROUGE-L on
MeCab tokens, as ``evaluation/report_metrics.py`` does) or ``score_loglik`` (the mean
log-likelihood per reference token, ``models/vision_loglik.py``: one forward pass, no generation).
"""
from __future__ import annotations

import hashlib
import random
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.evaluation import report_metrics
from pipelines.evaluation.report_run import PROMPTS
from pipelines.models.generation import GenerationSettings
from pipelines.models.vision_loglik import reference_logliks
from pipelines.tasks.images import load_image, pixel_hash
from pipelines.tasks.reports import ReportSample, load_reports

# The report evaluation's Japanese prompt (JRadiEvo's): a merge is scored as it will be evaluated.
REPORT_PROMPT = PROMPTS["ja"]
SHOWN = 5       # overlapping ids named in a message


@dataclass
class ReportDataConfig:
    """The fields ``load_report_merge_data`` reads; any config with these attributes will do."""
    dev: str = ""                       # report JSONL the search scores candidates on
    test: str | None = None             # held-out report JSONL for the final comparison
    test_fraction: float = 0.3          # without --test: this share of --dev is held out (seeded split)
    seed: int = 0
    image_size: int = 512               # images resized to this square, as the report evaluation does
    max_new_tokens: int = 256           # ROUGE-L scoring: the most tokens generated per report


@dataclass
class ReportPart:
    """One side of the split: the samples, their decoded images and those images' pixel hashes."""
    samples: list[ReportSample]
    images: list
    image_hashes: list[str]

    @property
    def ids(self) -> list[str]:
        return [s.id for s in self.samples]

    @property
    def references(self) -> list[str]:
        return [s.findings_ja for s in self.samples]

    def __len__(self) -> int:
        return len(self.samples)


@dataclass
class ReportMergeData:
    dev: ReportPart
    test: ReportPart
    hashes: dict
    image_size: int
    prompt: str = REPORT_PROMPT

    def summary(self) -> dict:
        return {"dev": len(self.dev), "test": len(self.test), "image_size": self.image_size, **self.hashes}


def folded_findings(text: str) -> str:
    """The findings' words alone: width, case, spaces and punctuation do not make a report different."""
    text = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in text if unicodedata.category(ch)[0] in "LN")


def _shown(pairs: list[tuple[str, str]]) -> str:
    return ", ".join(f"{a} = {b}" if a != b else a for a, b in pairs[:SHOWN])


def overlaps(dev: ReportPart, test: ReportPart) -> dict[str, list[tuple[str, str]]]:
    """(dev id, test id) pairs that are the same study, per key: ``id``, ``image``, ``text``."""
    by_image = dict(zip(dev.image_hashes, dev.ids))
    by_text = {folded_findings(s.findings_ja): s.id for s in dev.samples}
    by_text.pop("", None)            # findings of punctuation alone: nothing to compare
    dev_ids = set(dev.ids)
    return {"id": [(i, i) for i in test.ids if i in dev_ids],
            "image": [(by_image[h], i) for h, i in zip(test.image_hashes, test.ids) if h in by_image],
            "text": [(by_text[folded_findings(s.findings_ja)], s.id) for s in test.samples
                     if folded_findings(s.findings_ja) in by_text]}


def check_disjoint(dev: ReportPart, test: ReportPart) -> None:
    """A UserError naming the shared studies when dev and test overlap (ids first, then images, then findings)."""
    found = overlaps(dev, test)
    counts = {k: len(v) for k, v in found.items()}
    also = ", ".join(f"{n} by {k}" for k, n in counts.items() if n)
    what = {"id": "share an id", "image": "show the same image (identical pixels)",
            "text": "have the same findings (punctuation and spaces aside)"}
    for k, key in enumerate(("id", "image", "text")):
        if found[key]:
            shown = _shown(found[key])
            raise UserError(f"{counts[key]} test report(s) {what[key]} as a dev report: {shown} "
                            f"(overlaps: {also}). A merge chosen on the dev set would be tested on what it saw.",
                            "Remove those reports from the test file (or from --dev), or let --test-fraction "
                            "split --dev.",
                            code=("merge.report_overlap_id", "merge.report_overlap_image", "merge.report_overlap_text")[k],
                            params={"n": counts[key], "shown": shown, "ids": counts["id"],
                                    "images": counts["image"], "texts": counts["text"], "field": "test"})


def _decode(samples: list[ReportSample], image_size: int) -> ReportPart:
    images = [load_image(s.image_path, size=image_size) for s in samples]
    return ReportPart(samples, images, [pixel_hash(im) for im in images])


def _subset(part: ReportPart, keep: set[int]) -> ReportPart:
    rows = [i for i in range(len(part)) if i in keep]
    return ReportPart([part.samples[i] for i in rows], [part.images[i] for i in rows],
                      [part.image_hashes[i] for i in rows])


def duplicate_groups(part: ReportPart) -> list[list[int]]:
    """Indices of ``part`` grouped so that samples sharing an image or findings are in one group
    (transitively), groups in order of their first sample."""
    parent = list(range(len(part)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    first: dict[tuple[str, str], int] = {}
    for i, (sample, image) in enumerate(zip(part.samples, part.image_hashes)):
        text = folded_findings(sample.findings_ja)
        for key in [("image", image)] + ([("text", text)] if text else []):
            parent[root(i)] = root(first.setdefault(key, i))
    groups: dict[int, list[int]] = {}
    for i in range(len(part)):
        groups.setdefault(root(i), []).append(i)
    return sorted(groups.values(), key=lambda g: g[0])


def split(part: ReportPart, config) -> tuple[ReportPart, ReportPart]:
    """(dev, test): a seeded ``test_fraction`` of ``part`` held out, duplicate groups kept on one side."""
    if not 0 < config.test_fraction < 1:
        raise UserError("--test-fraction must be between 0 and 1.", "Or pass a separate --test file.",
                        code="merge.test_fraction", params={"field": "test_fraction", "test_field": "test"})
    n_test = max(1, round(len(part) * config.test_fraction))
    groups = duplicate_groups(part)
    random.Random(f"report-merge-split:{config.seed}").shuffle(groups)
    test_rows: set[int] = set()
    for group in groups:
        if len(test_rows) >= n_test:
            break
        test_rows.update(group)
    if len(part) - n_test < 1 or len(test_rows) >= len(part):
        raise UserError(f"{config.dev} has too few distinct reports to hold {config.test_fraction:.0%} out.",
                        "Pass a separate --test file or a smaller --test-fraction.", code="merge.report_too_few",
                        params={"path": str(config.dev), "share": f"{config.test_fraction:.0%}",
                                "field": "test_fraction", "test_field": "test"})
    return _subset(part, set(range(len(part))) - test_rows), _subset(part, test_rows)


def _sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _lines_hash(lines: list[str]) -> str:
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()[:16]


def load_report_merge_data(config) -> ReportMergeData:
    """Dev and test studies per ``config`` (``ReportDataConfig``'s fields), decoded and checked disjoint."""
    dev = _decode(load_reports(config.dev, check_images=False), config.image_size)
    if config.test:
        test = _decode(load_reports(config.test, check_images=False), config.image_size)
    else:
        dev, test = split(dev, config)
    check_disjoint(dev, test)
    test_file = config.test or config.dev
    hashes = {"dev_file": str(config.dev), "dev_sha256": _sha256(config.dev), "dev_ids": _lines_hash(dev.ids),
              "dev_images": _lines_hash(dev.image_hashes),
              "test_file": str(test_file), "test_sha256": _sha256(test_file), "test_ids": _lines_hash(test.ids),
              "test_images": _lines_hash(test.image_hashes)}
    return ReportMergeData(dev, test, hashes, config.image_size)


def report_settings(config) -> GenerationSettings:
    """Decoding for ``score_rouge``: the evaluation's defaults, ``config``'s max_new_tokens and seed."""
    return GenerationSettings(max_new_tokens=config.max_new_tokens, seed=config.seed)


def score_rouge(generator, part: ReportPart, settings: GenerationSettings) -> dict[str, float]:
    """id → ROUGE-L F1 of the report ``generator`` (a ``VisionGenerator``) writes for the image
    against the reference, on the report metrics' MeCab tokens."""
    out = {}
    for i, completion in generator.generate_reports(part.images, REPORT_PROMPT, settings):
        out[part.ids[i]] = report_metrics.rouge_l(report_metrics.tokenize_ja(completion.text),
                                                  report_metrics.tokenize_ja(part.references[i]))
    return out


def score_loglik(generator, part: ReportPart, *, batch_size: int | None = None) -> dict[str, float]:
    """id → mean log-likelihood per reference token (the closing token included) given the image."""
    pairs = reference_logliks(generator, part.images, REPORT_PROMPT, part.references, batch_size=batch_size)
    # A reference file's findings are never empty, so n ≥ 1; max() only guards a division.
    return {sid: total / max(n, 1) for sid, (total, n) in zip(part.ids, pairs)}
