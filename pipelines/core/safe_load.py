"""Everything the workbench reads from disk is data, never code.

A pickle runs code when it is loaded: a run folder, a checkpoint or a merge input that somebody
else could write (a shared workspace, a model copied in from elsewhere) must not be able to run
anything as the workbench's user. The rule, in one place:

- tensors come from **safetensors**, or from ``torch.load(..., weights_only=True)``, whose
  unpickler builds tensors and plain containers only and refuses every other object (the training
  state: optimizer and scheduler; accelerate, transformers and peft load with ``weights_only=True``
  by default, and :func:`refusing_pickles` turns their refusal into a message);
- settings and records come from **JSON** (:func:`json_file`), never from a pickle;
- nothing calls ``pickle.load``, ``torch.load(weights_only=False)`` or ``numpy.load(allow_pickle=True)``
  (tests/test_architecture.py fails on any of them under ``pipelines/``).

    state = torch_state(run / "step-4" / "state" / "scheduler.pt")
    with refusing_pickles(model_dir, "model"):
        AutoModelForCausalLM.from_pretrained(model_dir)
"""
from __future__ import annotations

import contextlib
import json
import pickle
import stat
from pathlib import Path
from typing import Any, Iterator

from pipelines.core.errors import UserError

# How torch says its weights-only unpickler met something that is not a tensor or a plain value.
_TORCH_REFUSAL = "Weights only load failed"


def _is_pickle_refusal(exc: BaseException) -> bool:
    while exc is not None:
        if isinstance(exc, pickle.UnpicklingError) or _TORCH_REFUSAL in str(exc):
            return True
        exc = exc.__cause__ or exc.__context__
    return False


def unsafe_file(path: str | Path, what: str) -> UserError:
    return UserError(f"{path} ({what}) holds Python objects other than tensors and plain values: loading it could "
                     "run code, so it was not loaded.",
                     "Use files saved by the workbench or as safetensors (save_pretrained(safe_serialization=True)); "
                     "if this file came from somewhere you do not trust, delete it.",
                     code="files.unsafe_pickle", params={"path": str(path), "what": what})


@contextlib.contextmanager
def refusing_pickles(path: str | Path, what: str) -> Iterator[None]:
    """Turn a library's weights-only refusal (raised while loading ``path``) into a clear UserError."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        if _is_pickle_refusal(exc):
            raise unsafe_file(path, what) from None
        raise


def torch_state_folder(folder: str | Path, load, what: str = "training state") -> Any:
    """``load()`` a folder of torch state files (accelerate's ``load_state``), refusing pickles; the
    refusal names the file at fault (found by re-reading each with the weights-only unpickler, on the
    failure path only, so a good resume reads its state once)."""
    try:
        return load()
    except Exception as exc:
        if not _is_pickle_refusal(exc):
            raise
        for f in sorted(Path(folder).iterdir()):
            if f.suffix in (".bin", ".pt", ".pth", ".pkl") and f.is_file():
                torch_state(f, what)            # raises for the culprit
        raise unsafe_file(folder, what) from None


def torch_state(path: str | Path, what: str = "training state") -> Any:
    """A ``torch.save``d state dict, read with the weights-only unpickler."""
    import torch
    with refusing_pickles(path, what):
        return torch.load(path, map_location="cpu", weights_only=True)


def json_file(path: str | Path, what: str, expect: type | None = dict) -> Any:
    """A JSON file (an object unless ``expect`` says otherwise), or a UserError naming it: missing,
    unreadable, not JSON, or JSON of the wrong shape (``[1, 2]`` where settings were expected)."""
    path = Path(path)
    try:
        value = json.loads(path.read_text(encoding="utf-8"))
        if expect is not None and not isinstance(value, expect):
            raise ValueError(f"expected a JSON {'object' if expect is dict else expect.__name__}, "
                             f"found {type(value).__name__}")
        return value
    except FileNotFoundError:
        raise UserError(f"{path} ({what}) is missing.", "Check the folder: it is incomplete or not what it seems.",
                        code="files.missing", params={"path": str(path), "what": what}) from None
    except (UnicodeDecodeError, ValueError, OSError) as exc:     # JSONDecodeError is a ValueError
        raise UserError(f"{path} ({what}) cannot be read as JSON: {exc}.",
                        "Restore the file from the tool that wrote it, or remove the folder.",
                        code="files.bad_json",
                        params={"path": str(path), "what": what, "detail": str(exc)[:200]}) from None


def regular_file(path: str | Path, what: str) -> Path:
    """``path`` if it is a regular file (links followed). A device or a named pipe given where a file
    is expected never ends (``/dev/zero``) or blocks for ever (a FIFO nobody writes): refused before
    it is opened, which for a FIFO would itself block."""
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except OSError:
        return path                              # missing or unreadable: the reader's own message says which
    if not stat.S_ISREG(mode) and not stat.S_ISDIR(mode):
        kind = "a named pipe" if stat.S_ISFIFO(mode) else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode) \
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file"
        raise UserError(f"{path} ({what}) is {kind}, not a file: reading it would never end.",
                        "Give the path of a regular file.", code="files.not_regular",
                        params={"path": str(path), "what": what, "kind": kind})
    return path

