"""One voice for every command line: parsers generated from the config dataclasses.

A pipeline's ``...Config`` dataclass is at once its Python API, its defaults and its
command line (the litgpt idea): each field becomes ``--field-name``, its type chooses the
parsing, its comment (or the string right below it) becomes the help text, and the default
is shown. So the flags, the UI's defaults and the docs cannot drift apart.

    @dataclass
    class EvalConfig:
        model: str = field(default="", metadata=required())   # model reference (see README)
        shots: tuple[int, ...] = (0, 1)                        # 0 and/or 1
        method: Literal["generate", "loglik", "both"] = "generate"

    parser = cli.config_parser("evaluate", EvalConfig, __doc__)
    config = cli.config_from_args(EvalConfig, parser.parse_args(argv))

Types: ``bool`` → ``--x/--no-x``; ``Literal[...]`` or ``metadata=choices(...)`` → choices;
``list``/``tuple`` → several values (space- or comma-separated); ``X | None`` → optional.
Field metadata (helpers below): ``required()``, ``positional()``, ``choices(...)``, ``aliases(...)`` (old spellings,
hidden from --help for one release), ``common(...)``, ``no_cli()``, ``metavar(...)``.

Flags every CLI spells the same way live in ``COMMON`` (``--workspace``, ``--max-new-tokens``,
``--seed``, ``--json``): a config field of that name gets the shared help, and a CLI that has
no such field can still add it with :func:`add_common`.
"""
from __future__ import annotations

import argparse
import ast
import dataclasses
import inspect
import io
import sys
import textwrap
import tokenize
import types
import typing
from functools import lru_cache
from typing import Any

# -- field metadata -------------------------------------------------------------------------


def required() -> dict:
    return {"cli_required": True}


def choices(*values) -> dict:
    return {"cli_choices": tuple(values)}


def aliases(*flags: str) -> dict:
    """Old flag spellings, accepted but not shown (kept for one release)."""
    return {"cli_aliases": tuple(flags)}


def positional() -> dict:
    """``jmedlora x FILE`` rather than ``--file FILE`` (for the one obvious input)."""
    return {"cli_positional": True}


def common(name: str) -> dict:
    """Spell this field as the shared flag ``name`` (an older field name, e.g. ``max_tokens``
    shown as ``--max-new-tokens``, with the shared help and hidden aliases)."""
    return {"cli_flag": _flag(name), "cli_common": name}


def no_cli() -> dict:
    return {"cli": False}


def metavar(name: str) -> dict:
    return {"cli_metavar": name}


def meta(*parts: dict) -> dict:
    out: dict = {}
    for p in parts:
        out.update(p)
    return out


# Shared flags: the same name, spelling and help in every CLI.
COMMON: dict[str, dict[str, Any]] = {
    "workspace": {"help": "workspace directory (default: $JMEDLORA_WORKSPACE or ./workspace)", "metavar": "DIR"},
    "max_new_tokens": {"help": "most tokens generated per answer", "aliases": ("--max-tokens",)},
    "seed": {"help": "random seed (same seed, same answers)"},
    "json": {"help": "print the result as JSON (for scripts)"},
}


# -- help text from the source ---------------------------------------------------------------


@lru_cache(maxsize=None)
def field_docs(cls: type) -> dict[str, str]:
    """Each field's comment (``x: int = 1  # why``, continued on comment-only lines below)
    or the string literal right after it (an attribute docstring)."""
    try:
        source = textwrap.dedent(inspect.getsource(cls))
    except (OSError, TypeError):
        return {}
    lines = source.splitlines()
    comments: dict[int, str] = {}          # line number (1-based) -> comment text
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type == tokenize.COMMENT:
            comments[tok.start[0]] = tok.string.lstrip("#").strip()
    body = ast.parse(source).body[0].body
    docs: dict[str, str] = {}
    for i, node in enumerate(body):
        if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
            continue
        parts = []
        if node.end_lineno in comments:
            parts.append(comments[node.end_lineno])
            n = node.end_lineno + 1
            # Continuation: comment-only lines directly below, indented past the field name.
            while n in comments and lines[n - 1].strip().startswith("#") and \
                    len(lines[n - 1]) - len(lines[n - 1].lstrip()) > node.col_offset:
                parts.append(comments[n])
                n += 1
        nxt = body[i + 1] if i + 1 < len(body) else None
        if (isinstance(nxt, ast.Expr) and isinstance(nxt.value, ast.Constant)
                and isinstance(nxt.value.value, str)):
            parts.append(inspect.cleandoc(nxt.value.value))
        if parts:
            docs[node.target.id] = " ".join(p for p in parts if p)
    for base in cls.__mro__[1:]:
        if dataclasses.is_dataclass(base):
            for k, v in field_docs(base).items():
                docs.setdefault(k, v)
    return docs


