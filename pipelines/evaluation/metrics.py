"""Every evaluation metric, defined once: what it is called, where it shows, how it adds up.

A metric is a per-question value written into ``results.jsonl`` by a scoring function in
``pipelines/evaluation/scoring.py``. Its entry here decides everything else: the summary (mean with a
bootstrap 95% interval, or a sum for exam counts), the printed table, Table 1 and its
charts, the answer-card badges, the Compare summary and the CSV columns. Adding a metric is
the scoring function plus one ``Metric`` in ``REGISTRY``.

Metrics belong to a task: ``exam`` (IgakuQA questions, one row per question and shot setting)
or ``report`` (generated radiology reports scored against a reference by
``pipelines/evaluation/report_metrics.py``). Every view takes the task and defaults to ``exam``,
so the exam tables, charts, cards and CSV never list a report metric, nor the other way round.

Components never import this module: the workbench passes the plain views below
(``labels``, ``badge_specs``, ``csv_keys``) into them.
"""
from __future__ import annotations

from dataclasses import dataclass

AGGREGATES = ("mean", "sum", "corpus")
TASKS = ("exam", "report")
METHODS = ("generate", "loglik")
BADGES = ("pass", "match", "score", "warn")


@dataclass(frozen=True)
class Metric:
    key: str                            # the field in a results.jsonl row
    label: dict[str, str]               # ja/en name in tables and charts
    short: dict[str, str]               # ja/en name on badges and in columns
    table1: str | None = None           # Table-1 row name ("Accuracy" -> "Accuracy (0s)"); None: not in Table 1
    higher_is_better: bool = True       # which way Table 1 ranks its top two
    # mean: over items, with a bootstrap 95% CI | sum: exam counts | corpus: computed once over all
    # items from their summed statistics (corpus BLEU, pooled F1) by the task's summary, with a
    # bootstrap CI over items; an item's own value, where it has one, is its own score (sentence BLEU).
    aggregate: str = "mean"
    method: str = "generate"            # the scoring that produces it: generate (the response) | loglik
    # How one answer shows it on its card: pass (✓ green / ✗ red), match (✓ green / ✗ plain),
    # score (two decimals), warn (a warning while the count is above zero); None: no badge.
    badge: str | None = None
    task: str = "exam"                  # exam: IgakuQA questions | report: generated radiology reports

    def __post_init__(self):
        if self.aggregate not in AGGREGATES or self.method not in METHODS or self.badge not in (*BADGES, None):
            raise ValueError(f"metric {self.key!r}: aggregate in {AGGREGATES}, method in {METHODS}, "
                             f"badge in {BADGES} or None")
        if self.task not in TASKS or (self.table1 and self.task != "exam"):
            raise ValueError(f"metric {self.key!r}: task in {TASKS}; Table 1 rows are exam metrics")
        if set(self.label) != {"ja", "en"} or set(self.short) != {"ja", "en"}:
            raise ValueError(f"metric {self.key!r}: label and short need ja and en")


