"""Training data: read, check, tokenize and batch it for the training loop.

Sources (``--data``):
  * an Alpaca-format JSONL file (``instruction``, optional ``input``, ``output`` per line);
  * a directory written by ``datasets``' ``save_to_disk`` with the same columns;
  * a dataset registered in the workspace (``NAME`` or ``NAME@VERSION``; see ``Workspace.datasets()``);
  * for continual pretraining: a ``.txt``/``.md`` file, a folder of them, or JSONL / a saved
    dataset with a ``text`` column.

SFT examples are formatted with the evaluation templates (``pipelines.tasks.prompts``) so a model
is trained in the format it is tested in. Micro-batches come in three shapes
(``TrainConfig.batching``):
  * ``grouped`` (default): examples of similar length batched together and left-padded, so all
    responses end in the last columns and the LM head runs on those columns only;
  * ``flat``: the examples of a micro-batch laid end to end in one row, ``position_ids``
    restarting per example (no padding at all; attention stays within each example because
    transformers builds the block-diagonal mask from the position ids). Best with a varlen
    attention kernel (flash-attention on GPU); on CPU the dense mask costs more than it saves;
  * ``padded``: plain shuffled right-padded batches, the reference.
"""
from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

from pipelines.core import safe_load
from pipelines.core.errors import UserError
from pipelines.core.jsonl import read_jsonl

IGNORE = -100
TEXT_SUFFIXES = {".txt", ".md"}


@dataclass
class DataSource:
    spec: str                # what the user wrote
    path: Path               # the file or folder actually read
    name: str                # dataset name for the run card
    version: str             # content hash (sha256, 16 hex)


@dataclass
class Example:
    input_ids: list[int]
    labels: list[int]        # IGNORE where no loss is taken


# -- locating and hashing -----------------------------------------------------------

def resolve_data(spec: str, workspace) -> DataSource:
    """A file, a folder, or a workspace dataset name → the path to read, with a content hash."""
    if not spec:
        raise UserError("No training data given.", "Pass --data FILE.jsonl, a saved dataset folder, or a dataset name.",
                        code="data.none", params={"field": "data"})
    path = safe_load.regular_file(Path(spec).expanduser(), "training data")    # a folder passes too
    name = path.stem
    if not path.exists():
        dname, _, version = spec.partition("@")
        rows = [r for r in workspace.datasets() if r["name"] == dname and (not version or r["version"] == version)]
        if not rows:
            known = sorted({r["name"] for r in workspace.datasets()})
            raise UserError(f"Training data {spec!r} not found (no such file, folder or workspace dataset).",
                            "Pass an existing JSONL file or folder" +
                            (f", or one of the workspace datasets: {', '.join(known)}." if known else "."),
                            code="data.not_found", params={"spec": spec, "known": ", ".join(known)})
        path, name = Path(rows[-1]["path"]), dname
        if not path.exists():
            raise UserError(f"Workspace dataset {spec!r} points to {path}, which no longer exists.",
                            "Export the dataset again from the Data tab.", code="data.dataset_gone",
                            params={"spec": spec, "path": str(path)})
    return DataSource(spec=spec, path=path.resolve(), name=name, version=content_hash(path))


