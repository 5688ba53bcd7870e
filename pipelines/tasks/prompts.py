"""Prompt templates as data: the paper's Alpaca formats and any added beside them.

Templates live in ``assets/prompts/eval/NAME.txt`` (see the README there). The same
templates format evaluation questions and instruction-tuning records, so a model is
tested in the format it was tuned in.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from pipelines.core.errors import UserError
from pipelines.core.repo import ASSETS

TEMPLATE_DIR = ASSETS / "prompts" / "eval"
CHAT = "chat"


@dataclass(frozen=True)
class PromptTemplate:
    name: str
    text: str                      # with {instruction} and {input}
    noinput_text: str | None       # variant for records with an empty input

    @property
    def uses_chat_template(self) -> bool:
        return self.name == CHAT

    def stop_strings(self) -> tuple[str, ...]:
        """Where an answer has ended: the template's next header (the opening sentence both
        variants share, e.g. 以下は、タスクを説明する指示) and its ``###`` section lines. A
        1-shot prompt shows the model a whole block, which small models then start again."""
        texts = [t for t in (self.text, self.noinput_text) if t]
        firsts = [t.strip().splitlines()[0].strip() for t in texts]
        header = os.path.commonprefix(firsts).rstrip(" ,、。.")
        stops = [header] if len(header) >= 8 and "{" not in header else []
        for t in texts:
            stops += [line.strip().rstrip(":：").strip() for line in t.splitlines() if line.startswith("###")]
        return tuple(dict.fromkeys(s for s in stops if s))

    def render(self, instruction: str, input: str = "") -> str:
        """Fill the placeholders (plain replacement: braces in medical text stay as they are)."""
        text = self.noinput_text if (not input.strip() and self.noinput_text) else self.text
        # Placeholders are filled in one pass so that an instruction containing the literal
        # text "{input}" is not filled a second time.
        parts = text.split("{instruction}")
        filled = [p.replace("{input}", input) for p in parts]
        return instruction.join(filled).rstrip("\n") + "\n"


def available_templates(directory: Path = TEMPLATE_DIR) -> list[str]:
    return sorted(p.stem for p in directory.glob("*.txt") if "." not in p.stem)


def find_template_file(name_or_path: str, directory: Path = TEMPLATE_DIR, what: str = "Prompt template") -> Path:
    """A ``.txt`` path as given, else ``directory/NAME.txt``; a clear error listing the choices."""
    path = Path(name_or_path)
    if path.suffix != ".txt" or not path.exists():
        path = directory / f"{name_or_path}.txt"
    if not path.exists():
        raise UserError(f"{what} {name_or_path!r} not found.",
                        f"Use one of {', '.join(available_templates(directory))}, or a path to a .txt file.",
                        code="template.not_found",
                        params={"name": str(name_or_path), "known": ", ".join(available_templates(directory))})
    return path


def load_template(name_or_path: str) -> PromptTemplate:
    path = find_template_file(name_or_path)
    text = path.read_text(encoding="utf-8")
    if "{instruction}" not in text:
        raise UserError(f"Template {path} has no {{instruction}} placeholder.",
                        "Add {instruction} (and {input}) where the question and its choices go.",
                        code="template.no_instruction", params={"path": str(path)})
    noinput = path.with_name(path.stem + ".noinput.txt")
    return PromptTemplate(name=path.stem, text=text,
                          noinput_text=noinput.read_text(encoding="utf-8") if noinput.exists() else None)


def render_sft_example(template: PromptTemplate, instruction: str, input: str, output: str,
                       eos_token: str = "") -> tuple[str, str]:
    """(prompt, completion) for instruction tuning: the loss usually covers the completion only."""
    return template.render(instruction, input), output.strip() + eos_token
