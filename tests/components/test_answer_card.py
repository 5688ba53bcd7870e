from components import answer_card

Q = {"problem_id": "X1", "problem_text": "どれか。<b>", "choices": ["甲", "乙", "丙"], "answer": ["b"], "kinki": ["c"],
     "category": "循環器", "points": 3.0}


def test_card_marks_correct_and_contraindicated_choices():
    html = answer_card.question_card(Q, [], "ja")
    assert '<li class="correct"' in html and "乙" in html.split('class="correct"')[1].split("</li>")[0]
    assert 'class="kinki"' in html and "禁忌肢" in html
    assert "3 pt" in html and "循環器" in html


def test_model_text_is_escaped():
    row = {"response": "<script>alert(1)</script>", "predicted": ["a"], "accuracy": 0.0, "exact_match": 0.0,
           "gestalt": 0.25}
    html = answer_card.question_card(Q, [("m<1>", row)], "en")
    assert "<script>" not in html and "&lt;script&gt;" in html
    assert "m&lt;1&gt;" in html and "どれか。&lt;b&gt;" in html


# What the workbench passes in from the metric registry (pipelines/metrics.badge_specs).
SPECS = [("accuracy", "accuracy", "pass"), ("exact_match", "exact match", "match"), ("gestalt", "gestalt", "score"),
         ("kinki_picked", "contraindicated picked", "warn")]


def test_badges_show_prediction_and_metrics():
    row = {"response": "乙", "predicted": ["b"], "accuracy": 1.0, "exact_match": 1.0, "gestalt": 0.5, "kinki_picked": 1}
    b = answer_card.badges(row, "en", SPECS)
    assert "predicted: <b>b</b>" in b and "accuracy ✓" in b and "gestalt 0.50" in b and "contraindicated" in b
    wrong = answer_card.badges({**row, "accuracy": 0.0, "exact_match": 0.0, "kinki_picked": 0}, "en", SPECS)
    assert '"badge bad">accuracy ✗' in wrong and '"badge ">exact match ✗' in wrong and "⚠" not in wrong
    assert "accuracy" not in answer_card.badges(row, "en")  # no specs, no metric badges
    box = answer_card.answer_box("m", row, "en")
    assert 'class="ans ok"' in box
    assert "not evaluated" in answer_card.answer_box("m", None, "en")


def test_a_nonsense_answer_marked_correct_shows_a_weak_match():
    # Paper mode picks the most similar choice even when nothing is similar: the card must say so.
    row = {"predicted": ["a"], "accuracy": 1.0, "response": "ええと", "similarities": {"a": 0.06, "b": 0.04, "c": 0.0}}
    html_ = answer_card.answer_box("m", row, "ja")
    assert "弱い一致" in html_ and "類似度 0.06（次点との差 0.02）" in html_
    strong = {**row, "similarities": {"a": 0.9, "b": 0.1, "c": 0.0}}
    assert "弱い一致" not in answer_card.answer_box("m", strong, "ja")
    # A clear best choice that is barely ahead of the next is weak too.
    assert answer_card.is_weak(answer_card.match_strength({**row, "similarities": {"a": 0.6, "b": 0.58}}))
    # Exact-mode or log-likelihood-only rows carry no similarities: no match badge at all.
    assert answer_card.match_strength({"predicted": ["a"]}) is None
    assert "weak match" not in answer_card.answer_box("m", {"predicted": ["a"], "response": None}, "en")


def test_the_card_shows_the_likelihood_choice_and_a_cut_at_the_token_limit():
    row = {"predicted": ["a"], "response": "aです", "similarities": {"a": 0.9, "b": 0.1}, "ll_predicted": ["b"],
           "cut_at_tokens": 64}
    en = answer_card.answer_box("m", row, "en")
    assert "log-likelihood choice: b" in en and "cut at 64 tokens" in en
    ja = answer_card.answer_box("m", row, "ja")
    assert "対数尤度での選択: b" in ja and "64 トークンで打ち切り" in ja
    assert "64 トークンで打ち切り" in answer_card.free_answer_card("m", "…", cut_at_tokens=64, lang="ja")
