"""A training file's records, indexed once for the contamination check and for nearest records.

The index holds every Alpaca record (``instruction``, ``input``, ``output``) of a JSONL file as
normalised text (``pipelines.core.shingles.normalize``: what the n-gram and near-duplicate rules
compare), end to end in one array of code points, with where each record and its prompt part
(instruction + input) end, its line in the file, and the MinHash of its prompt part. 100,000
records take seconds to index, so the index is cached under ``WORKSPACE/cache/train_index/SHA256/``,
keyed by the file's content: an edited file is indexed again, a renamed one is not. The cache
holds numpy ``.npy`` arrays read with ``allow_pickle=False`` and a ``meta.json``, never a pickle; a
cache that does not read back as expected is rebuilt. Users (``pipelines.tasks.overlap``,
``pipelines.evaluation.nearest``) may cache arrays of their own beside it (:meth:`TrainIndex.arrays`).

It lives in ``tasks``, beside the question files, because training (the pre-flight check before a
run) and evaluation (the Charts tab, nearest records beside an answer) both need it.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.core import safe_load
from pipelines.core.errors import UserError
from pipelines.core.jsonl import read_jsonl
from pipelines.core.shingles import SHINGLE_CHARS, minhash, normalize

# Bumped when what the index holds, or how a text is normalised, changes: older caches are rebuilt.
INDEX_VERSION = 1
# Permutations of the signatures: twice curation's 64 (which compares records among themselves at
# 0.8) for banding at 0.5 that misses under 1% of the pairs at the threshold (``overlap``); it
# costs a few per cent more time, the hashing of each shingle being the same.
SIGNATURE_PERM = 128
_CORE_ARRAYS = ("codes", "offsets", "prompt_ends", "lines", "signatures")


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _decode(codes: np.ndarray) -> str:
    return codes.astype("<u4", copy=False).tobytes().decode("utf-32-le")


@dataclass
class TrainIndex:
    path: Path
    sha256: str
    directory: Path | None        # the cache folder; None when built without a workspace
    codes: np.ndarray             # uint32: every record's normalised text, end to end
    offsets: np.ndarray           # int64, n + 1: record i is codes[offsets[i]:offsets[i + 1]]
    prompt_ends: np.ndarray       # int64, n: its instruction + input end there (the output follows)
    lines: np.ndarray             # int64, n: the record's line in the JSONL file
    signatures: np.ndarray        # n × SIGNATURE_PERM: MinHash of the prompt part's character 3-grams

    def __len__(self) -> int:
        return len(self.lines)

    def text(self, i: int) -> str:
        """Record ``i`` normalised: instruction, input and output."""
        return _decode(self.codes[self.offsets[i]:self.offsets[i + 1]])

    def prompt_text(self, i: int) -> str:
        """Record ``i``'s instruction and input, normalised."""
        return _decode(self.codes[self.offsets[i]:self.prompt_ends[i]])

    def chunks(self, max_codes: int) -> list[tuple[int, int]]:
        """Record ranges [first, end) of about ``max_codes`` characters each (one record may be more):
        to work through the index a slice at a time, in bounded memory."""
        cuts = np.searchsorted(self.offsets, np.arange(0, self.offsets[-1], max_codes), side="right") - 1
        bounds = list(dict.fromkeys([0, *cuts.tolist(), len(self)]))
        return list(zip(bounds, bounds[1:]))

    def records(self, indices) -> dict[int, dict]:
        """The records at ``indices`` as the file holds them (one pass over it): index → record."""
        wanted = {int(self.lines[i]): int(i) for i in indices}
        out = {}
        for line, rec in read_jsonl(self.path):
            if line in wanted:
                out[wanted[line]] = {"line": line, **{k: rec.get(k) or "" for k in ("instruction", "input", "output")}}
        return out

    def arrays(self, name: str, build: Callable[[], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
        """Arrays derived from this index (e.g. a search index), cached beside it as NAME_KEY.npy;
        NAME.json, written last, lists them, so arrays cut short by a kill are built again."""
        if self.directory is not None:
            try:
                keys = json.loads((self.directory / f"{name}.json").read_text())["keys"]
                return {k: np.load(self.directory / f"{name}_{k}.npy", allow_pickle=False) for k in keys}
            except (OSError, ValueError, KeyError, TypeError):     # absent, torn or tampered: built again
                pass
        built = build()
        if self.directory is not None:
            for key, arr in built.items():
                _save_atomic(self.directory / f"{name}_{key}.npy", arr)
            (self.directory / f"{name}.json").write_text(json.dumps({"keys": sorted(built)}))
        return built


def _save_atomic(path: Path, arr: np.ndarray) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".npy.tmp")
    with os.fdopen(fd, "wb") as fh:
        np.save(fh, arr, allow_pickle=False)
    os.replace(tmp, path)


def read_alpaca(path: Path) -> list[tuple[int, str, str, str]]:
    """(line, instruction, input, output) of each record; a line that is no Alpaca record is named."""
    out = []
    for line, rec in read_jsonl(path):
        instr, inp, output = rec.get("instruction"), rec.get("input") or "", rec.get("output")
        if not isinstance(instr, str) or not isinstance(output, str) or not isinstance(inp, str):
            raise UserError(f"{path}:{line}: expected {{\"instruction\": ..., \"output\": ...}}.",
                            "Each line must be an Alpaca record (instruction, optional input, output).",
                            code="alpaca.not_a_record", params={"path": str(path), "line": line})
        out.append((line, instr, inp, output))
    if not out:
        raise UserError(f"{path} holds no records.", "Pass the run's training JSONL file (Alpaca records).",
                        code="data.no_records", params={"path": str(path)})
    return out


def build(path: Path) -> dict[str, np.ndarray]:
    """The index arrays of a training JSONL file (what :class:`TrainIndex` holds)."""
    prompts, texts, lines = [], [], []
    for line, instr, inp, output in read_alpaca(path):
        # Normalised apart, so the prompt part is exactly a prefix of the record's text.
        prompt = normalize(instr + inp)
        prompts.append(prompt)
        texts.append(prompt + normalize(output))
        lines.append(line)
    lengths = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
    offsets = np.zeros(len(texts) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    codes = np.frombuffer("".join(texts).encode("utf-32-le"), dtype="<u4").astype(np.uint32)
    return {"codes": codes, "offsets": offsets,
            "prompt_ends": offsets[:-1] + np.fromiter(map(len, prompts), dtype=np.int64, count=len(prompts)),
            "lines": np.asarray(lines, dtype=np.int64),
            "signatures": np.stack([minhash(p, SIGNATURE_PERM).hashvalues for p in prompts])}


def _meta(sha: str) -> dict:
    return {"version": INDEX_VERSION, "sha256": sha, "num_perm": SIGNATURE_PERM, "shingle_chars": SHINGLE_CHARS}


def _load_cached(directory: Path, sha: str) -> dict[str, np.ndarray] | None:
    try:
        if json.loads((directory / "meta.json").read_text()) != _meta(sha):
            return None
        arrays = {k: np.load(directory / f"{k}.npy", allow_pickle=False) for k in _CORE_ARRAYS}
    except (OSError, ValueError):          # missing, torn, or an object array (refused, not unpickled)
        return None
    n = len(arrays["lines"])
    ok = (arrays["offsets"].shape == (n + 1,) and arrays["prompt_ends"].shape == (n,)
          and arrays["signatures"].shape == (n, SIGNATURE_PERM) and len(arrays["codes"]) == arrays["offsets"][-1]
          and arrays["codes"].dtype == np.uint32
          and arrays["signatures"].dtype == minhash("", SIGNATURE_PERM).hashvalues.dtype
          and all(arrays[k].dtype == np.int64 for k in ("offsets", "prompt_ends", "lines")))
    return arrays if ok else None


def load(path: str | os.PathLike, workspace=None) -> TrainIndex:
    """The index of a training JSONL file: from the workspace's cache, else built (and cached there).

    ``workspace``: a ``Workspace`` (its ``cache`` folder), or None to build without caching."""
    path = safe_load.regular_file(Path(path).expanduser(), "training data")
    if path.is_dir():
        raise UserError(f"Training data {path} is a folder; this check reads a JSONL file.",
                        "Pass the run's training data as an Alpaca JSONL file (instruction, input, output per line).",
                        code="contamination.train_is_folder", params={"path": str(path)})
    if not path.is_file():
        raise UserError(f"Training file {path} does not exist.",
                        "Pass the run's training data: an Alpaca JSONL file (instruction, input, output per line).",
                        code="contamination.train_missing", params={"path": str(path)})
    sha = file_sha256(path)
    directory = workspace.subdir("cache") / "train_index" / sha if workspace is not None else None
    arrays = _load_cached(directory, sha) if directory is not None else None
    if arrays is None:
        arrays = build(path)
        if directory is not None:
            shutil.rmtree(directory, ignore_errors=True)     # a stale or torn cache, and what was derived from it
            directory.mkdir(parents=True, exist_ok=True)
            for key in _CORE_ARRAYS:
                _save_atomic(directory / f"{key}.npy", arrays[key])
            (directory / "meta.json").write_text(json.dumps(_meta(sha)))     # last: marks the cache complete
    return TrainIndex(path=path, sha256=sha, directory=directory, **arrays)
