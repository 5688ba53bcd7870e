"""Metric definitions against hand-computed values (Ratcliff/Obershelp: ratio = 2·M / T)."""
import pytest

from pipelines.evaluation.scoring import normalize, score_response, similarity, top_k
from pipelines.tasks.igakuqa import Question


def q5(answer=("e",), kinki=(), points=1.0):
    return Question(problem_id="X1", problem_text="高カリウム血症の原因となるのはどれか。",
                    choices=["β刺激薬", "インスリン", "ループ利尿薬", "甘草", "ACE阻害薬"],
                    answer=list(answer), kinki=list(kinki), points=points)


def test_gestalt_is_2m_over_t():
    # "ACE阻害薬です" (8 chars) vs "ACE阻害薬" (6 chars): M = 6, T = 14 → 12/14.
    assert similarity("ACE阻害薬です", "ACE阻害薬", "paper") == pytest.approx(12 / 14)


def test_paper_similarity_is_asymmetric_and_harness_averages():
    # tide→diet: the first longest block is "t" (tide[0] = diet[3]); nothing matches to its
    # right or left in order, so M = 1, T = 8 → 0.25. diet→tide: "d" (diet[0] = tide[2]),
    # then "e" to its right (diet[2] = tide[3]): M = 2 → 0.5.
    assert similarity("tide", "diet", "paper") == pytest.approx(0.25)
    assert similarity("diet", "tide", "paper") == pytest.approx(0.5)
    assert similarity("tide", "diet", "harness") == pytest.approx(0.375)


def test_paper_normalisation_nfkc_and_strip():
    assert normalize("  ＡＣＥ阻害薬\n", "paper") == "ACE阻害薬"
    # harness: first non-empty line only, no NFKC
    assert normalize("\n ＡＣＥ阻害薬 \n説明", "harness") == "ＡＣＥ阻害薬"


def test_correct_answer_response():
    r = score_response(q5(), "ACE阻害薬です", "paper")
    assert r["predicted"] == ["e"]
    assert r["accuracy"] == 1.0
    assert r["exact_match"] == 1.0
    assert r["gestalt"] == pytest.approx(12 / 14)
    assert r["points_earned"] == 1.0


def test_wrong_answer_and_kinki_counted():
    r = score_response(q5(kinki=("b",)), "インスリン", "paper")
    assert r["predicted"] == ["b"]
    assert r["accuracy"] == 0.0 and r["exact_match"] == 0.0
    assert r["kinki_picked"] == 1
    # "インスリン" vs "ACE阻害薬": no common character → 0
    assert r["gestalt"] == 0.0


def test_full_width_response_matches_after_nfkc_only_in_paper_mode():
    assert score_response(q5(), "ＡＣＥ阻害薬", "paper")["exact_match"] == 1.0
    assert score_response(q5(), "ＡＣＥ阻害薬", "harness")["exact_match"] == 0.0


def test_harness_exact_match_is_equality_of_first_line():
    assert score_response(q5(), "ACE阻害薬\n理由: …", "harness")["exact_match"] == 1.0
    assert score_response(q5(), "答えはACE阻害薬", "harness")["exact_match"] == 0.0
    assert score_response(q5(), "答えはACE阻害薬", "paper")["exact_match"] == 1.0


def test_multi_answer_needs_exact_set():
    q = Question(problem_id="M", problem_text="2つ選べ。", choices=["りんご", "みかん", "ぶどう", "もも", "なし"],
                 answer=["b", "d"], points=3)
    both = score_response(q, "みかん、もも", "paper")
    assert both["predicted"] == ["b", "d"] and both["accuracy"] == 1.0 and both["points_earned"] == 3
    # gestalt vs "みかん、もも" (answer texts joined by 、) is 1.0
    assert both["gestalt"] == pytest.approx(1.0)
    one = score_response(q, "みかん", "paper")
    assert one["accuracy"] == 0.0 and one["exact_match"] == 0.0


def test_top_k_ties_broken_by_letter_order():
    assert top_k({"a": 0.2, "b": 0.5, "c": 0.5, "d": 0.1}, 1) == ["b"]
    assert top_k({"a": 0.2, "b": 0.2, "c": 0.2}, 2) == ["a", "b"]


def test_numeric_question():
    q = Question(problem_id="N", problem_text="BMIを求めよ。", choices=[], answer=["29"])
    assert score_response(q, "BMIは２９です", "paper")["accuracy"] == 1.0
    assert score_response(q, "29.4", "paper")["accuracy"] == 0.0
    assert score_response(q, "わかりません", "paper")["predicted"] == []
