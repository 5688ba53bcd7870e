"""The generated command lines: flags from config fields, help from their comments, defaults shown."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from pipelines.core import cli


@dataclass
class DemoConfig:
    data: str = field(metadata=cli.required())          # IgakuQA JSONL to score
    method: Literal["generate", "loglik"] = "generate"  # how answers are obtained
    shots: tuple[int, ...] = (0, 1)                     # 0 and/or 1
    save_steps: list[int] = field(default_factory=list)
    batching: str = "grouped"           # grouped: length-grouped batches
                                        # flat: padding-free rows
    max_new_tokens: int = 256
    limit: int | None = None
    """at most this many questions"""
    shuffle: bool = False               # permute the choices
    workspace: str | None = None
    secret: str = field(default="x", metadata=cli.no_cli())


def _parse(*argv):
    return cli.config_parser("demo", DemoConfig, "Demo.").parse_args(list(argv))


def test_field_docs_from_comments_continuations_and_docstrings():
    docs = cli.field_docs(DemoConfig)
    assert docs["data"] == "IgakuQA JSONL to score"
    assert docs["batching"] == "grouped: length-grouped batches flat: padding-free rows"
    assert docs["limit"] == "at most this many questions"
    assert "save_steps" not in docs


def test_parsing_types_lists_bools_and_defaults():
    cfg = cli.config_from_args(DemoConfig, _parse("--data", "q.jsonl", "--shots", "1", "--save-steps", "10,20", "30",
                                                  "--shuffle", "--limit", "3"))
    assert cfg == DemoConfig(data="q.jsonl", shots=(1,), save_steps=[10, 20, 30], shuffle=True, limit=3)
    assert cli.config_from_args(DemoConfig, _parse("--data", "x")) == DemoConfig(data="x")


def test_hidden_alias_and_common_help():
    ns = _parse("--data", "x", "--max-tokens", "12")
    assert cli.config_from_args(DemoConfig, ns).max_new_tokens == 12
    text = cli.config_parser("demo", DemoConfig, "Demo.").format_help()
    assert "--max-tokens" not in text and "--max-new-tokens" in text
    assert "most tokens generated per answer (default: 256)" in text
    assert "usage: jmedlora demo" in text
    assert "{generate,loglik}" in text and "(default: generate)" in text
    assert "--secret" not in text


@pytest.mark.parametrize("argv", [["--data", "x", "--method", "nope"], ["--data", "x", "--shots", "a"], []])
def test_bad_values_exit_2(argv, capsys):
    with pytest.raises(SystemExit) as exc:
        _parse(*argv)
    assert exc.value.code == 2
    assert "Traceback" not in capsys.readouterr().err