def content_hash(path: Path) -> str:
    h = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        h.update(str(f.relative_to(path)).encode() if path.is_dir() else b"")
        with open(f, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                h.update(block)
    return h.hexdigest()[:16]


# -- reading records ------------------------------------------------------------------

def _read_jsonl(path: Path) -> list[dict]:
    return [dict(rec, _line=lineno) for lineno, rec in read_jsonl(path)]


def _read_saved_dataset(path: Path) -> list[dict]:
    from datasets import DatasetDict, load_from_disk
    try:
        ds = load_from_disk(str(path))
    except Exception as exc:  # datasets raises several types for a folder it cannot read
        raise UserError(f"{path} is not a dataset saved with datasets' save_to_disk ({exc}).",
                        "Pass a JSONL file, a text folder, or a folder written by save_to_disk.",
                        code="data.not_saved_dataset", params={"path": str(path), "detail": str(exc)}) from None
    if isinstance(ds, DatasetDict):
        ds = ds["train"] if "train" in ds else next(iter(ds.values()))
    return [dict(r, _line=i + 1) for i, r in enumerate(ds)]


def read_sft_records(source: DataSource) -> list[dict]:
    """Alpaca records ``{instruction, input, output}``; bad records are reported with their line."""
    path = source.path
    if path.is_dir():
        records = _read_saved_dataset(path)
    elif path.suffix == ".jsonl" or path.suffix == ".json":
        records = _read_jsonl(path)
    else:
        raise UserError(f"{path} is not JSONL; instruction tuning needs instruction/input/output records.",
                        "Pass a .jsonl file (one record per line) or a saved dataset folder.", code="data.not_jsonl",
                        params={"path": str(path)})
    out = []
    for rec in records:
        where = f"{path}:{rec['_line']}"
        instr, output = rec.get("instruction"), rec.get("output")
        if not isinstance(instr, str) or not instr.strip():
            raise UserError(f"{where}: missing or empty 'instruction'.",
                            "Every record needs a non-empty instruction and output (input is optional).",
                            code="data.record_empty", params={"where": where, "key": "instruction"})
        if not isinstance(output, str) or not output.strip():
            raise UserError(f"{where}: missing or empty 'output'.",
                            "Every record needs a non-empty instruction and output (input is optional).",
                            code="data.record_empty", params={"where": where, "key": "output"})
        inp = rec.get("input") or ""
        if not isinstance(inp, str):
            raise UserError(f"{where}: 'input' must be a string.", "Use \"\" for records without an input.",
                            code="data.input_not_text", params={"where": str(where)})
        out.append({"instruction": instr, "input": inp, "output": output})
    if not out:
        raise UserError(f"{path} holds no records.", "Export some instruction data first (Data tab).",
                        code="data.no_records", params={"path": str(path)})
    return out


def read_texts(source: DataSource) -> list[str]:
    """Raw documents for continual pretraining."""
    path = source.path
    if path.is_dir() and not (path / "dataset_info.json").exists() and not (path / "dataset_dict.json").exists():
        files = sorted(p for p in path.rglob("*") if p.suffix in TEXT_SUFFIXES)
        texts = [p.read_text(encoding="utf-8") for p in files]
    elif path.suffix in TEXT_SUFFIXES:
        texts = [path.read_text(encoding="utf-8")]
    else:
        records = _read_saved_dataset(path) if path.is_dir() else _read_jsonl(path)
        texts = []
        for rec in records:
            if not isinstance(rec.get("text"), str):
                raise UserError(f"{path}:{rec['_line']}: no 'text' field.",
                                "Continual pretraining reads raw text: .txt/.md files, or records with a 'text' field.",
                                code="data.no_text_field", params={"path": str(path), "line": rec["_line"]})
            texts.append(rec["text"])
    texts = [t for t in texts if t.strip()]
    if not texts:
        raise UserError(f"{path} holds no text.", "Pass .txt/.md files or JSONL records with a 'text' field.",
                        code="data.no_text", params={"path": str(path)})
    return texts


# -- tokenizing -----------------------------------------------------------------------

def tokenize_sft(records: list[dict], tokenizer, template, *, max_prompt_length: int,
                 max_target_length: int, loss_on: str = "response") -> tuple[list[Example], int]:
    """(examples, number truncated). Prompt tokens are cut from the left so the answer cue stays."""
    examples, truncated = [], 0
    eos = tokenizer.eos_token_id
    for rec in records:
        body = template.render(rec["instruction"], rec["input"])
        if template.uses_chat_template:
            user = [{"role": "user", "content": body}]
            prompt_text = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
            full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": rec["output"].strip()}],
                                                 tokenize=False)
            prompt = tokenizer(prompt_text, add_special_tokens=False)["input_ids"]
            completion_text = full[len(prompt_text):] if full.startswith(prompt_text) else rec["output"].strip()
            completion = tokenizer(completion_text.rstrip("\n"), add_special_tokens=False)["input_ids"]
        else:
            # Tokenized apart, exactly as generation sees the prompt; EOS teaches the model to stop.
            prompt = tokenizer(body)["input_ids"]
            completion = tokenizer(rec["output"].strip(), add_special_tokens=False)["input_ids"]
        if not completion or completion[-1] != eos:
            completion = completion + [eos]
        if len(prompt) > max_prompt_length or len(completion) > max_target_length:
            truncated += 1
            prompt, completion = prompt[-max_prompt_length:], completion[:max_target_length]
        labels = ([IGNORE] * len(prompt) if loss_on == "response" else list(prompt)) + completion
        examples.append(Example(prompt + completion, labels))
    return examples, truncated


