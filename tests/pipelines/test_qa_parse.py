"""Parsing model output into pairs: every variant the models produce, and nothing lost."""
from __future__ import annotations

import pytest

from pipelines.data.qa_parse import parse_pairs


def one(text: str) -> tuple[str, str]:
    r = parse_pairs(text)
    assert len(r.pairs) == 1, (r.pairs, r.leftovers)
    return r.pairs[0]["instruction"], r.pairs[0]["output"]


@pytest.mark.parametrize("line", [
    "'instruction': 心不全とは？, 'output': ポンプ機能の低下。",
    "\"instruction\": \"心不全とは？\", \"output\": \"ポンプ機能の低下。\"",
    "{\"instruction\": \"心不全とは？\", \"output\": \"ポンプ機能の低下。\"},",
    "1. 'instruction': 心不全とは？, 'output': ポンプ機能の低下。",
    "１．「instruction」：「心不全とは？」、「output」：「ポンプ機能の低下。」",
    "(3) ‘instruction’: ‘心不全とは？’, ‘output’: ‘ポンプ機能の低下。’",
    "Q1: 'instruction': '心不全とは？', 'output': 'ポンプ機能の低下。'",
    "- instruction：『心不全とは？』 output：『ポンプ機能の低下。』",
    "質問：心不全とは？　回答：ポンプ機能の低下。",
    "Q: 心不全とは？ A: ポンプ機能の低下。",
    "① “instruction”: “心不全とは？”, “output”: “ポンプ機能の低下。”",
])
def test_variants(line):
    assert one(line) == ("心不全とは？", "ポンプ機能の低下。")


def test_colon_inside_answer_is_not_a_new_key():
    q, a = one("'instruction': 拮抗薬は？, 'output': ビタミンK。答え：ビタミンK（用量：10 mg）")
    assert a == "ビタミンK。答え：ビタミンK（用量：10 mg）"


def test_pair_split_over_two_lines_and_input_kept():
    r = parse_pairs("'instruction': 心不全の分類は？\n'output': HFrEF、HFmrEF、HFpEF。\n"
                    "'instruction': 次の薬の作用は？, 'input': SGLT2阻害薬, 'output': 尿糖排泄の促進。")
    assert [p["instruction"] for p in r.pairs] == ["心不全の分類は？", "次の薬の作用は？"]
    assert r.pairs[1]["input"] == "SGLT2阻害薬" and r.leftovers == []


def test_json_array_in_a_code_fence():
    r = parse_pairs('```json\n[\n {"instruction": "a?", "output": "b"},\n {"question": "c?", "answer": "d"}\n]\n```')
    assert [(p["instruction"], p["output"]) for p in r.pairs] == [("a?", "b"), ("c?", "d")]


def test_stray_text_and_broken_lines_are_kept_as_leftovers():
    text = ("以下が15個のデータです。\n"
            "1. 'instruction': 心不全とは？, 'output': ポンプ機能の低下。\n"
            "2. 'output': 質問のない答え\n"
            "これは関係のない文章です。\n"
            "3. 'instruction': 答えのない質問\n")
    r = parse_pairs(text)
    assert len(r.pairs) == 1
    assert r.leftovers == ["以下が15個のデータです。", "2. 'output': 質問のない答え",
                           "これは関係のない文章です。", "3. 'instruction': 答えのない質問"]


def test_garbage_gives_no_pairs_and_keeps_every_line():
    r = parse_pairs("asdf qwer\n\n<s> zxcv ###\n")
    assert r.pairs == [] and r.leftovers == ["asdf qwer", "<s> zxcv ###"]


def test_fifteen_pairs_like_the_paper_asks():
    text = "\n".join(f"{i}. 'instruction': 質問{i}は？, 'output': 回答{i}です。" for i in range(1, 16))
    r = parse_pairs(text)
    assert len(r.pairs) == 15 and r.pairs[14] == {"instruction": "質問15は？", "input": "", "output": "回答15です。"}
