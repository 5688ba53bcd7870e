"""The one JSONL reader: bad lines named, oversized lines and files refused before they cost memory."""
import json

import pytest

from pipelines.core.errors import UserError
from pipelines.core.jsonl import read_jsonl
from pipelines.tasks import igakuqa


def test_an_oversized_line_is_a_bad_line_and_the_rest_still_loads(tmp_path):
    f = tmp_path / "q.jsonl"
    big = json.dumps({"problem_text": "x" * 3_000_000})
    f.write_text(json.dumps({"a": 1}) + "\n" + big + "\n" + json.dumps({"b": 2}) + "\r\n", encoding="utf-8")
    problems = []
    rows = read_jsonl(f, problems)
    assert rows == [(1, {"a": 1}), (3, {"b": 2})]
    assert len(problems) == 1 and problems[0].line == 2 and "3.0 MB, over the 1.0 MB limit" in str(problems[0])
    with pytest.raises(UserError, match=r"q.jsonl:2: line is 3.0 MB"):
        read_jsonl(f)


def test_an_oversized_file_is_refused_before_reading(tmp_path):
    f = tmp_path / "huge.jsonl"
    with open(f, "wb") as fh:
        fh.truncate(igakuqa.MAX_QUESTION_FILE_BYTES + 1)      # sparse: costs no disk
    with pytest.raises(UserError, match="over the 50.0 MB this reader accepts"):
        igakuqa.load_questions(f)


def test_last_line_without_newline_and_blank_lines(tmp_path):
    f = tmp_path / "x.jsonl"
    f.write_bytes(b'\xef\xbb\xbf{"a": 1}\n\n  \n{"b": 2}')
    assert read_jsonl(f) == [(1, {"a": 1}), (4, {"b": 2})]
