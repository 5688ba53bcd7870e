"""The shape of the code base, held by a test: imports flow one way and never in a circle.

    launch.py → workbench/ → components/ and pipelines/
    pipelines/  never imports gradio, workbench or components (usable from a CLI and from Python)
    components/ never imports pipelines or workbench (reusable widgets get plain data)

Inside pipelines/, one folder per capability, in layers (a folder imports its own and lower ones):

    core  <  tasks  <  models  <  data, training, evaluation, merging

The four capabilities on top do not import each other, except where ``CROSSINGS`` gives the
reason. No source file is over 400 lines and no function over 100: past that, a file holds two
ideas and a function several steps, and each wants its own name.

Imports inside functions count too: a local import is how a cycle hides, not how it is solved.
"""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("pipelines", "components", "workbench")


def _module_name(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts = parts[:-1]
    return ".".join(parts)


def _project_modules() -> dict[str, Path]:
    mods = {_module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    mods["launch"] = REPO / "launch.py"
    return mods


def _imports(path: Path, name: str) -> set[str]:
    """Every module named by an import statement anywhere in the file (absolute names)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            out.add(base)
            # ``from pipelines import train`` imports the module pipelines.training.launch
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def _graph() -> dict[str, set[str]]:
    mods = _project_modules()
    graph = {}
    for name, path in mods.items():
        graph[name] = {m for m in _imports(path, name) if m in mods and m != name}
    return graph


def _external(path: Path, name: str) -> set[str]:
    return {m.split(".")[0] for m in _imports(path, name)}


def test_pipelines_import_no_ui():
    bad = {}
    for name, path in _project_modules().items():
        if name.startswith("pipelines"):
            hit = _external(path, name) & {"gradio", "workbench", "components", "launch"}
            if hit:
                bad[name] = sorted(hit)
    assert not bad, f"pipelines must stay UI-free: {bad}"


def test_components_import_no_pipelines_or_workbench():
    bad = {}
    for name, path in _project_modules().items():
        if name.startswith("components"):
            hit = _external(path, name) & {"pipelines", "workbench", "launch"}
            if hit:
                bad[name] = sorted(hit)
    assert not bad, f"components get plain data, they import no pipelines: {bad}"


def test_nothing_imports_launch_or_workbench_from_below():
    bad = {name: sorted(deps) for name, deps in _graph().items()
           if not name.startswith(("workbench", "launch")) and any(d.startswith(("workbench", "launch")) for d in deps)}
    assert not bad, bad


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    # A package's __init__ importing its own submodules is not a cycle worth reporting.
    graph = {k: {d for d in v if not (k.startswith(d + ".") and d in PACKAGES)} for k, v in _graph().items()}
    assert _cycles(graph) == []


# -- the rooms of pipelines/ ---------------------------------------------------------------------

LAYER = {"core": 0, "tasks": 1, "models": 2, "data": 3, "training": 3, "evaluation": 3, "merging": 3}
# Capability → capability imports allowed on top of the layers, each with its reason.
CROSSINGS = {
    ("merging", "evaluation"): "a merge candidate is scored with the evaluation engine and metrics, so its "
                               "dev and test numbers mean what an evaluation's mean",
}
# What may sit directly in pipelines/ (the hall): the package, ``python -m pipelines`` and old names.
HALL = {"pipelines", "pipelines.__main__", "pipelines.moved"}


def _folder(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 2 or (len(parts) == 2 and parts[1] in LAYER) else None


def _folder_violations(graph: dict[str, set[str]]) -> list[str]:
    bad = []
    for name, deps in graph.items():
        src = _folder(name)
        if not name.startswith("pipelines") or src is None:
            continue
        for dep in deps:
            dst = _folder(dep)
            if dst is None or dst == src or LAYER[dst] < LAYER[src] or (src, dst) in CROSSINGS:
                continue
            bad.append(f"{name} imports {dep} ({src} → {dst})")
    return sorted(bad)


def test_capability_folders_import_downwards_only():
    assert _folder_violations(_graph()) == []


def test_the_folder_rule_finds_what_it_should():
    graph = {"pipelines.core.jobs": {"pipelines.models.server"},
             "pipelines.data.store": {"pipelines.core.errors", "pipelines.training.runs"},
             "pipelines.merging.data": {"pipelines.evaluation.metrics"},
             "pipelines.models.loglik": {"pipelines.tasks.igakuqa"}}
    assert _folder_violations(graph) == ["pipelines.core.jobs imports pipelines.models.server (core → models)",
                                         "pipelines.data.store imports pipelines.training.runs (data → training)"]


def test_every_module_lives_in_a_folder():
    mods = _project_modules()
    loose = sorted(m for m in mods if m.startswith("pipelines") and m not in HALL and _folder(m) is None)
    assert not loose, f"modules outside the capability folders (pick one in LAYER, or add a folder): {loose}"
    unknown = sorted({p.name for p in (REPO / "pipelines").iterdir()
                      if p.is_dir() and (p / "__init__.py").exists()} - set(LAYER))
    assert not unknown, f"folders the layer rule does not know (add them to LAYER): {unknown}"
    for folder in LAYER:
        doc = ast.get_docstring(ast.parse((REPO / "pipelines" / folder / "__init__.py").read_text(encoding="utf-8")))
        assert doc, f"pipelines/{folder}/__init__.py says nothing about what lives there"


MAX_FILE_LINES = 400
MAX_FUNCTION_LINES = 100


def _too_long(path: Path) -> list[str]:
    source = path.read_text(encoding="utf-8")
    name = path.relative_to(REPO) if path.is_relative_to(REPO) else path.name
    out = []
    if (n := len(source.splitlines())) > MAX_FILE_LINES:
        out.append(f"{name}: {n} lines")
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            if (n := node.end_lineno - node.lineno + 1) > MAX_FUNCTION_LINES:
                out.append(f"{name}:{node.lineno} {node.name}(): {n} lines")
    return out


def test_the_size_rule_finds_what_it_should(tmp_path):
    body = "\n".join(f"    x{i} = {i}" for i in range(100))
    (tmp_path / "long.py").write_text(f"def f():\n{body}\n" + "\n" * 300, encoding="utf-8")
    (tmp_path / "fine.py").write_text(f"def f():\n{body[:-len('    x99 = 99')]}\n", encoding="utf-8")
    assert _too_long(tmp_path / "long.py") == ["long.py: 401 lines", "long.py:1 f(): 101 lines"]
    assert _too_long(tmp_path / "fine.py") == []


def test_no_file_over_400_lines_no_function_over_100():
    files = [p for d in (*PACKAGES, "bench", "tests") for p in (REPO / d).rglob("*.py")] + [REPO / "launch.py"]
    found = [msg for p in sorted(files) for msg in _too_long(p)]
    assert not found, "split where a file holds two ideas (and say so in each docstring): " + "; ".join(found)


def test_cycle_detector_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


# -- nothing read from disk is unpickled (pipelines/core/safe_load.py) --------------------------------

def _unpickling_calls(source: str) -> list[str]:
    """Calls that can run code from a file: pickle/dill/joblib loads, torch.load without
    weights_only=True, numpy.load with allow_pickle=True."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Call):
            continue
        name = ast.unparse(node.func)
        kwargs = {k.arg: ast.unparse(k.value) for k in node.keywords if k.arg}
        if name.split(".")[0] in ("pickle", "dill", "joblib", "cloudpickle", "marshal") and \
                name.split(".")[-1] in ("load", "loads", "Unpickler"):
            found.append(name)
        elif name.endswith("torch.load") or name == "load" and "weights_only" in kwargs:
            if kwargs.get("weights_only") != "True":
                found.append(f"{name}(weights_only={kwargs.get('weights_only', 'unset')})")
        elif name.endswith(("np.load", "numpy.load")) and kwargs.get("allow_pickle") == "True":
            found.append(f"{name}(allow_pickle=True)")
    return found


def test_nothing_under_pipelines_or_workbench_unpickles():
    offenders = {str(p.relative_to(REPO)): calls for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")
                 if (calls := _unpickling_calls(p.read_text(encoding="utf-8")))}
    assert not offenders, f"loads that can run code from a file (use pipelines/core/safe_load.py): {offenders}"


def test_the_unpickling_check_finds_what_it_should():
    assert _unpickling_calls("import torch\ntorch.load(p, weights_only=False)") == ["torch.load(weights_only=False)"]
    assert _unpickling_calls("import torch\ntorch.load(p)") == ["torch.load(weights_only=unset)"]
    assert _unpickling_calls("import pickle\npickle.load(fh)") == ["pickle.load"]
    assert _unpickling_calls("import numpy as np\nnp.load(p, allow_pickle=True)") == ["np.load(allow_pickle=True)"]
    assert _unpickling_calls("import torch\ntorch.load(p, map_location='cpu', weights_only=True)") == []
