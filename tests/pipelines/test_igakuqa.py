"""The question loader: real-file quirks accepted, bad lines reported with file, line and field."""
import json

import pytest

from pipelines.core.errors import UserError
from pipelines.tasks.igakuqa import format_choices, load_questions


def write(path, lines):
    path.write_bytes(b"\n".join(l if isinstance(l, bytes) else l.encode() for l in lines) + b"\n")
    return path


def js(**kw):
    base = {"problem_id": "P1", "problem_text": "どれか。", "choices": ["a1", "b1", "c1", "d1", "e1"],
            "text_only": True, "answer": ["c"]}
    base.update(kw)
    return json.dumps(base, ensure_ascii=False)


def test_quirks_of_real_files(tmp_path):
    f = write(tmp_path / "116-A.jsonl", [
        js(problem_id="1", points="3"),
        js(problem_id="2", points=1.0, choices={"a": "x", "b": "y", "c": "z", "d": "w", "e": "v"}, answer=["b"]),
        js(problem_id="3", choices=[f"c{i}" for i in range(8)], answer=["h"]),
        js(problem_id="4", choices=[], answer=["12"]),
        js(problem_id="5", problem_text="正しいのはどれか。2つ選べ。", answer=["e", "a"], choices_orig=["..."]),
        js(problem_id="6", text_only=False),
    ])
    write(tmp_path / "116-A_metadata.jsonl", [json.dumps(
        {"problem_id": "1", "category": "循環器", "kinki": ["d"], "human_accuracy": "87.5", "breakdown": []},
        ensure_ascii=False)])
    write(tmp_path / "116-A_translate.jsonl", [json.dumps(
        {"problem_id": "1", "problem_text": "Which?", "choices": ["A", "B", "C", "D", "E"], "answer": ["c"]})])
    qs = load_questions(f)
    assert [q.problem_id for q in qs.questions] == ["1", "2", "3", "4", "5"]
    assert qs.skipped_not_text_only == 1
    q1, q2, q3, q4, q5 = qs.questions
    assert q1.points == 3.0 and q2.points == 1.0
    assert q1.category == "循環器" and q1.kinki == ["d"] and q1.human_accuracy == 87.5
    assert q1.in_language("en").problem_text == "Which?" and q1.in_language("en").choices[0] == "A"
    assert q2.choices == ["x", "y", "z", "w", "v"] and q2.answer_text == "y"
    assert q3.letters[-1] == "h" and q3.answer_text == "c7"
    assert q4.is_numeric and q4.answer_text == "12"
    assert q5.answer == ["a", "e"] and q5.answer_text == "a1、e1"
    assert format_choices(q2).splitlines()[1] == "b. y"


@pytest.mark.parametrize("line, field, words", [
    (b'{"problem_id": "P1", "problem_text": "x", "answer": [', "(line)", "malformed JSON"),
    (js(answer=["f"]).encode(), "answer", "unknown answer letter"),
    (json.dumps({"problem_id": "P1", "choices": ["a"], "answer": ["a"]}).encode(), "problem_text", "missing"),
    (js().encode("utf-8")[:-3] + b'\xff\xfe"}', "(line)", "UTF-8"),
    (js(choices=[], answer=["c"]).encode(), "answer", "numeric"),
    (js(points="three").encode(), "points", "not a number"),
])
def test_bad_line_named_with_file_line_field(tmp_path, line, field, words):
    f = write(tmp_path / "q.jsonl", [js(problem_id="ok"), line])
    with pytest.raises(UserError) as exc:
        load_questions(f)
    msg = str(exc.value)
    assert f"q.jsonl:2: {field}:" in msg and words in msg and "--on-error skip" in msg
    # …or the run continues without that line, reporting it.
    qs = load_questions(f, on_error="skip")
    assert [q.problem_id for q in qs.questions] == ["ok"]
    assert qs.problems[0].line == 2 and qs.problems[0].field == field


def test_empty_and_missing_files(tmp_path):
    with pytest.raises(UserError, match="no usable question"):
        load_questions(write(tmp_path / "empty.jsonl", [b""]))
    with pytest.raises(UserError, match="does not exist"):
        load_questions(tmp_path / "nope.jsonl")


