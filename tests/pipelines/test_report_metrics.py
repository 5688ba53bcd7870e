"""Report metrics: BLEU against sacrebleu on MeCab tokens, hand-computed BLEU/ROUGE-L/METEOR,
bootstrap intervals and paired comparisons, and the registry's report task."""
import math
from concurrent.futures import ThreadPoolExecutor

import pytest
from sacrebleu.metrics import BLEU

from pipelines.core.errors import UserError
from pipelines.evaluation import metrics, significance
from pipelines.evaluation import report_metrics as rm

# (generated, reference): short Japanese chest X-ray findings, near misses and paraphrases.
PAIRS = [
    ("心拡大を認める。両側胸水貯留あり。", "心拡大を認める。両側に胸水貯留を認める。"),
    ("明らかな気胸は認めない。", "気胸は認めない。"),
    ("右下肺野に浸潤影を認め、肺炎を疑う。", "右下肺野に浸潤影を認める。肺炎の可能性がある。"),
    ("心胸郭比は拡大している。肺うっ血を認める。", "心拡大と肺うっ血を認め、心不全が疑われる。"),
    ("左上肺野に結節影を認める。", "左上肺野に径15mmの結節影を認め、精査を勧める。"),
    ("胸水なし。気胸なし。", "胸水や気胸は認めない。"),
    ("気管チューブの先端は適切な位置にある。", "気管チューブ先端は気管分岐部の上方4cmにあり、適切な位置である。"),
    ("両側肺野にすりガラス影を認める。間質性肺炎の可能性。", "両側下肺野優位にすりガラス影と網状影を認め、間質性肺炎を疑う。"),
    ("肋骨骨折は指摘できない。", "明らかな肋骨骨折は指摘できない。"),
    ("ＣＴＲ５５％、心拡大あり。", "CTR 55%と心拡大を認める。"),
]


def joined(text: str) -> str:
    return " ".join(rm.tokenize_ja(text))


def test_tokens_are_sacrebleus_ja_mecab_tokens():
    from sacrebleu.tokenizers.tokenizer_ja_mecab import TokenizerJaMecab

    theirs = TokenizerJaMecab()
    for gen, ref in PAIRS:
        assert joined(gen) == theirs(gen) and joined(ref) == theirs(ref)
    assert rm.tokenize_ja("胸水を認めない") == ["胸水", "を", "認め", "ない"]
    assert rm.tokenize_ja("胸水\u3000なし\n気胸") == ["胸水", "なし", "気胸"]     # full-width space dropped
    assert rm.tokenize_ja("") == []


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_corpus_bleu_equals_sacrebleu(order):
    hyps, refs = [joined(g) for g, _ in PAIRS], [joined(r) for _, r in PAIRS]
    theirs = BLEU(tokenize="none", max_ngram_order=order, smooth_method="none", effective_order=False)
    expected = theirs.corpus_score(hyps, [refs]).score / 100
    summed = [sum(col) for col in zip(*(rm.score_report(g, r)["bleu_stats"] for g, r in PAIRS))]
    assert expected > 0.05
    assert float(rm.corpus_bleu(summed, order)) == pytest.approx(expected, rel=1e-9)
    # sacrebleu's own ja-mecab tokenizer on the raw text gives the same corpus score.
    raw = BLEU(tokenize="ja-mecab", max_ngram_order=order, smooth_method="none")
    assert raw.corpus_score([g for g, _ in PAIRS], [[r for _, r in PAIRS]]).score / 100 == pytest.approx(
        expected, rel=1e-9)
    # The summary's figure is that corpus score, not a mean of sentence scores.
    rows = [rm.score_report(g, r) for g, r in PAIRS]
    assert rm.summarize_reports(rows, resamples=200)[f"bleu{order}"]["mean"] == pytest.approx(expected, rel=1e-9)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_sentence_bleu_equals_sacrebleu_sentence_score(order):
    theirs = BLEU(tokenize="none", max_ngram_order=order, effective_order=True)     # smooth_method="exp"
    for gen, ref in PAIRS + [("胸水", "胸水なし"), ("気胸", "胸水")]:
        expected = theirs.sentence_score(joined(gen), [joined(ref)]).score / 100
        assert rm.score_report(gen, ref)[f"bleu{order}"] == pytest.approx(expected, rel=1e-9, abs=1e-12)