REGISTRY: tuple[Metric, ...] = (
    Metric("accuracy", {"ja": "正答率", "en": "Accuracy"}, {"ja": "正答", "en": "accuracy"},
           table1="Accuracy", badge="pass"),
    Metric("exact_match", {"ja": "完全一致", "en": "Exact match"}, {"ja": "完全一致", "en": "exact match"},
           table1="Exact match", badge="match"),
    Metric("gestalt", {"ja": "Gestalt score", "en": "Gestalt score"}, {"ja": "Gestalt", "en": "gestalt"},
           table1="Gestalt score", badge="score"),
    Metric("ll_accuracy", {"ja": "対数尤度 正答率", "en": "LL accuracy"}, {"ja": "LL正答", "en": "LL accuracy"},
           method="loglik"),
    Metric("ll_accuracy_norm", {"ja": "対数尤度 正答率（文字数で正規化）", "en": "LL accuracy (norm)"},
           {"ja": "LL正答（正規化）", "en": "LL accuracy (norm)"}, method="loglik"),
    Metric("points_earned", {"ja": "得点", "en": "Exam points"}, {"ja": "得点", "en": "points"},
           aggregate="sum"),
    Metric("kinki_picked", {"ja": "禁忌肢の選択", "en": "禁忌肢 (contraindicated) picked"},
           {"ja": "禁忌肢を選択", "en": "contraindicated picked"}, higher_is_better=False, aggregate="sum",
           badge="warn"),
    # Reports (JRadiEvo's figures, pipelines/evaluation/report_metrics.py): corpus BLEU-1…4 on MeCab
    # tokens, METEOR (exact matches) and ROUGE-L F1 per report, CheXpert finding F1 over reports.
    *(Metric(f"bleu{n}", {"ja": f"BLEU-{n}", "en": f"BLEU-{n}"}, {"ja": f"BLEU-{n}", "en": f"BLEU-{n}"},
             aggregate="corpus", badge="score" if n == 4 else None, task="report") for n in range(1, 5)),
    Metric("meteor", {"ja": "METEOR（完全一致）", "en": "METEOR (exact match)"}, {"ja": "METEOR", "en": "METEOR"},
           task="report"),
    Metric("rouge_l", {"ja": "ROUGE-L", "en": "ROUGE-L"}, {"ja": "ROUGE-L", "en": "ROUGE-L"}, badge="score",
           task="report"),
    Metric("finding_micro_f1", {"ja": "所見 F1（マイクロ平均）", "en": "Finding F1 (micro)"},
           {"ja": "所見F1 micro", "en": "finding F1 micro"}, aggregate="corpus", task="report"),
    Metric("finding_macro_f1", {"ja": "所見 F1（マクロ平均）", "en": "Finding F1 (macro)"},
           {"ja": "所見F1 macro", "en": "finding F1 macro"}, aggregate="corpus", task="report"),
)


# Readers look the registry up at call time (never copy it at import), so a test that
# swaps ``REGISTRY`` sees its metric everywhere.
def get(key: str) -> Metric:
    for m in REGISTRY:
        if m.key == key:
            return m
    raise KeyError(f"unknown metric {key!r}; known: {', '.join(m.key for m in REGISTRY)}")


def for_task(task: str = "exam") -> list[Metric]:
    if task not in TASKS:
        raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")
    return [m for m in REGISTRY if m.task == task]


def keys(task: str = "exam") -> list[str]:
    return [m.key for m in for_task(task)]


def mean_metrics(task: str = "exam") -> list[Metric]:
    """Per-item values summarised as a mean with a 95% interval."""
    return [m for m in for_task(task) if m.aggregate == "mean"]


def sum_metrics(task: str = "exam") -> list[Metric]:
    """Exam counts summarised as totals (points earned, 禁忌肢 picked)."""
    return [m for m in for_task(task) if m.aggregate == "sum"]


def corpus_metrics(task: str = "report") -> list[Metric]:
    """Figures computed over all items from summed statistics (corpus BLEU, finding F1)."""
    return [m for m in for_task(task) if m.aggregate == "corpus"]


def table1_metrics() -> list[Metric]:
    return [m for m in for_task("exam") if m.table1 and m.aggregate == "mean"]


def table1_row(metric: Metric, shots: int | str) -> str:
    return f"{metric.table1} ({shots}s)"


# -- plain views for the workbench to hand to components -------------------------------

def labels(lang: str = "en", *, short: bool = False, only: list[Metric] | None = None,
           task: str = "exam") -> dict[str, str]:
    """key -> name in ``lang`` (of ``only``, or of the task's metrics)."""
    return {m.key: (m.short if short else m.label)[lang] for m in (for_task(task) if only is None else only)}


def badge_specs(lang: str = "ja", task: str = "exam") -> list[tuple[str, str, str]]:
    """(key, short name, badge style) for every metric an answer card shows."""
    return [(m.key, m.short[lang], m.badge) for m in for_task(task) if m.badge]


def csv_keys(task: str = "exam") -> list[str]:
    """Per-item fields of the side-by-side CSV, in registry order (the CSV writes those a row has:
    a corpus figure with no per-item value, finding F1, leaves no column)."""
    return keys(task)


def table1_row_labels(lang: str) -> dict[str, str]:
    """Table-1 row name -> the row's heading in ``lang`` ('正答率 Accuracy (0-shot)')."""
    out = {}
    for shots in (0, 1):
        for m in table1_metrics():
            name = m.table1 if lang == "en" or m.label["ja"] == m.table1 else f"{m.label['ja']} {m.table1}"
            out[table1_row(m, shots)] = f"{name} ({shots}-shot)"
    return out
