"""Confidence intervals and paired comparisons of evaluation results.

With a few hundred questions, differences of a few points are often noise (the paper's
Table 1 moves by ±0.03 between checkpoints). Every summary metric carries a bootstrap 95%
interval, and two result sets on the same questions can be compared pairwise:

    jmedlora significance DIR_A DIR_B [--metric accuracy] [--shots 0] [--json]

For right/wrong metrics McNemar's test on the questions that flip stands beside the bootstrap
(``mcnemar``: exact binomial under 25 flips, chi-square with continuity correction from 25 on).

Statistics that are not a plain mean but a function of per-item sums (corpus BLEU from n-gram
counts, F1 from TP/FP/FN) resample with ``resampled_sums`` and report with ``percentile_interval``
(used by ``pipelines/evaluation/report_metrics.py`` and ``findings.py``).
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from pipelines.core import cli
from pipelines.core.errors import UserError, cli_guard
from pipelines.evaluation import metrics

N_BOOT = 2000


def bootstrap_ci(values, *, seed: int = 0, n_boot: int = N_BOOT, level: float = 0.95) -> dict:
    """Mean with a percentile bootstrap interval over questions."""
    x = np.asarray(list(values), dtype=float)
    if x.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None}
    rng = np.random.default_rng(seed)
    means = x[rng.integers(0, x.size, size=(n_boot, x.size))].mean(axis=1)
    alpha = (1 - level) / 2
    return {"mean": float(x.mean()), "ci_low": float(np.quantile(means, alpha)),
            "ci_high": float(np.quantile(means, 1 - alpha))}


def paired_comparison(a: dict[str, float], b: dict[str, float], *, seed: int = 0,
                      n_boot: int = N_BOOT) -> dict:
    """Is B better than A on the questions both answered? (keys = question ids)

    Paired bootstrap of the mean difference B − A, its two-sided p-value, and for 0/1
    metrics McNemar's test on the discordant pairs (``mcnemar``: which form is in ``mcnemar_method``).
    """
    common = sorted(set(a) & set(b))
    if not common:
        raise UserError("The two result sets share no question.",
                        "Compare evaluations run on the same question file and shot setting.",
                        code="compare.no_shared")
    diff = np.array([b[k] - a[k] for k in common], dtype=float)
    rng = np.random.default_rng(seed)
    boots = diff[rng.integers(0, diff.size, size=(n_boot, diff.size))].mean(axis=1)
    p_boot = bootstrap_p_value(boots)
    out = {"n": len(common), "mean_a": float(np.mean([a[k] for k in common])),
           "mean_b": float(np.mean([b[k] for k in common])), "diff": float(diff.mean()),
           "ci_low": float(np.quantile(boots, 0.025)), "ci_high": float(np.quantile(boots, 0.975)),
           "p_bootstrap": float(p_boot)}
    if all(a[k] in (0.0, 1.0) and b[k] in (0.0, 1.0) for k in common):
        only_b = sum(1 for k in common if b[k] > a[k])
        only_a = sum(1 for k in common if a[k] > b[k])
        test = mcnemar(only_a, only_b)
        out.update({"b_only_correct": only_b, "a_only_correct": only_a,
                    "p_mcnemar": test["p"], "mcnemar_method": test["method"]})
    return out


def bootstrap_p_value(boots) -> float:
    """Two-sided p of a resampled difference: how often it falls on the other side of zero."""
    boots = np.asarray(boots, dtype=float)
    return float(min(1.0, 2 * min((boots <= 0).mean(), (boots >= 0).mean())))


# Resampling rows per chunk: (chunk × n) counts stay small for thousands of items, and the draws
# equal one (n_boot × n) draw from the same seed (numpy's integers consume the stream in order).
_CHUNK = 1000


def resampled_sums(stats, *, seed: int = 0, n_boot: int = N_BOOT) -> np.ndarray:
    """Column sums of ``stats`` (items × k) over ``n_boot`` resamples of its rows: (n_boot × k).

    For statistics that are a function of per-item sums (a mean, corpus BLEU from n-gram counts,
    F1 from TP/FP/FN) this is the whole bootstrap: each resample recomputes the statistic from its
    sums. Items are drawn as ``bootstrap_ci`` draws them, so a mean here matches it for one seed.
    """
    stats = np.asarray(stats, dtype=float)
    n = stats.shape[0]
    rng = np.random.default_rng(seed)
    out = np.empty((n_boot, stats.shape[1]))
    for start in range(0, n_boot, _CHUNK):
        rows = min(_CHUNK, n_boot - start)
        picks = rng.integers(0, n, size=(rows, n))
        counts = np.bincount((picks + n * np.arange(rows)[:, None]).ravel(), minlength=rows * n)
        out[start:start + rows] = counts.reshape(rows, n) @ stats
    return out


def percentile_interval(point: float | None, boots, level: float = 0.95) -> dict:
    """``{"mean", "ci_low", "ci_high"}``: the statistic on all items and its percentile interval
    (resamples where the statistic is undefined, NaN, are left out)."""
    boots = np.asarray(boots, dtype=float)
    boots = boots[~np.isnan(boots)]
    if point is None or (isinstance(point, float) and math.isnan(point)) or boots.size == 0:
        return {"mean": None, "ci_low": None, "ci_high": None}
    alpha = (1 - level) / 2
    return {"mean": float(point), "ci_low": float(np.quantile(boots, alpha)),
            "ci_high": float(np.quantile(boots, 1 - alpha))}


def mcnemar_exact(n01: int, n10: int) -> float:
    """Exact two-sided McNemar p-value: binomial test on the discordant pairs."""
    n = n01 + n10
    if n == 0:
        return 1.0
    k = min(n01, n10)
    tail = sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n
    return min(1.0, 2 * tail)


# Below this many discordant pairs the exact binomial test; from it on the chi-square with
# continuity correction, whose approximation is then good (the usual rule, e.g. statsmodels').
MCNEMAR_EXACT_BELOW = 25
MCNEMAR_METHODS = {"exact": "exact binomial", "chi2_cc": "chi-square with continuity correction"}


def mcnemar(n01: int, n10: int) -> dict:
    """McNemar's test on the discordant pairs (n01 right only in A, n10 right only in B):
    ``{"p", "method", "statistic", "discordant"}``.

    Under fewer than ``MCNEMAR_EXACT_BELOW`` discordant pairs ``method`` is "exact" (``mcnemar_exact``,
    ``statistic`` None); otherwise "chi2_cc": X² = (|n01 − n10| − 1)² / (n01 + n10), p its upper tail
    with one degree of freedom (erfc(√(X²/2))); X² = 0 when the counts differ by at most 1 (as R's
    mcnemar.test, which drops the correction then: it would turn no difference into some).
    """
    n = n01 + n10
    if n < MCNEMAR_EXACT_BELOW:
        return {"p": mcnemar_exact(n01, n10), "method": "exact", "statistic": None, "discordant": n}
    statistic = max(abs(n01 - n10) - 1, 0) ** 2 / n
    return {"p": min(1.0, math.erfc(math.sqrt(statistic / 2))), "method": "chi2_cc", "statistic": statistic,
            "discordant": n}


def describe_mcnemar(test: dict) -> str:
    """'McNemar (exact binomial, 7 discordant): p = 0.453' (the form used named, for a reader)."""
    stat = f", X² = {test['statistic']:.2f}" if test.get("statistic") is not None else ""
    return (f"McNemar ({MCNEMAR_METHODS[test['method']]}, {test['discordant']} discordant{stat}): "
            f"p = {test['p']:.3g}")


def load_metric(out_dir: str | Path, metric: str, shots: int) -> dict[str, float]:
    """question id -> the metric's value at ``shots``; a UserError naming what the run holds
    when the metric (or the shot setting) is not in it."""
    path = Path(out_dir) / "results.jsonl"
    if not path.exists():
        raise UserError(f"No results.jsonl in {out_dir}.", "Pass the --out directory of an evaluation run.",
                        code="compare.no_results", params={"path": str(out_dir)})
    values, present, shot_settings = {}, set(), set()
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            r = json.loads(line)
            shot_settings.add(r.get("shots"))
            if r.get("shots") != shots:
                continue
            # A loglik-only row copies its likelihood pick into ``accuracy`` (Table 1 needs one number),
            # but it is not a generated answer: comparing it with a generate run's accuracy would
            # weigh two different measurements, so generate metrics count only where a response exists.
            loglik_only = "response" in r and r["response"] is None
            have = {k for k in metrics.keys() if r.get(k) is not None
                    and not (loglik_only and metrics.get(k).method == "generate")}
            present |= have
            if metric in have:
                values[r["problem_id"]] = float(r[metric])
    if shot_settings and shots not in shot_settings:
        has = ", ".join(f"{s}-shot" for s in sorted(shot_settings, key=str))
        raise UserError(f"{out_dir} has no {shots}-shot results (it has {has}).",
                        "Pass --shots with a setting both runs have.",
                        code="compare.no_shots", params={"path": str(out_dir), "shots": shots, "has": str(has)})
    if not values and present:
        available = [k for k in metrics.keys() if k in present]
        method = metrics.get(metric).method if metric in metrics.keys() else None
        fix = f"Use --metric {' | '.join(available)}."
        if method == "loglik":
            fix += " Log-likelihood metrics need an evaluation run with --method loglik or both."
        else:
            fix += " Generated-answer metrics need an evaluation run with --method generate or both."
        raise UserError(f"{out_dir} holds no {metric!r} at {shots}-shot; its results have "
                        f"{', '.join(available)}.", fix,
                        code="compare.no_metric",
                        params={"path": str(out_dir), "metric": metric, "shots": shots,
                                "available": ", ".join(available)})
    return values


@dataclass
class CompareConfig:
    dir_a: str = field(metadata=cli.meta(cli.required(), cli.positional()))  # evaluation run A (its --out dir)
    dir_b: str = field(metadata=cli.meta(cli.required(), cli.positional()))  # evaluation run B, on the same questions
    metric: str = field(default="accuracy", metadata=cli.choices(*metrics.keys()))  # per-question metric compared
    shots: int = field(default=0, metadata=cli.choices(0, 1))  # the shot setting both runs have
    seed: int = 0                       # bootstrap resampling seed
    json: bool = False


@cli_guard
def main(argv: list[str] | None = None) -> None:
    a = cli.config_from_args(CompareConfig, cli.config_parser("significance", CompareConfig, __doc__).parse_args(argv))
    res = paired_comparison(load_metric(a.dir_a, a.metric, a.shots), load_metric(a.dir_b, a.metric, a.shots),
                            seed=a.seed)
    verdict = "B is better" if res["ci_low"] > 0 else "A is better" if res["ci_high"] < 0 else "no clear difference"
    if a.json:
        print(json.dumps({**res, "metric": a.metric, "shots": a.shots, "verdict": verdict}, indent=2))
        return
    print(json.dumps(res, indent=2))
    print(f"{a.metric} ({a.shots}-shot): B − A = {res['diff']:+.3f} "
          f"[95% CI {res['ci_low']:+.3f}, {res['ci_high']:+.3f}] on {res['n']} questions → {verdict}")
    if "p_mcnemar" in res:       # beside the bootstrap for right/wrong metrics: the test on the questions that flip
        test = mcnemar(res["a_only_correct"], res["b_only_correct"])
        print(f"paired bootstrap p = {res['p_bootstrap']:.3g}; {describe_mcnemar(test)} "
              f"({res['a_only_correct']} right only in A, {res['b_only_correct']} only in B)")


if __name__ == "__main__":
    main()