def test_duplicate_ids_reported(tmp_path):
    f = write(tmp_path / "q.jsonl", [js(), js()])
    qs = load_questions(f, on_error="skip")
    assert len(qs.questions) == 1 and "duplicate" in qs.problems[0].message


def test_shipped_questions_are_valid_and_original_pool_separate():
    from tests.conftest import REPO
    data = load_questions(REPO / "assets/questions/sample_ja.jsonl", include_images=True)
    pool = load_questions(REPO / "assets/questions/shots_ja.jsonl")
    assert len(data.questions) >= 40 and not data.problems and not pool.problems
    assert not {q.problem_id for q in data.questions} & {q.problem_id for q in pool.questions}
    assert not {q.problem_text for q in data.questions} & {q.problem_text for q in pool.questions}
    assert any(len(q.answer) > 1 for q in data.questions)
    assert any(q.kinki for q in data.questions)
    assert all(q.translation for q in data.questions)


def test_official_corrections_accept_either_answer_and_blank_ids_are_rejected(tmp_path):
    from pipelines.evaluation.scoring import score_choice_logprobs, score_response
    from pipelines.tasks.igakuqa import parse_question
    base = {"problem_text": "どれか。", "choices": ["りんご", "みかん", "ぶどう", "もも", "なし"]}
    q, errs = parse_question({**base, "problem_id": "1", "answer": ["a or d"]}, "f", 1)
    assert not errs and q.answer == ["a"] and q.accepted == [["a"], ["d"]]
    assert score_response(q, "もも", "paper")["accuracy"] == 1.0
    assert score_response(q, "りんご", "paper")["accuracy"] == 1.0
    assert score_response(q, "ぶどう", "paper")["accuracy"] == 0.0
    lp = {"a": -5.0, "b": -4.0, "c": -3.0, "d": -1.0, "e": -6.0}
    assert score_choice_logprobs(q, lp, lp)["ll_accuracy"] == 1.0
    two, errs = parse_question({**base, "problem_id": "2", "answer": ["a", "b または c"]}, "f", 2)
    assert not errs and two.accepted == [["a", "b"], ["a", "c"]]
    _, errs = parse_question({**base, "problem_id": "3", "answer": ["a or z"]}, "f", 3)
    assert errs and "unknown answer letter" in errs[0].message
    for blank in ("", "  ", None):
        _, errs = parse_question({**base, "problem_id": blank, "answer": ["a"]}, "f", 4)
        assert [e.field for e in errs] == ["problem_id"]


def test_shuffling_keeps_accepted_alternatives_pointing_at_the_same_texts():
    from pipelines.evaluation.prompting import shuffled
    from pipelines.tasks.igakuqa import parse_question
    q, _ = parse_question({"problem_id": "9", "problem_text": "t", "choices": ["A", "B", "C", "D", "E"],
                           "answer": ["a or d"]}, "f", 1)
    s, _ = shuffled(q, seed=3)
    assert sorted(s.choice_text(alt[0]) for alt in s.accepted) == ["A", "D"]


def test_sidecars_with_wrong_types_are_named_and_ignored_not_a_traceback(tmp_path):
    """A metadata line with kinki 7 crashed the loader; kinki "abc" counted as three letters."""
    import json

    from pipelines.tasks.igakuqa import load_questions
    from tests.conftest import SAMPLE_QUESTIONS
    first = json.loads(SAMPLE_QUESTIONS.read_text(encoding="utf-8").splitlines()[0])
    data = tmp_path / "q.jsonl"
    data.write_text(json.dumps(first, ensure_ascii=False) + "\n", encoding="utf-8")
    pid = first["problem_id"]
    for kinki in (7, "abc"):
        (tmp_path / "q_metadata.jsonl").write_text(json.dumps({"problem_id": pid, "kinki": kinki, "category": ["x"]})
                                                   + "\n", encoding="utf-8")
        (tmp_path / "q_translate.jsonl").write_text(json.dumps({"problem_id": pid, "problem_text": 5}) + "\n",
                                                    encoding="utf-8")
        qs = load_questions(data, on_error="skip")
        q = qs.questions[0]
        assert q.kinki == [] and q.category is None and not getattr(q, "translation", None)
        assert sorted(p.field for p in qs.problems) == ["category", "kinki", "problem_text"], qs.problems
