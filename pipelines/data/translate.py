"""Translating reference radiology reports: English findings → Japanese (``jmedlora reports translate``).

    jmedlora reports translate DIR/reports.jsonl [--out DIR/reports_ja.jsonl | --in-place] [--retranslate] \\
        [--model default] [--base-url URL] [--concurrency 2] [--allow-remote-pii] [--json]

JRadiEvo trains on Japanese reports made by translating English ones (their "50 translated samples").
This fills ``findings_ja`` of every line that has ``findings_en`` and no Japanese yet (every line with
``findings_en``, with ``--retranslate``), asking a model with a Japanese prompt (a radiologist writing
the findings in Japanese report style, 「…を認める」「…なし」, the translation only). The glossary
(``assets/reports/glossary_en_ja.json``) gives the required Japanese for the terms the source contains,
in the prompt; a translation that then lacks one is flagged (``glossary_missing``), counted in the summary
and kept for a person to check. Each filled line carries its provenance in ``metadata.translation``:
model, endpoint kind (local/remote), prompt version and hash, glossary name/version/hash, time,
``glossary_missing``.

The requests go through datagen's machinery, not a second client: ``endpoint.open_endpoint`` (the
workbench serves ``--model`` on 127.0.0.1 when there is no ``--base-url``, so by default nothing leaves
the machine), its privacy guard for an endpoint elsewhere (``--allow-remote-pii`` to override), the API
key from the environment, ``chunk_requests.send`` (retries, streaming), and the request cache of
``store``: a rerun (after Ctrl-C, or to write another ``--out``) asks again only for what was not answered.
The input file is never overwritten unless ``--in-place``.
"""
from __future__ import annotations

import dataclasses
import datetime
import hashlib
import json
import re
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, NamedTuple

from pipelines.core import audit, cli, run_lock
from pipelines.core.errors import UserError
from pipelines.core.locality import endpoint_url
from pipelines.core.repo import ASSETS
from pipelines.core.workspace import Workspace
from pipelines.data import store as datastore
from pipelines.data.chunk_prompts import request_key
from pipelines.data.chunk_requests import Fatal, request_seed, send
from pipelines.data.endpoint import open_endpoint
from pipelines.tasks import reports

DEFAULT_GLOSSARY = ASSETS / "reports" / "glossary_en_ja.json"
PROMPT_TEMPLATE = (
    "あなたは経験豊富な放射線科医です。次の胸部X線写真の読影レポートの所見（英語）を、日本の読影レポートの"
    "所見として自然な日本語に翻訳してください。「…を認める」「…なし」のような読影レポートの文体で書き、"
    "内容を足したり省いたりしないでください。出力は翻訳した所見の文章のみとし、説明や前置きは書かないでください。\n"
    "{glossary}"
    "英語の所見：\n{findings_en}\n日本語の所見：")
GLOSSARY_LINES = "次の用語は必ず指定の訳語を使ってください：\n{lines}\n"
PROMPT_VERSION = "report_findings_ja:" + hashlib.sha256(
    (PROMPT_TEMPLATE + GLOSSARY_LINES).encode("utf-8")).hexdigest()[:8]
API_KEY_ENV = "OPENAI_API_KEY"


# -- the glossary (pure) ------------------------------------------------------------

class Term(NamedTuple):
    en: tuple[str, ...]          # the term first, then its variants (matched whole-word, any case)
    ja: tuple[str, ...]          # the required rendering first, then others the check accepts


@dataclass(frozen=True)
class Glossary:
    name: str
    version: str
    hash: str                    # of the file's bytes: which glossary a translation was checked against
    terms: tuple[Term, ...]

    def provenance(self) -> dict:
        return {"name": self.name, "version": self.version, "hash": self.hash}


