"""An answer cut at the token limit ends at a whole character and says where it was cut."""
from transformers import AutoTokenizer

from pipelines.models.generation import decode_whole_chars


def test_a_cut_inside_a_character_drops_the_partial_character(tokenizer_dir):
    tok = AutoTokenizer.from_pretrained(tokenizer_dir)
    text = "深部静脈血栓症には抗凝固療法を行う。"
    ids = tok(text, add_special_tokens=False)["input_ids"]
    broken = [k for k in range(1, len(ids)) if tok.decode(ids[:k]).endswith("\ufffd")]
    assert broken, "the tokenizer splits no character across tokens: the test would prove nothing"
    for k in broken:
        cut = decode_whole_chars(tok, ids[:k], cut=True)
        assert "\ufffd" not in cut and text.startswith(cut)
    # A whole answer is decoded as it is (a real U+FFFD in it is not ours to remove).
    assert decode_whole_chars(tok, ids, cut=False) == text