# -- types -------------------------------------------------------------------------------------


def _unwrap_optional(tp):
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and type(None) in args:
        rest = [a for a in args if a is not type(None)]
        return (rest[0] if len(rest) == 1 else typing.Union[tuple(rest)]), True
    return tp, False


def _scalar(tp) -> tuple[Any, tuple | None]:
    """(converter, choices) for a scalar annotation."""
    if typing.get_origin(tp) is typing.Literal:
        values = typing.get_args(tp)
        return type(values[0]), values
    if tp in (int, float, str):
        return tp, None
    return str, None


def _flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def _show_default(value) -> str:
    if isinstance(value, (list, tuple)):
        return " ".join(map(str, value)) if value else "none"
    if value is None or value == "":
        return ""
    return str(value)


class _SplitList(argparse.Action):
    """Several values, space- and/or comma-separated: ``--save-steps 10 20`` = ``--save-steps 10,20``."""

    def __init__(self, *args, item_type=str, allowed=None, **kwargs):
        # ``allowed``, not ``choices``: argparse would check the raw "1,2" string against them.
        self.item_type, self.allowed = item_type, allowed
        super().__init__(*args, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        items = []
        for v in values or []:
            for part in str(v).split(","):
                if part.strip():
                    try:
                        items.append(self.item_type(part.strip()))
                    except ValueError:
                        parser.error(f"{option_string}: {part.strip()!r} is not a valid {self.item_type.__name__}")
        if self.allowed is not None:
            bad = [x for x in items if x not in self.allowed]
            if bad:
                parser.error(f"{option_string}: invalid choice(s) {bad} (choose from "
                             f"{', '.join(map(str, self.allowed))})")
        # Repeating the flag adds to it (``--keyword a --keyword b``, the old spelling's habit).
        setattr(namespace, self.dest, (getattr(namespace, self.dest, None) or []) + items)


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the module docstring's layout; wraps help text at a readable width."""

    def __init__(self, prog):
        super().__init__(prog, max_help_position=34, width=100)


class Parser(argparse.ArgumentParser):
    """Bad flags or values end like every other user error: ``error: …`` and a ``Fix:`` line, exit 2."""

    def error(self, message):
        self.print_usage(sys.stderr)
        self.exit(2, f"error: {message}\n  Fix: see `{self.prog} --help` for the options and their values.\n")


def new_parser(name: str, doc: str | None, **kwargs) -> argparse.ArgumentParser:
    """A parser whose usage line reads as typed: ``jmedlora NAME`` (``pipelines/core/commands.py``)."""
    return Parser(prog=f"jmedlora {name}", description=(doc or "").strip() or None,
                  formatter_class=_Formatter, **kwargs)


def add_field(parser, name: str, tp, default, doc: str, md: dict) -> None:
    common = COMMON.get(md.get("cli_common", name), {})
    flag = md.get("cli_flag") or _flag(name)
    hidden = tuple(md.get("cli_aliases", ())) + tuple(a for a in common.get("aliases", ()) if a != flag)
    help_text = (doc or common.get("help", "")).replace("%", "%%")     # argparse formats help with %
    tp, optional = _unwrap_optional(tp)
    kwargs: dict[str, Any] = {"dest": name, "default": None}
    if md.get("cli_metavar") or common.get("metavar"):
        kwargs["metavar"] = md.get("cli_metavar") or common.get("metavar")
    origin = typing.get_origin(tp)
    if tp is bool:
        kwargs["action"] = argparse.BooleanOptionalAction
    elif origin in (list, tuple):
        item_tp = typing.get_args(tp)[0] if typing.get_args(tp) else str
        conv, ch = _scalar(item_tp)
        allowed = md.get("cli_choices") or ch
        kwargs.update(action=_SplitList, item_type=conv, nargs="*", allowed=allowed)
        if allowed:
            kwargs.setdefault("metavar", "{" + ",".join(map(str, allowed)) + "}")
    else:
        conv, ch = _scalar(tp)
        kwargs.update(type=conv, choices=md.get("cli_choices") or ch)
        if conv in (int, float) and not kwargs.get("choices"):
            kwargs.setdefault("metavar", "N" if conv is int else "X")
    if md.get("cli_positional"):
        kwargs.pop("dest")
        kwargs.pop("default")
        if origin in (list, tuple):
            kwargs["nargs"] = "+" if md.get("cli_required") else "*"
        elif not md.get("cli_required"):
            kwargs.update(nargs="?", default=None)
            if shown := _show_default(default):
                help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        action = parser.add_argument(name, help=help_text or None, **kwargs)
        action.config_default = None if md.get("cli_required") else default
        return
    if md.get("cli_required"):
        kwargs["required"] = True
    else:
        shown = _show_default(default)
        if shown and tp is not bool:
            help_text = f"{help_text} (default: {shown})" if help_text else f"default: {shown}"
        elif tp is bool:
            help_text = f"{help_text} (default: {'on' if default else 'off'})"
    if kwargs.get("choices") and "(choose" not in help_text and origin not in (list, tuple):
        kwargs.setdefault("metavar", "{" + ",".join(map(str, kwargs["choices"])) + "}")
    action = parser.add_argument(flag, help=help_text or None, **kwargs)
    action.config_default = default         # the dataclass's default (the parser's is None: "not given")
    if hidden:
        alias_kwargs = {k: v for k, v in kwargs.items() if k not in ("required", "metavar")}
        parser.add_argument(*hidden, help=argparse.SUPPRESS, **alias_kwargs)


def config_fields(cls) -> list[tuple[dataclasses.Field, Any]]:
    hints = typing.get_type_hints(cls)
    return [(f, hints[f.name]) for f in dataclasses.fields(cls) if f.init]


def _default(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def add_config_arguments(parser: argparse.ArgumentParser, cls, *, exclude: set[str] | frozenset = frozenset(),
                         group_title: str | None = None) -> None:
    docs = field_docs(cls)
    target = parser.add_argument_group(group_title) if group_title else parser
    for f, tp in config_fields(cls):
        if f.name in exclude or f.metadata.get("cli") is False:
            continue
        required_field = f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        md = dict(f.metadata)
        if required_field:
            md.setdefault("cli_required", True)
        add_field(target, f.name, tp, _default(f), docs.get(f.name, ""), md)


def config_parser(name: str, cls, doc: str | None, *, exclude: set[str] | frozenset = frozenset(),
                  **kwargs) -> argparse.ArgumentParser:
    parser = new_parser(name, doc, **kwargs)
    add_config_arguments(parser, cls, exclude=exclude)
    return parser


def subcommands_parser(name: str, doc: str | None, commands: dict[str, tuple[type, str]]) -> argparse.ArgumentParser:
    """``jmedlora NAME COMMAND …``: one small config dataclass per command; the
    chosen command is in ``args.command``."""
    parser = new_parser(name, doc)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND",
                                help=" | ".join(commands) + " (each has its own --help)")
    for command, (cls, help_text) in commands.items():
        add_config_arguments(sub.add_parser(command, help=help_text, description=help_text,
                                            formatter_class=_Formatter), cls)
    return parser


def add_common(parser: argparse.ArgumentParser, *names: str) -> None:
    """Shared flags for a CLI whose config lacks them (``--json``, ``--workspace`` …)."""
    for n in names:
        c = COMMON[n]
        if n == "json":
            parser.add_argument("--json", action="store_true", help=c["help"])
        else:
            kwargs = {"metavar": c["metavar"]} if "metavar" in c else {}
            parser.add_argument(_flag(n), default=None, help=c["help"], **kwargs)


def given(cls, args: argparse.Namespace | dict) -> dict:
    """The config fields the user actually set (None = not given)."""
    values = vars(args) if isinstance(args, argparse.Namespace) else dict(args)
    names = {f.name for f in dataclasses.fields(cls)}
    out = {}
    for k, v in values.items():
        if k in names and v is not None:
            tp, _ = _unwrap_optional(typing.get_type_hints(cls)[k])
            out[k] = tuple(v) if typing.get_origin(tp) is tuple and isinstance(v, list) else v
    return out


def config_from_args(cls, args: argparse.Namespace | dict, **base):
    """``cls(**base, **what the user set)``: the dataclass keeps owning every default."""
    return cls(**{**base, **given(cls, args)})