def load_glossary(path: str | Path = DEFAULT_GLOSSARY) -> Glossary:
    """The glossary JSON: {"name", "version", "terms": [{"en": [...], "ja": [...]}, ...]}."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError:
        raise UserError(f"Glossary {path} cannot be read (missing or not a file).",
                        f"Pass an existing glossary JSON with --glossary (the default is {DEFAULT_GLOSSARY}).",
                        code="translate.glossary_missing", params={"path": str(path)}) from None
    try:
        doc = json.loads(raw.decode("utf-8"))
        terms = tuple(Term(tuple(t["en"]), tuple(t["ja"])) for t in doc["terms"])
        if not all(t.en and t.ja and all(isinstance(s, str) and s.strip() for s in t.en + t.ja) for t in terms):
            raise ValueError("a term with an empty 'en' or 'ja' list or a blank entry")
    except (ValueError, KeyError, TypeError) as exc:
        raise UserError(f"Glossary {path} is not a glossary JSON ({exc}).",
                        'Write {"name": ..., "version": ..., "terms": [{"en": ["pleural effusion"], "ja": ["胸水"]}]}.',
                        code="translate.glossary_bad", params={"path": str(path), "detail": str(exc)[:200]}) from None
    return Glossary(str(doc.get("name", path.stem)), str(doc.get("version", "")),
                    hashlib.sha256(raw).hexdigest()[:12], terms)


def _pattern(form: str) -> re.Pattern:
    # Whole words only, and a regular plural (-s, -es) matches too: "effusions" is an effusion,
    # "noneffusion" and "massive" are not. Spaces inside a term match any run of whitespace.
    words = r"\s+".join(re.escape(w) for w in form.lower().split())
    return re.compile(rf"(?<![a-z]){words}(?:e?s)?(?![a-z])", re.IGNORECASE)


def match_terms(text: str, glossary: Glossary) -> list[Term]:
    """The glossary terms ``text`` contains, in order of first appearance. Longer matches win over
    the shorter ones inside them: "pericardial effusion" is not also a (pleural) "effusion", and
    "tortuous aorta" asks for 大動脈蛇行 only."""
    found = []
    for term in glossary.terms:
        for form in term.en:
            found += [(m.start(), m.end(), term) for m in _pattern(form).finditer(text)]
    found.sort(key=lambda m: (-(m[1] - m[0]), m[0]))
    taken: list[tuple[int, int]] = []
    kept: list[tuple[int, Term]] = []
    for start, end, term in found:
        if all(end <= a or start >= b for a, b in taken):
            taken.append((start, end))
            kept.append((start, term))
    ordered: list[Term] = []
    for _, term in sorted(kept, key=lambda k: k[0]):
        if term not in ordered:
            ordered.append(term)
    return ordered


def missing_terms(source: str, translation: str, glossary: Glossary) -> list[str]:
    """The glossary terms (their first English form) of ``source`` whose Japanese (any accepted
    rendering) the translation lacks."""
    return [t.en[0] for t in match_terms(source, glossary) if not any(ja in translation for ja in t.ja)]


def render_prompt(findings_en: str, glossary: Glossary) -> str:
    terms = match_terms(findings_en, glossary)
    lines = "\n".join(f"- {t.en[0]} → {t.ja[0]}" for t in terms)
    block = GLOSSARY_LINES.replace("{lines}", lines) if terms else ""
    # Plain replacement: braces in a report stay as they are.
    return PROMPT_TEMPLATE.replace("{glossary}", block).replace("{findings_en}", findings_en.strip())


def clean_translation(text: str) -> str:
    """The translation without what models wrap it in: code fences, a leading label, quotes."""
    text = text.strip()
    text = re.sub(r"^```[a-z]*\s*|\s*```$", "", text).strip()
    text = re.sub(r"^(日本語の所見|日本語訳|翻訳|所見)\s*[:：]\s*", "", text).strip()
    if len(text) > 1 and text[0] + text[-1] in ("「」", '""', "『』"):
        text = text[1:-1].strip()
    return text


# -- the run --------------------------------------------------------------------------

@dataclass
class TranslateConfig:
    file: str = field(metadata=cli.meta(cli.required(), cli.positional()))  # report JSONL to translate
    out: str | None = None                     # report JSONL to write (default: FILE's name + _ja, same folder)
    in_place: bool = False                     # write the translations into FILE itself
    overwrite: bool = False                    # replace an existing --out
    retranslate: bool = False                  # also translate lines that have findings_ja already
    model: str = "default"                     # model name at the endpoint (or a local model reference)
    base_url: str | None = None                # OpenAI-compatible endpoint; leave out to serve --model locally
    glossary: str = str(DEFAULT_GLOSSARY)      # glossary JSON: required Japanese for English terms
    concurrency: int = 2                       # requests in flight
    temperature: float = 0.0                   # sampling temperature (0: the most likely translation)
    seed: int = 0                              # each line's request is seeded from it
    max_tokens: int = field(default=768, metadata=cli.common("max_new_tokens"))  # per translation
    max_retries: int = 6                       # per request (rate limits, timeouts, 5xx)
    retry_base: float = 1.0                    # seconds; doubled per attempt, with jitter
    retry_max_wait: float = 60.0               # seconds: the longest wait between retries
    timeout: float = 180.0                     # seconds per request; on this machine's server: without a token
    allow_remote_pii: bool = False             # send findings with personal data to a remote endpoint
    api_key_env: str = API_KEY_ENV             # environment variable holding the endpoint's API key
    workspace: str | None = None               # workspace holding the request cache
    json: bool = False                         # print the summary as JSON

    @property
    def free_text(self) -> bool:
        """For ``chunk_requests.send``: plain text is asked for, never datagen's JSON pairs."""
        return True

    def __post_init__(self):
        if self.base_url:          # no credentials in the URL, a readable host (as datagen checks it)
            self.base_url = endpoint_url(self.base_url)