def test_bleu_rouge_meteor_by_hand():
    # 胸水 を 認める  vs  胸水 を 認め ない: 1-grams 2/3, 2-grams 1/2, 3-grams 0/1, no 4-gram;
    # brevity penalty exp(1 - 4/3).
    row = rm.score_report("胸水を認める", "胸水を認めない")
    assert row["bleu_stats"] == [3, 4, 2, 1, 0, 0, 3, 2, 1, 0]
    bp = math.exp(1 - 4 / 3)
    assert float(rm.corpus_bleu(row["bleu_stats"], 1)) == pytest.approx(bp * 2 / 3)
    assert float(rm.corpus_bleu(row["bleu_stats"], 2)) == pytest.approx(bp * math.sqrt(2 / 3 * 1 / 2))
    assert float(rm.corpus_bleu(row["bleu_stats"], 3)) == 0.0                  # no smoothing in the corpus score
    # Sentence BLEU: the missing 3-gram counts 1/(2·1); order 4 has no 4-gram, so BLEU-4 = BLEU-3.
    assert row["bleu3"] == pytest.approx(bp * (2 / 3 * 1 / 2 * 1 / 2) ** (1 / 3))
    assert row["bleu4"] == row["bleu3"]
    # LCS 胸水 を = 2: P 2/3, R 2/4, F1 = 4/7.
    assert row["rouge_l"] == pytest.approx(4 / 7)
    # METEOR: 2 matches in one chunk; Fmean = PR/(0.9P + 0.1R), penalty 0.5·(1/2)^3.
    fmean = (2 / 3 * 1 / 2) / (0.9 * 2 / 3 + 0.1 * 1 / 2)
    assert row["meteor"] == pytest.approx(fmean * (1 - 0.5 * 0.5 ** 3))


def test_meteor_follows_nltks_alignment():
    # nltk aligns from the last hypothesis token to the last unmatched equal reference token:
    # 胸水→ref 2? no: あり(1)→ref 1, 胸水(0)→ref 2 (the later 胸水): two chunks, not one.
    assert rm.exact_alignment(["胸水", "あり"], ["胸水", "あり", "胸水"]) == [(0, 2), (1, 1)]
    fmean = (1 * 2 / 3) / (0.9 * 1 + 0.1 * 2 / 3)
    assert rm.meteor_exact(["胸水", "あり"], ["胸水", "あり", "胸水"]) == pytest.approx(fmean * (1 - 0.5 * 1.0))
    assert rm.meteor_exact(["右", "胸水", "右"], ["右", "右", "胸水"]) == pytest.approx(0.5)   # 3 chunks of 1
    assert rm.meteor_exact(["CTR"], ["ctr"]) == pytest.approx(0.5)                          # lower-cased
    assert rm.meteor_exact([], ["胸水"]) == 0.0 and rm.meteor_exact(["気胸"], ["胸水"]) == 0.0
    assert rm.rouge_l([], ["胸水"]) == 0.0 and rm.lcs_length(list("ABCBDAB"), list("BDCABA")) == 4


def rows_with_ids():
    return [{**rm.score_report(g, r), "id": f"s{i}"} for i, (g, r) in enumerate(PAIRS)]


def test_summary_intervals_contain_the_figure_and_repeat_by_seed():
    rows = rows_with_ids()
    out = rm.summarize_reports(rows, seed=7, resamples=3000)
    assert set(out) == set(metrics.keys("report"))
    for key, v in out.items():
        assert v["ci_low"] <= v["mean"] <= v["ci_high"], key
        assert v["ci_low"] < v["ci_high"], key
    assert rm.summarize_reports(rows, seed=7, resamples=3000) == out
    assert rm.summarize_reports(rows, seed=8, resamples=3000) != out
    # A mean metric's interval is significance.bootstrap_ci's: the same resamples, the same seed.
    same = significance.bootstrap_ci([r["rouge_l"] for r in rows], seed=7, n_boot=3000)
    assert out["rouge_l"] == pytest.approx(same, rel=1e-12)
    assert rm.summarize_reports([])["bleu4"] == {"mean": None, "ci_low": None, "ci_high": None}