def tokenize_cpt(texts: list[str], tokenizer, *, block_size: int) -> list[Example]:
    """Documents joined with EOS and cut into full blocks (the usual pretraining packing)."""
    stream: list[int] = []
    for t in texts:
        stream += tokenizer(t, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    n = len(stream) // block_size
    if n == 0:
        raise UserError(f"The text gives {len(stream)} tokens, fewer than one block of {block_size}.",
                        "Add more text or lower max_seq_length.",
                        code="data.too_short",
                        params={"tokens": len(stream), "block": block_size, "field": "max_seq_length"})
    return [Example(stream[i * block_size:(i + 1) * block_size], stream[i * block_size:(i + 1) * block_size])
            for i in range(n)]


# -- batching -------------------------------------------------------------------------

GROUP_WINDOW = 128      # examples sorted by length together (independent of batch size, so resumable)


def epoch_order(n_examples: int, seed: int, epoch: int, lengths: list[int] | None = None) -> list[int]:
    """A seeded shuffle per epoch, so the number of examples consumed fixes the data position.

    With ``lengths``, each window of GROUP_WINDOW shuffled examples is sorted longest first, so
    consecutive examples (one micro-batch) have similar lengths and little padding.
    """
    idx = list(range(n_examples))
    random.Random(seed * 100_003 + epoch).shuffle(idx)
    if lengths is not None:
        idx = [i for w in range(0, n_examples, GROUP_WINDOW)
               for i in sorted(idx[w:w + GROUP_WINDOW], key=lambda j: -lengths[j])]
    return idx


def micro_batches(n_examples: int, size: int, seed: int, start: int = 0,
                  lengths: list[int] | None = None) -> Iterator[tuple[int, float, list[int]]]:
    """Endless (examples consumed after this batch, epoch, indices) from example number ``start``.

    Positions count examples, not batches, so a run may resume with another micro-batch
    size or process count and still see every example exactly once per epoch.
    """
    cursor = start
    order_epoch, order = -1, []
    while True:
        batch = []
        while len(batch) < size:
            epoch, offset = divmod(cursor, n_examples)
            if epoch != order_epoch:
                order_epoch, order = epoch, epoch_order(n_examples, seed, epoch, lengths)
            batch.append(order[offset])
            cursor += 1
        yield cursor, cursor / n_examples, batch


def collate_grouped(batch: list[Example], pad_id: int) -> dict:
    """Left-padded batch: every example ends in the last column, so the responses share the
    trailing columns and the LM head runs only on those (``logits_to_keep`` = their count).
    """
    import torch
    width = max(len(ex.input_ids) for ex in batch)
    ids = torch.full((len(batch), width), pad_id)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.full((len(batch), width), IGNORE)
    for i, ex in enumerate(batch):
        n = len(ex.input_ids)
        ids[i, width - n:] = torch.tensor(ex.input_ids)
        mask[i, width - n:] = 1
        targets[i, width - n:width - 1] = torch.tensor(ex.labels[1:])
    has_target = (targets != IGNORE).any(0).nonzero()
    first = int(has_target[0]) if len(has_target) else width - 1
    position_ids = (mask.cumsum(1) - 1).clamp(min=0)
    return {"input_ids": ids, "attention_mask": mask, "position_ids": position_ids, "keep": width - first,
            "targets": targets[:, first:], "n_tokens": int(mask.sum())}


def collate_flat(batch: list[Example]) -> dict:
    """One row, no padding: ``position_ids`` restart per example; targets already shifted.

    ``targets[t]`` is the token position ``t`` must predict (IGNORE at each example's end), and
    ``keep`` lists the positions with a target, so the LM head runs on those only.
    """
    import torch
    ids, pos, targets = [], [], []
    for ex in batch:
        ids += ex.input_ids
        pos += list(range(len(ex.input_ids)))
        targets += ex.labels[1:] + [IGNORE]
    targets_t = torch.tensor(targets)
    keep = (targets_t != IGNORE).nonzero().squeeze(-1)
    return {"input_ids": torch.tensor([ids]), "position_ids": torch.tensor([pos]), "keep": keep,
            "targets": targets_t[keep], "n_tokens": len(ids)}


def collate_padded(batch: list[Example], pad_id: int) -> dict:
    """The classic padded batch (for models whose attention cannot take flattened rows)."""
    import torch
    width = max(len(ex.input_ids) for ex in batch)
    ids = torch.full((len(batch), width), pad_id)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    targets = torch.full((len(batch), width), IGNORE)
    for i, ex in enumerate(batch):
        n = len(ex.input_ids)
        ids[i, :n] = torch.tensor(ex.input_ids)
        mask[i, :n] = 1
        targets[i, :n - 1] = torch.tensor(ex.labels[1:])
    return {"input_ids": ids, "attention_mask": mask, "targets": targets,
            "n_tokens": int(mask.sum())}


def n_targets(batch: list[Example]) -> int:
    return sum(sum(1 for t in ex.labels[1:] if t != IGNORE) for ex in batch)