class Work(NamedTuple):
    sample: reports.ReportSample
    prompt: str
    key: str
    prompt_hash: str

    # What the privacy guard reads (``endpoint.privacy_findings``): the text that would be sent.
    @property
    def id(self) -> str:
        return self.sample.id

    @property
    def doc(self) -> str:
        return "findings_en"

    @property
    def text(self) -> str:
        return self.sample.findings_en or ""


def _out_path(config: TranslateConfig, source: Path) -> Path:
    if config.in_place and config.out:
        raise UserError("Both --out and --in-place were given.", "Pass one: --out FILE writes a new file, "
                        "--in-place rewrites the input.", code="translate.out_and_in_place", params={})
    if config.in_place:
        return source
    out = Path(config.out) if config.out else source.with_name(source.stem + "_ja.jsonl")
    if out.absolute().resolve() == source.absolute().resolve():
        raise UserError(f"--out {out} is the input file.", "Choose another --out, or pass --in-place to rewrite "
                        "the input.", code="translate.out_is_input", params={"path": str(out)})
    if not source.absolute().parent.resolve().is_relative_to(out.absolute().parent.resolve()):
        raise UserError(f"{out} is neither in the folder of {source} nor above it, and a report file reads "
                        "images only in its own folder and below.", "Write --out beside the input (or above it).",
                        code="translate.out_outside", params={"path": str(out), "source": str(source)})
    if out.exists() and not config.overwrite:
        raise UserError(f"{out} already exists.", "Pass --overwrite to replace it, or choose another --out.",
                        code="translate.out_exists", params={"path": str(out)})
    return out


def _plan(config: TranslateConfig, samples: list[reports.ReportSample], glossary: Glossary,
          model: str) -> list[Work]:
    work = []
    for s in samples:
        if s.findings_en and (not s.findings_ja or config.retranslate):
            prompt = render_prompt(s.findings_en, glossary)
            key, phash = request_key(f"translate:{s.id}", prompt, model)
            work.append(Work(s, prompt, key, phash))
    return work


