import pytest

from pipelines.evaluation.significance import bootstrap_ci, mcnemar_exact, paired_comparison


def test_bootstrap_ci_brackets_mean_and_is_seeded():
    vals = [1, 0, 1, 1, 0, 1, 0, 1, 1, 1]
    a = bootstrap_ci(vals, seed=1)
    assert a == bootstrap_ci(vals, seed=1)
    assert a["mean"] == pytest.approx(0.7)
    assert a["ci_low"] < 0.7 < a["ci_high"]
    assert bootstrap_ci([0.5] * 5)["ci_low"] == bootstrap_ci([0.5] * 5)["ci_high"] == 0.5


def test_mcnemar_exact_hand_computed():
    # 0 vs 5 discordant: 2 · (1/2)^5 = 0.0625
    assert mcnemar_exact(0, 5) == pytest.approx(0.0625)
    # 1 vs 9: 2 · (C(10,0)+C(10,1)) / 2^10 = 22/1024
    assert mcnemar_exact(1, 9) == pytest.approx(22 / 1024)
    assert mcnemar_exact(3, 3) == 1.0


def test_paired_comparison_detects_a_real_gain_and_not_noise():
    a = {f"q{i}": 0.0 for i in range(40)}
    b = {f"q{i}": 1.0 if i < 20 else 0.0 for i in range(40)}
    res = paired_comparison(a, b)
    assert res["diff"] == pytest.approx(0.5) and res["ci_low"] > 0 and res["p_mcnemar"] < 1e-5
    same = paired_comparison(b, dict(b))
    assert same["diff"] == 0 and same["p_mcnemar"] == 1.0
