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
