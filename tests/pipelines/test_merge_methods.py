"""Tensor merges against hand-computed values, and the streaming merge of saved models."""
from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file, save_file

from pipelines.merging.methods import (
    SafetensorsModel,
    dare_drop,
    layer_group,
    merge_deltas,
    merge_tensor,
    stream_merge,
    tensor_generator,
    trim_magnitude,
)

BASE = torch.full((4,), 10.0)
D1 = torch.tensor([1.0, -2.0, 3.0, 0.5])
D2 = torch.tensor([-1.0, 1.0, 2.0, -4.0])


def test_linear_is_the_normalised_weighted_average_and_one_zero_is_the_first_input_bit_for_bit():
    a, b = torch.randn(3, 5), torch.randn(3, 5)
    assert torch.equal(merge_tensor("linear", [a, b], [1.0, 0.0]), a)
    assert torch.allclose(merge_tensor("linear", [a, b], [0.3, 0.1]), 0.75 * a + 0.25 * b)


def test_task_arithmetic_adds_weighted_task_vectors_to_the_base():
    out = merge_tensor("task_arithmetic", [BASE + D1, BASE + D2], [0.5, 2.0], base=BASE)
    assert torch.allclose(out, torch.tensor([10 + 0.5 - 2, 10 - 1 + 2, 10 + 1.5 + 4, 10 + 0.25 - 8]))


def test_trim_keeps_the_largest_magnitudes():
    assert torch.equal(trim_magnitude(D1, 0.5), torch.tensor([0.0, -2.0, 3.0, 0.0]))
    assert torch.equal(trim_magnitude(D2, 0.25), torch.tensor([0.0, 0.0, 0.0, -4.0]))
    assert torch.equal(trim_magnitude(D1, 1.0), D1)


def test_ties_by_hand():
    # density 0.5: trimmed δ1 = [0, -2, 3, 0], δ2 = [0, 0, 2, -4]; Σ = [0, -2, 5, -4] → signs [+, -, +, -];
    # agreeing entries averaged: [0 (nobody), -2/1, (3+2)/2, -4/1]
    out = merge_deltas("ties", [D1, D2], [1.0, 1.0], 0.5)
    assert torch.allclose(out, torch.tensor([0.0, -2.0, 2.5, -4.0]))
    # weights (2, 1), no trim: weighted [2,-4,6,1] and [-1,1,2,-4]; Σ = [1,-3,8,-3] → [+,-,+,-];
    # kept: [2 | -4 | 6,2 | -4] over weights [2 | 2 | 3 | 1]
    out = merge_tensor("ties", [BASE + D1, BASE + D2], [2.0, 1.0], 1.0, base=BASE)
    assert torch.allclose(out, BASE + torch.tensor([1.0, -2.0, 8 / 3, -4.0]))


def test_ties_with_weights_one_zero_is_the_first_input():
    assert torch.allclose(merge_deltas("ties", [D1, D2], [1.0, 0.0], 1.0), D1)


def test_dare_drops_and_rescales_reproducibly():
    delta = torch.randn(200, 200)
    out = dare_drop(delta, 0.25, tensor_generator(3, "w"))
    kept = out != 0
    assert 0.2 < kept.float().mean() < 0.3
    assert torch.allclose(out[kept], delta[kept] * 4)           # rescaled by 1/density
    assert torch.equal(out, dare_drop(delta, 0.25, tensor_generator(3, "w")))
    assert not torch.equal(out, dare_drop(delta, 0.25, tensor_generator(3, "v")))


def test_dare_linear_and_dare_ties_at_density_one_are_task_arithmetic_and_ties():
    assert torch.allclose(merge_deltas("dare_linear", [D1, D2], [0.5, 2.0], 1.0), 0.5 * D1 + 2 * D2)
    assert torch.allclose(merge_deltas("dare_ties", [D1, D2], [2.0, 1.0], 1.0),
                          merge_deltas("ties", [D1, D2], [2.0, 1.0], 1.0))


def test_dare_ties_by_hand_with_a_known_mask():
    # The first draw of the tensor's generator is δ1's mask.
    keep = torch.rand((4,), generator=tensor_generator(0, "t")) < 0.5
    d1 = D1 * keep / 0.5
    out = merge_deltas("dare_ties", [D1, D2], [1.0, 0.0], 0.5, generator=tensor_generator(0, "t"))
    assert torch.allclose(out, d1)      # weight 0 for the second input: only δ1's survivors, rescaled


def test_layer_groups():
    assert [layer_group(f"model.layers.{i}.mlp.up_proj.weight", 4, 2) for i in range(4)] == [0, 0, 1, 1]
    assert layer_group("model.embed_tokens.weight", 4, 2) == 0
    assert layer_group("model.norm.weight", 4, 2) == 1
    assert layer_group("gpt_neox.layers.3.attention.query_key_value.weight", 4, 4) == 3


