"""Stop strings derived from the templates: a response is the answer only, the raw text is kept."""
from pipelines.models.decoding import cut_at_stop
from pipelines.models.generation import LocalGenerator
from pipelines.tasks.prompts import load_template


def test_alpaca_templates_stop_at_their_next_block():
    ja = load_template("ja").stop_strings()
    assert "以下は、タスクを説明する指示" in ja and "### 指示" in ja and "### 応答" in ja
    en = load_template("en").stop_strings()
    assert "Below is an instruction that describes a task" in en and "### Instruction" in en
    assert load_template("chat").stop_strings() == ()     # the chat template's own end applies instead


def test_a_one_shot_answer_running_into_the_next_block_is_cut():
    stops = ("###",) + load_template("ja").stop_strings()
    raw = "d  カルシウム拮抗薬と抑制薬  以下は、タスクを説明する指示と、文脈のある入力の組み合わせです。"
    assert cut_at_stop(raw, stops) == "d  カルシウム拮抗薬と抑制薬"
    assert cut_at_stop("b\n### 指示:\n次の", stops) == "b"
    assert cut_at_stop("an answer with no header", stops) == "an answer with no header"


def test_chat_stops_are_the_template_turn_end(tokenizer_dir):
    from transformers import AutoTokenizer
    gen = LocalGenerator.__new__(LocalGenerator)
    gen.tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)
    stops = gen.chat_stops()
    assert "<|im_end|>" in stops
    assert cut_at_stop("answer<|im_end|>\n<|im_start|>user", stops) == "answer"