def test_paired_comparison_of_two_systems():
    a = rows_with_ids()
    b = [{**rm.score_report(r, r), "id": f"s{i}"} for i, (_, r) in enumerate(PAIRS)]   # B copies the reference
    res = rm.compare_reports(a, b, seed=1, resamples=2000)
    assert res["bleu4"]["mean_b"] == pytest.approx(1.0) and res["rouge_l"]["mean_b"] == pytest.approx(1.0)
    # METEOR of a copy stays below 1: one chunk of m matches still costs 0.5/m^3.
    assert 0.99 < res["meteor"]["mean_b"] < 1
    # A misses one finding (「心胸郭比は拡大している」 names no finding word): too few to be sure.
    assert res["finding_micro_f1"]["mean_b"] == 1.0 and 0 < res["finding_micro_f1"]["diff"] < 0.1
    assert res["finding_micro_f1"]["ci_low"] == 0.0
    for key in ("bleu4", "rouge_l", "meteor"):
        assert res[key]["n"] == len(PAIRS) and res[key]["diff"] > 0 and res[key]["ci_low"] > 0 and res[key]["p_bootstrap"] < 0.05
    assert res["bleu4"]["mean_a"] == pytest.approx(rm.summarize_reports(a, resamples=10)["bleu4"]["mean"])
    # A mean metric's paired result is significance.paired_comparison's on the same reports.
    same = significance.paired_comparison({r["id"]: r["rouge_l"] for r in a}, {r["id"]: r["rouge_l"] for r in b},
                                          seed=1, n_boot=2000)
    for k in ("diff", "ci_low", "ci_high", "p_bootstrap", "mean_a", "mean_b"):
        assert res["rouge_l"][k] == pytest.approx(same[k], rel=1e-9), k
    # Only shared ids are compared; B − A changes sign when the systems swap.
    assert rm.compare_reports(b, a[:4], seed=1, resamples=500)["rouge_l"]["n"] == 4
    assert rm.compare_reports(b, a, seed=1, resamples=2000)["rouge_l"]["diff"] == pytest.approx(-res["rouge_l"]["diff"])


def test_report_user_errors():
    a = rows_with_ids()
    with pytest.raises(UserError) as err:
        rm.compare_reports(a, [{**a[0], "id": "other"}])
    assert err.value.code == "report_scores.no_shared"
    with pytest.raises(UserError) as err:
        rm.compare_reports(a, [a[0], a[0]])
    assert err.value.code == "report_scores.duplicate_id" and err.value.params["id"] == "s0"
    with pytest.raises(UserError) as err:
        rm.compare_reports(a, [{k: v for k, v in a[0].items() if k != "id"}])
    assert err.value.code == "report_scores.missing_id" and err.value.params == {"row": 1, "side": "B", "key": "id"}
    with pytest.raises(UserError) as err:
        rm.summarize_reports([a[0], {"id": "x", "rouge_l": 0.5}])
    assert err.value.code == "report_scores.missing_scores" and err.value.params["row"] == 2
    assert "bleu_stats" in err.value.params["fields"]


def test_registry_keeps_report_metrics_out_of_exam_views():
    report = ["bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l", "finding_micro_f1", "finding_macro_f1"]
    assert metrics.keys("report") == report and set(rm.STATISTICS) == set(report)
    assert not set(report) & set(metrics.keys() + metrics.csv_keys() + list(metrics.labels("ja")))
    assert not set(report) & {m.key for m in metrics.mean_metrics() + metrics.sum_metrics() + metrics.table1_metrics()}
    assert all(key not in report for key, _, _ in metrics.badge_specs("ja"))
    assert metrics.badge_specs("en", "report") == [("bleu4", "BLEU-4", "score"), ("rouge_l", "ROUGE-L", "score")]
    assert metrics.get("rouge_l").task == "report" and metrics.corpus_metrics()[0].key == "bleu1"
    # Every per-report value a row carries is a registered report metric (the rest are corpus-only).
    row = rm.score_report("胸水あり", "胸水なし")
    assert {k for k in report if k in row} == {"bleu1", "bleu2", "bleu3", "bleu4", "meteor", "rouge_l"}
    with pytest.raises(ValueError):
        metrics.Metric("x", {"ja": "x", "en": "x"}, {"ja": "x", "en": "x"}, table1="X", task="report")
    with pytest.raises(ValueError):
        metrics.keys("essay")


def test_tokenizer_is_safe_across_threads():
    texts = [f"右下肺野に{i}mm大の結節影を認める。胸水なし。" for i in range(200)]
    expected = [list(rm._tagger().parse(t).split()) for t in texts]
    rm._tokens.cache_clear()
    with ThreadPoolExecutor(max_workers=8) as pool:
        assert list(pool.map(rm.tokenize_ja, texts)) == expected