def _ask(ws: Workspace, config: TranslateConfig, client, endpoint, work: list[Work], emit, stop) -> dict:
    """Send ``work``, ``concurrency`` at a time; each non-empty answer is cached as it arrives.
    Returns {sample id: (answer, cached time)}; errors are emitted and collected in ``errors``."""
    answers, errors, fatal = {}, [], None
    with ThreadPoolExecutor(config.concurrency) as pool:
        futures = {pool.submit(send, client, config, endpoint.model, (w.prompt, w.prompt), emit, w.id, stop,
                               threading.Event(), endpoint.local, request_seed(config.seed, w.key)): w for w in work}
        for fut in as_completed(futures):
            w = futures[fut]
            try:
                text, usage, seconds, attempts = fut.result()
            except Fatal as exc:
                fatal = fatal or str(exc)
                stop.set()
                for other in futures:
                    other.cancel()
                continue
            except Exception as exc:  # retries exhausted, or a request the server refused
                if not fut.cancelled():
                    errors.append({"id": w.id, "message": f"{type(exc).__name__}: {getattr(exc, 'message', exc)}"})
                continue
            if clean_translation(text):     # an empty answer is not cached: a rerun asks again
                datastore.save_response(ws, key=w.key, chunk_id=f"translate:{w.id}", prompt_hash=w.prompt_hash,
                                        model=endpoint.model, response=text, usage=usage or {}, seconds=seconds,
                                        attempts=attempts)
            answers[w.id] = (text, time.time())
            emit({"event": "progress", "id": w.id, "done": len(answers) + len(errors), "total": len(work)})
    if fatal:
        raise endpoint.refused(fatal, config.api_key_env)
    return {"answers": answers, "errors": errors}


def run(config: TranslateConfig, on_event: Callable[[dict], None] | None = None, *,
        stop: threading.Event | None = None, workspace: Workspace | None = None) -> dict:
    """Translate ``config.file``'s English findings and write ``config.out``; returns the summary."""
    emit = on_event or (lambda event: None)
    if config.concurrency < 1:
        raise UserError("--concurrency must be at least 1.", "Use e.g. --concurrency 2.",
                        code="translate.at_least_one", params={"field": "concurrency"})
    source = Path(config.file)
    samples = reports.load_reports(source, check_images=False, require_ja=False)
    read_as = reports.fingerprint(source)      # what was read: an --in-place write refuses if the file moved on
    if not any(s.findings_en for s in samples):
        raise UserError(f"No line of {source} has findings_en: there is no English to translate.",
                        "Import the reports with their English findings (`jmedlora reports import "
                        "--allow-untranslated`), or add a findings_en field to each line.",
                        code="translate.no_english", params={"path": str(source)})
    out = _out_path(config, source)
    glossary = load_glossary(config.glossary)
    base = {"file": str(source), "glossary": glossary.provenance(), "prompt_version": PROMPT_VERSION}
    if not any(s.findings_en and (not s.findings_ja or config.retranslate) for s in samples):
        return {**base, "out": None, "lines": len(samples), "to_translate": 0, "translated": 0, "asked": 0,
                "cached": 0, "errors": [], "flagged": 0, "flagged_ids": {}}
    ws = workspace or Workspace.resolve(config.workspace)
    stop = stop or threading.Event()
    with open_endpoint(config, ws) as endpoint:          # an in-process server stops when the block ends
        work = _plan(config, samples, glossary, endpoint.model)
        done = datastore.cached_keys(ws, [w.key for w in work])
        to_send = [w for w in work if w.key not in done]
        endpoint.guard_privacy(to_send, config.allow_remote_pii, emit)
        audit.record(ws.root, audit.current_user(), "generate", f"reports:{source}", phase="start", task="translate",
                     model=endpoint.model, base_url=endpoint.base_url, local=endpoint.local, lines=len(work))
        emit({"event": "start", "model": endpoint.model, "base_url": endpoint.base_url, "local": endpoint.local,
              "to_translate": len(work), "cached": len(work) - len(to_send), "to_send": len(to_send)})
        answers = {w.id: (row["response"], row["created_at"])
                   for w in work if w.key in done for row in [datastore.cached_response(ws, w.key)]}
        asked = {"answers": {}, "errors": []}
        if to_send:
            with endpoint.client(config) as client:
                asked = _ask(ws, config, client, endpoint, to_send, emit, stop)
        answers.update(asked["answers"])
        kind = "local" if endpoint.local else "remote"
        lines, flagged, empty = _fill(samples, work, answers, glossary, endpoint.model, kind)
    with run_lock.waiting(reports.lock_path(out)):       # the Data tab's review saves into report files too
        if out.resolve() == source.resolve() and reports.fingerprint(source) != read_as:
            raise UserError(f"{source} changed while it was being translated (a reviewer saved a correction, or "
                            "another run wrote it); it was not overwritten.",
                            "Run the same command again: the answers received are cached and not asked for again.",
                            code="translate.changed", params={"path": str(source)})
        reports.write_reports(out, source, lines)
    summary = {**base, "out": str(out), "lines": len(samples), "to_translate": len(work),
               "translated": len(answers) - len(empty),
               "asked": len(asked["answers"]), "cached": len(work) - len(to_send),
               "errors": asked["errors"] + [{"id": i, "message": "empty answer"} for i in empty],
               "not_sent": len(work) - len(answers) - len(asked["errors"]), "flagged": len(flagged),
               "flagged_ids": flagged, "model": endpoint.model, "endpoint": kind}
    audit.record(ws.root, audit.current_user(), "generate", f"reports:{source}", phase="finish", task="translate",
                 out=str(out), translated=summary["translated"], flagged=len(flagged))
    return summary


