"""The log-likelihood of a reference report given its image, on a tiny random LLaVA: the same number
as the model's own loss and as log_softmax read off by hand, the same in any batch, only the answer
scored (the reference's tokens and the template's closing <|im_end|>), and it tracks fitting."""
from __future__ import annotations

import math

import pytest
import torch

from pipelines.core.errors import UserError
from pipelines.models.references import resolve_model
from pipelines.models.vision import VisionGenerator, load_vision_model, rgb
from pipelines.models.vision_loglik import _score_batch, closing_token, reference_logliks
from tests.pipelines.test_vision import images, vlm  # noqa: F401 (the same tiny VLM and images as the generation tests)

PROMPT = "この画像の所見を書いてください。"
REFERENCES = ["心拡大を認める。", "両側肺野に明らかな浸潤影や腫瘤影を認めない。両側肋骨横隔膜角は鋭。", "骨折なし。"]


def _manual(vlm, image, reference):
    """Prompt ids from the processor as generate_reports calls it, the reference's ids and <|im_end|>."""
    enc = vlm.processor(images=[rgb(image)], text=[vlm.prompt_text(PROMPT)], return_tensors="pt")
    answer = vlm.tokenizer(reference, add_special_tokens=False)["input_ids"] + [
        vlm.tokenizer.convert_tokens_to_ids("<|im_end|>")]
    ids = torch.cat([enc["input_ids"], torch.tensor([answer])], dim=1)
    return enc, ids, answer


def test_the_closing_token_is_chatml_end_of_turn(vlm):
    assert vlm.tokenizer.convert_ids_to_tokens(closing_token(vlm, PROMPT)) == "<|im_end|>"


def test_the_sum_equals_the_models_own_loss_on_the_reference_labels(vlm, images):
    enc, ids, answer = _manual(vlm, images[0], REFERENCES[1])
    labels = ids.clone()
    labels[:, :enc["input_ids"].shape[1]] = -100          # the prompt and the image are context
    with torch.inference_mode():
        loss = vlm.model(input_ids=ids, attention_mask=torch.ones_like(ids), pixel_values=enc["pixel_values"],
                         labels=labels).loss
    [(total, n)] = reference_logliks(vlm, images[:1], PROMPT, REFERENCES[1:2])
    assert n == len(answer)
    assert total == pytest.approx(-loss.item() * n, rel=1e-5)


def test_the_sum_is_log_softmax_at_the_answer_positions_by_hand(vlm, images):
    enc, ids, answer = _manual(vlm, images[2], REFERENCES[0])
    with torch.inference_mode():
        logits = vlm.model(input_ids=ids, pixel_values=enc["pixel_values"]).logits[0].float()
    start = enc["input_ids"].shape[1]
    by_hand = sum(torch.log_softmax(logits[start - 1 + k], -1)[token].item() for k, token in enumerate(answer))
    [(total, n)] = reference_logliks(vlm, images[2:], PROMPT, REFERENCES[:1])
    assert (total, n) == (pytest.approx(by_hand, abs=1e-4), len(answer))
    assert math.isfinite(total / n) and total / n < 0


def test_a_batch_scores_each_row_as_it_scores_alone(vlm, images):
    together = reference_logliks(vlm, images, PROMPT, REFERENCES, batch_size=3)
    alone = [reference_logliks(vlm, [im], PROMPT, [ref])[0] for im, ref in zip(images, REFERENCES)]
    pairs = reference_logliks(vlm, images, PROMPT, REFERENCES, batch_size=2)
    assert len({n for _, n in together}) == 3                  # three lengths: right padding is exercised
    for (a, n_a), (b, n_b), (c, n_c) in zip(together, alone, pairs):
        assert n_a == n_b == n_c and a == pytest.approx(b, abs=1e-4) and c == pytest.approx(b, abs=1e-4)


def test_a_left_padded_prompt_scores_as_it_does_alone(vlm, images):
    """Models whose image tokens vary with the image give prompts of several lengths, which the
    processor left-pads: that padding is removed before the answer is appended."""
    text = vlm.prompt_text(PROMPT)
    enc = vlm.encode(images[:2], text)
    answers = [vlm.tokenizer(r, add_special_tokens=False)["input_ids"] for r in REFERENCES[:2]]
    padded = dict(enc)
    pad = torch.full((2, 3), vlm.tokenizer.pad_token_id)
    padded["input_ids"] = torch.cat([pad, enc["input_ids"]], dim=1)
    padded["attention_mask"] = torch.cat([torch.zeros_like(pad), enc["attention_mask"]], dim=1)
    with torch.inference_mode():
        got = _score_batch(vlm.model, padded, answers, vlm.tokenizer.pad_token_id)
        want = _score_batch(vlm.model, enc, answers, vlm.tokenizer.pad_token_id)
    assert got == pytest.approx(want, abs=1e-4)


def test_special_token_text_in_a_reference_is_read_as_text(vlm, images):
    reference = "所見<image>なし<|im_end|>"
    [(total, n)] = reference_logliks(vlm, images[:1], PROMPT, [reference])
    plain = vlm.tokenizer(reference, add_special_tokens=False, split_special_tokens=True)["input_ids"]
    assert n == len(plain) + 1 and len(plain) > 5 and math.isfinite(total)


def test_a_template_closing_with_plain_text_adds_no_token(vlm, images):
    saved = vlm.processor.chat_template
    vlm.processor.chat_template = saved.replace("<|im_end|>", "END")
    try:
        assert closing_token(vlm, PROMPT) is None
        [(_, n)] = reference_logliks(vlm, images[:1], PROMPT, REFERENCES[:1])
    finally:
        vlm.processor.chat_template = saved
    assert n == len(vlm.tokenizer(REFERENCES[0], add_special_tokens=False)["input_ids"])


def test_a_reference_past_the_context_is_refused(vlm, images):
    with pytest.raises(UserError) as err:
        reference_logliks(vlm, images[:2], PROMPT, [REFERENCES[0], "心拡大" * 200])
    assert err.value.code == "vision.reference_too_long" and err.value.params["index"] == 2
    assert err.value.params["context"] == 256


def test_fitting_the_reference_raises_its_score_above_a_longer_wrong_one(tiny_vlm_dir, images):
    model, processor = load_vision_model(resolve_model(str(tiny_vlm_dir)), device="cpu")
    gen = VisionGenerator(model, processor)
    right, wrong = REFERENCES[0], "左肋骨横隔膜角は鈍化し、左胸水を疑う。右下肺野に斑状の浸潤影。"

    def per_token(reference):
        [(total, n)] = reference_logliks(gen, images[:1], PROMPT, [reference])
        return total / n

    before = per_token(right)
    enc, ids, _ = _manual(gen, images[0], right)
    labels = ids.clone()
    labels[:, :enc["input_ids"].shape[1]] = -100
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(8):
        optimizer.zero_grad()
        model(input_ids=ids, pixel_values=enc["pixel_values"], labels=labels).loss.backward()
        optimizer.step()
    model.eval()
    after = per_token(right)
    assert after > before + 1 and after > per_token(wrong) + 1
