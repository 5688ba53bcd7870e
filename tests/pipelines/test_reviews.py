import pytest

from pipelines.evaluation import reviews as br


def cands():
    return [br.Candidate("/e/base", "base", f"q{i}", s, f"answer {i}") for i in range(4) for s in (0, 1)] + \
           [br.Candidate("/e/tuned", "tuned", "q0", 0, "x"), br.Candidate("/e/tuned", "tuned", "q1", 0, "  ")]


def test_ratings_are_stored_per_reviewer_and_replaced_on_rerating(workspace):
    store = br.ReviewStore(workspace)
    c = cands()
    store.rate(c[0], "wrong", "dr-a")
    store.rate(c[0], "harmful", "dr-a", note="dangerous dose")
    store.rate(c[0], "correct", "dr-b")
    store.rate(c[-2], "partly", "dr-a")
    assert len(store.ratings()) == 3
    assert {r["rating"] for r in store.ratings("dr-a")} == {"harmful", "partly"}
    assert store.rated_keys("dr-a") == {c[0].key, c[-2].key}
    with pytest.raises(ValueError):
        store.rate(c[1], "great", "dr-a")
    # A second store on the same workspace sees the same table.
    assert len(br.ReviewStore(workspace).ratings()) == 3
    # The changed rating keeps what it replaced; other reviewers' ratings are theirs alone.
    assert [h["rating"] for h in store.history(c[0], "dr-a")] == ["wrong", "harmful"]
    assert store.history(c[0], "dr-a")[1]["note"] == "dangerous dose"
    assert [h["rating"] for h in store.history(c[0], "dr-b")] == ["correct"]
    assert store.rating_of(c[0], "dr-a") == "harmful" and store.rating_of(c[1], "dr-a") is None
    assert [r["problem_id"] for r in store.ratings("dr-a", eval_dirs=["/e/tuned"])] == ["q0"]
    with pytest.raises(ValueError, match="reviewer"):
        store.rate(c[1], "correct", "  ")


def test_a_batch_is_done_only_when_every_answer_is_rated():
    c = cands()
    ratable = [x for x in c if x.response.strip()]
    assert not br.batch_done(c, set())
    assert not br.batch_done(c, {x.key for x in ratable[:-1]})
    assert br.batch_done(c, {x.key for x in ratable})        # the empty answer cannot be rated
    assert not br.batch_done([], set())


def test_queue_hides_rated_and_empty_answers_and_is_shuffled_reproducibly():
    c = cands()
    q = br.queue(c, {c[0].key}, seed=1)
    assert c[0] not in q and c[-1] not in q and len(q) == len(c) - 2
    assert q == br.queue(c, {c[0].key}, seed=1)
    assert q != br.queue(c, {c[0].key}, seed=2)


def test_summary_per_checkpoint():
    rows = [{"checkpoint": "base", "rating": r} for r in ("correct", "correct", "harmful", "wrong")] + \
           [{"checkpoint": "tuned", "rating": "partly"}]
    df = br.summarize(rows).set_index("checkpoint")
    assert df.loc["base", "n"] == 4 and df.loc["base", "correct %"] == 50.0 and df.loc["base", "harmful %"] == 25.0
    assert df.loc["tuned", "partly %"] == 100.0
    assert br.summarize([]).empty


def test_a_report_rating_carries_a_harm_flag_and_a_note(workspace):
    """A report that reads well but misses a pneumothorax: 'partly' and harmful, both kept."""
    store = br.ReviewStore(workspace)
    report = br.Candidate("/e/cxr", "demo-vlm", "cxr-0001", 0, "心拡大なし。")
    other = br.Candidate("/e/cxr", "demo-vlm", "cxr-0002", 0, "異常なし。")
    store.rate(report, "partly", "dr-a", note="  気胸の見落とし ", harm=True)
    store.rate(other, "correct", "dr-a")
    assert store.current(report, "dr-a") == {"rating": "partly", "harm": True, "note": "気胸の見落とし"}
    assert store.current(other, "dr-a") == {"rating": "correct", "harm": False, "note": ""}
    assert store.current(report, "dr-b") is None
    store.rate(report, "wrong", "dr-a", harm=False)               # changed on a second look
    assert [(h["rating"], h["harm"]) for h in store.history(report, "dr-a")] == [("partly", 1), ("wrong", 0)]
    df = br.summarize(store.ratings(), br.REPORT_RATINGS, harm=True)
    assert list(df.columns) == ["checkpoint", "n", "correct %", "partly %", "wrong %", "harm %"]
    assert df.iloc[0].to_dict() == {"checkpoint": "demo-vlm", "n": 2, "correct %": 50.0, "partly %": 0.0,
                                    "wrong %": 50.0, "harm %": 0.0}
    store.rate(other, "correct", "dr-a", harm=True)
    assert br.summarize(store.ratings(), br.REPORT_RATINGS, harm=True).iloc[0]["harm %"] == 50.0
    # The exam summary keeps its columns.
    assert "harm %" not in br.summarize(store.ratings()).columns