def _fill(samples, work: list[Work], answers: dict, glossary: Glossary, model: str, kind: str):
    """The output lines: each answered line with its translation and provenance, the rest as they were.
    Returns (lines, {id: glossary terms missing}, [ids answered with nothing])."""
    by_id = {w.id: w for w in work}
    lines, flagged, empty = [], {}, []
    for s in samples:
        w = by_id.get(s.id)
        if w is None or s.id not in answers:
            lines.append(s)
            continue
        text, at = answers[s.id]
        translation = clean_translation(text)
        if not translation:
            empty.append(s.id)
            lines.append(s)
            continue
        missing = missing_terms(s.findings_en, translation, glossary)
        if missing:
            flagged[s.id] = missing
        provenance = {"model": model, "endpoint": kind, "prompt_version": PROMPT_VERSION, "prompt_hash": w.prompt_hash,
                      "glossary": glossary.provenance(), "source_field": "findings_en",
                      "time": datetime.datetime.fromtimestamp(at, datetime.timezone.utc).isoformat(timespec="seconds"),
                      "glossary_missing": missing}
        lines.append(dataclasses.replace(s, findings_ja=translation,
                                         metadata={**s.metadata, "translation": provenance}))
    return lines, flagged, empty


def print_event(event: dict) -> None:
    if event["event"] == "start":
        print(f"{event['to_translate']} finding(s) to translate ({event['cached']} cached, {event['to_send']} to "
              f"send) → {event['model']} @ {event['base_url']}", file=sys.stderr)
    elif event["event"] == "progress":
        print(f"[{event['done']}/{event['total']}] {event['id']}", file=sys.stderr)
    elif event["event"] in ("retry", "privacy_override"):
        print(json.dumps(event, ensure_ascii=False)[:300], file=sys.stderr)


def print_summary(summary: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(summary, ensure_ascii=False, indent=2))
        return
    if summary["out"] is None:
        print(f"Nothing to translate in {summary['file']}: every line with findings_en has findings_ja "
              "(--retranslate translates them again).")
        return
    print(f"{summary['translated']} of {summary['to_translate']} translated ({summary['cached']} from the cache) "
          f"→ {summary['out']}; {summary['flagged']} flagged, {len(summary['errors'])} error(s)")
    for sample_id, missing in list(summary["flagged_ids"].items())[:20]:
        print(f"  {sample_id}: glossary term(s) not rendered: {', '.join(missing)}")
    for err in summary["errors"][:20]:
        print(f"  {err['id']}: {err['message']}", file=sys.stderr)
