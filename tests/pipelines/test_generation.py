"""An answer cut at the token limit ends at a whole character and says where it was cut; one batch's
``generate`` falls back from the static cache and names running out of GPU memory."""
import pytest
from transformers import AutoTokenizer

from pipelines.models.decoding import decode_whole_chars


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


def test_generate_once_falls_back_from_the_static_cache_and_names_out_of_memory():
    import torch

    from pipelines.core.errors import UserError
    from pipelines.models.decoding import generate_once

    class Model:
        def __init__(self, error=None):
            self.error, self.calls = error, []

        def generate(self, **kwargs):
            self.calls.append(dict(kwargs))
            if self.error is not None:
                raise self.error
            if kwargs.get("cache_implementation") == "static":
                raise ValueError("This model does not support the static cache")
            return "out"

    m = Model()
    assert generate_once(m, {"input_ids": 1}, {"cache_implementation": "static", "max_new_tokens": 2}) == ("out", False)
    assert m.calls[-1] == {"input_ids": 1, "max_new_tokens": 2}
    assert generate_once(m, {}, {"max_new_tokens": 2}) == ("out", True)
    with pytest.raises(ValueError, match="other"):
        generate_once(Model(ValueError("other problem")), {}, {"cache_implementation": "static"})
    with pytest.raises(UserError) as err:
        generate_once(Model(torch.OutOfMemoryError("CUDA out of memory")), {}, {})
    assert err.value.code == "gpu.oom"
