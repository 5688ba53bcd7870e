from components import side_by_side as sbs

QS = [{"problem_id": p, "problem_text": f"問題 {p}", "choices": ["a1", "b1"], "answer": ["a"]} for p in ("q1", "q2", "q3")]


def row(pid, shots, pred, resp="", acc=None):
    return {"problem_id": pid, "shots": shots, "predicted": pred, "accuracy": float(pred == ["a"]) if acc is None else acc,
            "response": resp}


RUNS = {
    "base": [row("q1", 0, ["a"], "a1"), row("q2", 0, ["b"], "b1"), row("q1", 1, ["a"])],
    "tuned": [row("q1", 0, ["a"]), row("q2", 0, ["a"], "心房細動"), row("q9", 0, ["b"])],
}


def test_items_follow_question_order_and_keep_unknown_questions():
    items = sbs.build_items(QS, RUNS)
    assert [i.problem_id for i in items] == ["q1", "q2", "q9"]  # q3 unanswered; q9 not in the file
    assert set(items[0].cells) == {("base", 0), ("base", 1), ("tuned", 0)}
    assert sbs.build_items(QS, RUNS, shots=(1,))[0].cells.keys() == {("base", 1)}


def test_filters():
    items = sbs.build_items(QS, RUNS)
    assert [i.problem_id for i in sbs.filter_items(items, disagreements=True)] == ["q2"]
    assert [i.problem_id for i in sbs.filter_items(items, only_wrong=True)] == ["q2", "q9"]
    assert [i.problem_id for i in sbs.filter_items(items, search="心房")] == ["q2"]    # in a response
    assert [i.problem_id for i in sbs.filter_items(items, search="問題 Q1")] == ["q1"]  # case-insensitive
    assert sbs.filter_items(items, disagreements=True, only_wrong=True, search="nothing") == []


def test_disagreement_is_between_checkpoints_within_one_shot_setting():
    one_ckpt = {"base": [row("q1", 0, ["a"]), row("q1", 1, ["b"])]}
    assert not sbs.build_items(QS, one_ckpt)[0].disagree            # 0-shot vs 1-shot of one model
    crossed = {"base": [row("q1", 0, ["a"]), row("q1", 1, ["b"])], "tuned": [row("q1", 0, ["b"])]}
    assert sbs.build_items(QS, crossed)[0].disagree                  # base and tuned differ at 0-shot
    agree = {"base": [row("q1", 0, ["a"]), row("q1", 1, ["b"])], "tuned": [row("q1", 0, ["a"]), row("q1", 1, ["b"])]}
    assert not sbs.build_items(QS, agree)[0].disagree


def test_paging_clamps():
    assert sbs.page(list(range(25)), 3, 10) == ([20, 21, 22, 23, 24], 3)
    assert sbs.page(list(range(25)), 99, 10)[0] == [20, 21, 22, 23, 24]
    assert sbs.page([], 1, 10) == ([], 1)


def test_frame_has_one_row_per_question_and_columns_per_checkpoint_and_shot():
    df = sbs.items_frame(sbs.build_items(QS, RUNS), ["base", "tuned"])
    assert list(df["problem_id"]) == ["q1", "q2", "q9"]
    assert df.loc[1, "base 0s predicted"] == "b" and df.loc[1, "tuned 0s predicted"] == "a"
    assert bool(df.loc[1, "disagree"]) and not bool(df.loc[0, "disagree"])