def _save_model(path, tensors: dict, shards: int = 2):
    path.mkdir()
    names = sorted(tensors)
    weight_map = {}
    for s in range(shards):
        part = {n: tensors[n] for n in names[s::shards]}
        fname = f"model-{s + 1:05d}-of-{shards:05d}.safetensors"
        save_file(part, path / fname)
        weight_map.update({n: fname for n in part})
    (path / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    return path


def test_stream_merge_of_two_saved_models_writes_the_expected_tensors_shard_by_shard(tmp_path):
    torch.manual_seed(0)
    names = [f"model.layers.{i}.w" for i in range(4)] + ["model.embed_tokens.weight"]
    base = {n: torch.randn(8, 8).to(torch.bfloat16) for n in names}
    m1 = {n: (base[n].float() + torch.randn(8, 8)).to(torch.bfloat16) for n in names}
    m2 = {n: (base[n].float() + torch.randn(8, 8)).to(torch.bfloat16) for n in names}
    srcs = [SafetensorsModel(_save_model(tmp_path / k, t)) for k, t in (("base", base), ("a", m1), ("b", m2))]
    seen = []

    def merged(name, ref):
        return merge_tensor("task_arithmetic", [srcs[1].get(name), srcs[2].get(name)], [0.3, 0.6], base=ref)

    files = stream_merge(tmp_path / "out", srcs[0], merged, shard_bytes=300, on_tensor=seen.append)
    assert len(files) > 1 and seen == [n for shard in srcs[0].shards().values() for n in shard]
    out = SafetensorsModel(tmp_path / "out")
    assert set(out.names()) == set(names)
    for n in names:
        expected = (base[n].float() + 0.3 * (m1[n].float() - base[n].float())
                    + 0.6 * (m2[n].float() - base[n].float())).to(torch.bfloat16)
        got = out.get(n)
        assert got.dtype == torch.bfloat16 and torch.equal(got, expected)
    single = stream_merge(tmp_path / "one", srcs[0], merged)
    assert single == ["model.safetensors"] and set(load_file(tmp_path / "one" / "model.safetensors")) == set(names)


def test_a_model_without_safetensors_is_refused(tmp_path):
    from pipelines.core.errors import UserError
    (tmp_path / "m").mkdir()
    with pytest.raises(UserError, match="no safetensors"):
        SafetensorsModel(tmp_path / "m")


# -- jradievo: JRadiEvo's DARE + TIES (one drop rate, per-input trim and weight, global λ) ---------

def test_jradievo_without_drop_by_hand():
    # densities (0.5, 0.5): δ1 → [0, -2, 3, 0], δ2 → [0, 0, 2, -4]; unweighted Σ = [0, -2, 5, -4]:
    # signs [+ (the tensor's overall sign: Σ = -1 < 0 → -), -, +, -] — the first entry is zero in both,
    # so nobody agrees there. Weights (2, 0.5): [0, 2·-2 / 1, (2·3 + 0.5·2) / 2, 0.5·-4 / 1]; λ = 1.5.
    out = merge_deltas("jradievo", [D1, D2], [2.0, 0.5], [0.5, 0.5], drop=0.0, scale=1.5)
    assert torch.allclose(out, 1.5 * torch.tensor([0.0, -4.0, 3.5, -2.0]))
    # The divisor counts agreeing inputs, not their weights (TIES's would be 2 + 0.5 at index 2).
    assert not torch.allclose(out, 1.5 * merge_deltas("ties", [D1, D2], [2.0, 0.5], 0.5))


def test_jradievo_zero_sum_entries_take_the_tensors_overall_sign():
    a, b = torch.tensor([1.0, 5.0]), torch.tensor([-1.0, 1.0])       # Σ = [0, 6]: overall +, so + at index 0
    out = merge_deltas("jradievo", [a, b], [1.0, 1.0], [1.0, 1.0], drop=0.0, scale=1.0)
    assert torch.allclose(out, torch.tensor([1.0, 3.0]))


def test_jradievo_one_input_alone_is_that_input_exactly():
    """The anchor that scores an input alone: its weight and density 1, the others' density 0, no drop, λ 1."""
    out = merge_tensor("jradievo", [BASE + D1, BASE + D2], [1.0, 0.0], [1.0, 0.0], base=BASE, drop=0.0, scale=1.0)
    assert torch.equal(out, BASE + D1)


def test_jradievo_with_drop_by_hand_with_known_masks():
    gen = tensor_generator(7, "layer.w")
    keep1 = torch.rand((4,), generator=gen) < 0.6                  # δ1's mask is the first draw, δ2's the second
    keep2 = torch.rand((4,), generator=gen) < 0.6
    k1, k2 = D1 * keep1 / 0.6, D2 * keep2 / 0.6
    total = k1 + k2
    sign = torch.where(total > 0, 1.0, torch.where(total < 0, -1.0, 1.0 if total.sum() >= 0 else -1.0))
    a1, a2 = (k1 != 0) & (k1.sign() == sign), (k2 != 0) & (k2.sign() == sign)
    expected = 0.8 * (0.7 * a1 * k1 + 0.2 * a2 * k2) / (a1.int() + a2.int()).clamp(min=1)
    out = merge_deltas("jradievo", [D1, D2], [0.7, 0.2], [1.0, 1.0], drop=0.4, scale=0.8,
                       generator=tensor_generator(7, "layer.w"))
    assert torch.allclose(out, expected)
