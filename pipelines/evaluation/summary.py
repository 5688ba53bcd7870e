"""The summary of one evaluation run, typed: what ``summary.json`` and the workspace hold.

    summary = EvalSummary.from_dict(json.loads((out / "summary.json").read_text()))
    summary.value("accuracy", 0)          # MetricValue(mean, ci_low, ci_high) or None

``to_dict`` writes the same JSON as before the type existed (keys in the same order), so
summaries of existing workspaces load and re-save unchanged. Which metrics it holds and how
each aggregates is ``pipelines/evaluation/metrics.py``'s business.
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields

from pipelines.evaluation import metrics
from pipelines.evaluation.significance import bootstrap_ci


@dataclass
class MetricValue:
    """Mean over questions with its bootstrap 95% interval."""
    mean: float | None
    ci_low: float | None = None
    ci_high: float | None = None

    def to_dict(self) -> dict:
        return {"mean": self.mean, "ci_low": self.ci_low, "ci_high": self.ci_high}

    @classmethod
    def from_dict(cls, d: dict) -> MetricValue:
        return cls(d.get("mean"), d.get("ci_low"), d.get("ci_high"))


# The exam block's keys in the order summary.json has always had; other sums follow.
_EXAM_ORDER = ("points_earned", "points_total", "score_rate", "kinki_picked", "questions_with_kinki",
               "questions_with_alternatives")
_EXAM_CONTEXT = ("points_total", "score_rate", "questions_with_kinki", "questions_with_alternatives")


@dataclass
class ExamTotals:
    """Sum-aggregated metrics (points earned, 禁忌肢 picked, …) and what they are out of."""
    sums: dict[str, float] = field(default_factory=dict)
    points_total: float = 0
    questions_with_kinki: int = 0
    questions_with_alternatives: int = 0     # official corrections: more than one answer accepted

    @property
    def score_rate(self) -> float | None:
        total = self.points_total
        return self.sums.get("points_earned", 0) / total if total else None

    def to_dict(self) -> dict:
        d = {**self.sums, "points_total": self.points_total, "score_rate": self.score_rate,
             "questions_with_kinki": self.questions_with_kinki}
        if self.questions_with_alternatives:      # absent when none: older summaries stay byte for byte
            d["questions_with_alternatives"] = self.questions_with_alternatives
        rank = {k: i for i, k in enumerate(_EXAM_ORDER)}
        return {k: d[k] for k in sorted(d, key=lambda k: rank.get(k, len(rank)))}

    @classmethod
    def from_dict(cls, d: dict) -> ExamTotals:
        return cls(sums={k: v for k, v in d.items() if k not in _EXAM_CONTEXT},
                   points_total=d.get("points_total", 0), questions_with_kinki=d.get("questions_with_kinki", 0),
                   questions_with_alternatives=d.get("questions_with_alternatives", 0))


@dataclass
class ShotSummary:
    """One shot setting: n questions, each mean metric with its interval, the exam totals."""
    n: int
    means: dict[str, MetricValue] = field(default_factory=dict)
    exam: ExamTotals = field(default_factory=ExamTotals)

    @classmethod
    def from_rows(cls, rows: list[dict], seed: int = 0) -> ShotSummary:
        """Aggregate result rows of one shot setting as the registry says."""
        means = {}
        for m in metrics.mean_metrics():
            vals = [r[m.key] for r in rows if r.get(m.key) is not None]
            if vals:
                means[m.key] = MetricValue.from_dict(bootstrap_ci(vals, seed=seed))
        sums = {m.key: sum(r.get(m.key) or 0 for r in rows) for m in metrics.sum_metrics()}
        exam = ExamTotals(sums=sums, points_total=sum(r["points"] for r in rows),
                          questions_with_kinki=sum(1 for r in rows if r.get("kinki")),
                          questions_with_alternatives=sum(1 for r in rows if len(r.get("accepted") or []) > 1))
        return cls(n=len(rows), means=means, exam=exam)

    def to_dict(self) -> dict:
        return {"n": self.n, **{k: v.to_dict() for k, v in self.means.items()}, "exam": self.exam.to_dict()}

    @classmethod
    def from_dict(cls, d: dict) -> ShotSummary:
        means = {k: MetricValue.from_dict(v) for k, v in d.items()
                 if k not in ("n", "exam") and isinstance(v, dict)}
        return cls(n=d.get("n", 0), means=means, exam=ExamTotals.from_dict(d.get("exam") or {}))


@dataclass
class EvalSummary:
    """What one evaluation run measured, per shot setting, and how it was run."""
    label: str | None = None
    model: str | None = None
    adapter: str | None = None
    data: str | None = None
    template: str | None = None
    chat_template: bool | None = None
    scoring: str | None = None
    method: str | None = None
    by_shots: dict[int, ShotSummary] = field(default_factory=dict)
    skipped_not_text_only: int | None = None
    data_problems: int | None = None
    seconds: float | None = None
    questions_per_s: float | None = None
    extra: dict = field(default_factory=dict)   # keys a newer version wrote: kept, not lost

    @property
    def shots(self) -> list[int]:
        return sorted(self.by_shots)

    @property
    def n(self) -> int:
        return max((s.n for s in self.by_shots.values()), default=0)

    def value(self, metric: str, shots: int) -> MetricValue | None:
        s = self.by_shots.get(int(shots))
        return s.means.get(metric) if s else None

    def to_dict(self) -> dict:
        out = {}
        for f in fields(self):
            if f.name == "by_shots":
                out["by_shots"] = {str(k): v.to_dict() for k, v in self.by_shots.items()}
            elif f.name != "extra":
                out[f.name] = getattr(self, f.name)
        return {**out, **self.extra}

    @classmethod
    def from_dict(cls, d: dict | None) -> EvalSummary:
        d = d or {}
        names = {f.name for f in fields(cls)} - {"by_shots", "extra"}
        return cls(**{k: v for k, v in d.items() if k in names},
                   by_shots={int(k): ShotSummary.from_dict(v) for k, v in (d.get("by_shots") or {}).items()},
                   extra={k: v for k, v in d.items() if k not in names and k != "by_shots"})
