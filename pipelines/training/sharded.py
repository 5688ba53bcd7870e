"""What the training worker does differently when the weights are sharded over processes (FSDP,
DeepSpeed ZeRO-3, from an accelerate config file written by ``distributed.py``); under DDP or one
process every function here is a no-op, so ``worker.py`` reads the same either way.

- ``expect``: the processes really run the file's strategy. accelerate falls back silently (an FSDP
  file on CPU processes trains as plain DDP): a run that shards nothing when it was meant to is
  stopped at once, not found out by running out of memory hours later.
- ``before_prepare``: DeepSpeed sizes its batches from a data loader, which the worker does not
  prepare (it batches the data itself): it is told the micro-batch.
- ``micro_step``: gradients are accumulated over the step's micro-batches; DeepSpeed steps its
  engine inside ``backward`` unless told that a micro-batch is not the last.
- ``full_state_dict``: every process takes part in gathering the whole weights, which the main
  process then saves our way (adapter or model folder); None when nothing is sharded.
"""
from __future__ import annotations

import contextlib

from pipelines.core.errors import UserError
from pipelines.training import distributed

EXPECTED = {"fsdp": ("FSDP",), "deepspeed-zero3": ("DEEPSPEED",), "ddp": ("NO", "MULTI_GPU", "MULTI_CPU")}


def kind(acc) -> str:
    """accelerate's distributed type, by name (NO, MULTI_GPU, MULTI_CPU, FSDP, DEEPSPEED)."""
    return acc.distributed_type.value


def is_sharded(acc) -> bool:
    return kind(acc) in ("FSDP", "DEEPSPEED")


def expect(acc, config_file: str | None) -> None:
    """Stop unless the processes run the strategy ``config_file`` (the run's accelerate config) asks for."""
    if not config_file:
        return
    strategy = distributed.read_config(config_file).strategy
    if kind(acc) not in EXPECTED[strategy]:
        raise UserError(f"The run's accelerate config asks for {strategy}, but the processes run {kind(acc)} "
                        f"(on {acc.device.type}): the weights would not be sharded as planned.",
                        "FSDP and DeepSpeed need GPU processes started by accelerate launch with that file; "
                        "start the run on a GPU machine, or use ddp.",
                        code="dist.not_applied", params={"strategy": strategy, "kind": kind(acc),
                                                         "device": acc.device.type})


def before_prepare(acc, micro_batch_size: int) -> None:
    if kind(acc) == "DEEPSPEED":
        acc.state.deepspeed_plugin.deepspeed_config["train_micro_batch_size_per_gpu"] = micro_batch_size


@contextlib.contextmanager
def micro_step(acc, model, last: bool):
    """One micro-batch's forward and backward: gradients synchronised only on the step's ``last``."""
    if kind(acc) == "DEEPSPEED":
        # accelerate's DeepSpeed backward marks the accumulation boundary and steps the engine by this flag.
        acc.gradient_state._set_sync_gradients(last)
    with contextlib.nullcontext() if last else acc.no_sync(model):
        yield


def full_state_dict(acc, model) -> dict | None:
    """The whole weights (on the main process; other processes get an empty or partial dict), or None
    when the model is not sharded. Every process must call it: gathering is collective."""
    return acc.get_state_dict(model) if is_sharded(acc) else None


def any_process(acc, flag: bool) -> bool:
    """``flag`` on any process (so that all stop together: a process left behind waits forever)."""
    import torch
    if acc.num_processes == 1:
        return flag
    return bool(acc.reduce(torch.tensor(float(flag), device=acc.device), "sum") > 0)
