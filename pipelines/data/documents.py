"""Source documents for instruction-data generation: load, then cut into chunks.

A folder (or a list of files) of ``.txt``, ``.md`` and ``.pdf`` documents becomes a list of
``Chunk``s, cut by lines or by tokens with an overlap so that a fact split across a
boundary is seen whole by at least one request.

Every chunk carries a stable id, ``DOC@START-END#HASH`` (document name, position in lines
or tokens, and a hash of the chunk's text). The request cache is keyed by it, so editing one
paragraph of a document re-sends only the chunks whose text changed.

    jmedlora documents DIR [--by lines|tokens] [--size N] [--overlap N]
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal, Sequence

from pipelines.core import cli
from pipelines.core.errors import UserError, cli_guard

SUFFIXES = (".txt", ".md", ".pdf")
# Japanese hospitals still write Shift_JIS (cp932) files; try it after UTF-8.
ENCODINGS = ("utf-8-sig", "cp932", "euc-jp")


@dataclass(frozen=True)
class Document:
    name: str        # file name relative to the folder it was loaded from
    path: str
    text: str


@dataclass(frozen=True)
class Chunk:
    id: str          # DOC@START-END#HASH, stable across runs
    doc: str         # Document.name
    index: int       # position of the chunk in its document (0-based)
    start: int       # first line (1-based) or first token (0-based) of the chunk
    end: int         # last line (inclusive) or token (exclusive)
    text: str


# -- loading ----------------------------------------------------------------------

def _read_text(path: Path) -> str:
    data = path.read_bytes()
    for enc in ENCODINGS:
        try:
            return data.decode(enc)
        except UnicodeDecodeError:
            continue
    raise UserError(f"{path} is not text in UTF-8, Shift_JIS (cp932) or EUC-JP.",
                    "Save it as UTF-8 (e.g. with `iconv -t utf-8`).", code="docs.encoding", params={"path": str(path)})


def _read_pdf(path: Path) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(str(path))
        if reader.is_encrypted:
            raise UserError(f"{path} is an encrypted PDF.", "Save an unencrypted copy, or export it as text.",
                            code="docs.pdf_encrypted", params={"path": str(path)})
        pages = [page.extract_text() or "" for page in reader.pages]
    except PdfReadError as exc:
        raise UserError(f"{path} could not be read as a PDF ({exc}).",
                        "Check that the file is a complete PDF, or convert it to .txt.",
                        code="docs.pdf_unreadable", params={"path": str(path)}) from None
    text = "\n".join(pages)
    if not text.strip():
        raise UserError(f"{path} has no extractable text (probably a scanned PDF).",
                        "Run OCR on it first, or supply the text as a .txt file.", code="docs.pdf_no_text",
                        params={"path": str(path)})
    return text


def load_document(path: str | Path, name: str | None = None) -> Document:
    path = Path(path)
    if path.suffix.lower() not in SUFFIXES:
        raise UserError(f"{path} is not a supported document ({', '.join(SUFFIXES)}).",
                        "Convert it to .txt, .md or .pdf.", code="docs.unsupported", params={"path": str(path)})
    text = _read_pdf(path) if path.suffix.lower() == ".pdf" else _read_text(path)
    # Normalise line ends so chunk hashes do not depend on the editor that saved the file.
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return Document(name=name or path.name, path=str(path.resolve()), text=text)


def load_documents(source: str | Path | Sequence[str | Path]) -> list[Document]:
    """A folder (searched recursively), a single file, or a list of files → documents, sorted by name."""
    if isinstance(source, (str, Path)):
        root = Path(source).expanduser()
        if not root.exists():
            raise UserError(f"Document folder {root} does not exist.", "Pass --docs DIR with .txt/.md/.pdf files.",
                            code="docs.missing", params={"path": str(root)})
        if root.is_file():
            return [load_document(root)]
        files = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES)
        docs = [load_document(p, str(p.relative_to(root))) for p in files]
    else:
        docs = [load_document(p) for p in source]
    if not docs:
        raise UserError(f"No .txt, .md or .pdf documents found in {source}.",
                        "Put the medical articles to generate from in that folder.", code="docs.none",
                        params={"path": str(source)})
    return docs


# -- chunking ---------------------------------------------------------------------

def _hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]


def _windows(n: int, size: int, overlap: int) -> list[tuple[int, int]]:
    if size < 1:
        raise UserError(f"Chunk size {size} is too small.", "Use a chunk size of at least 1.",
                        code="docs.chunk_size", params={"field": "chunk_size", "value": size})
    if not 0 <= overlap < size:
        raise UserError(f"Chunk overlap {overlap} must be at least 0 and below the chunk size {size}.",
                        "Lower --overlap.",
                        code="docs.overlap", params={"field": "chunk_overlap", "value": overlap, "size": size})
    spans, start = [], 0
    while start < n:
        end = min(n, start + size)
        spans.append((start, end))
        if end == n:
            break
        start = end - overlap
    return spans


# Approximate tokens when no tokenizer is given: each CJK character is one token (as in most
# Japanese vocabularies, roughly), a run of Latin letters or digits is one, punctuation is one.
_APPROX_TOKEN = re.compile(r"[A-Za-z]+|[0-9]+|[^\sA-Za-z0-9]")


def approx_token_spans(text: str) -> list[tuple[int, int]]:
    return [m.span() for m in _APPROX_TOKEN.finditer(text)]


def hf_token_spans(tokenizer) -> Callable[[str], list[tuple[int, int]]]:
    """Token spans from a Hugging Face fast tokenizer (character offsets of each token)."""
    def spans(text: str) -> list[tuple[int, int]]:
        enc = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
        return [(a, b) for a, b in enc["offset_mapping"] if b > a]
    return spans


def chunk_document(doc: Document, *, by: str = "lines", size: int = 20, overlap: int = 2,
                   token_spans: Callable[[str], list[tuple[int, int]]] | None = None) -> list[Chunk]:
    """Cut one document into overlapping chunks; whitespace-only chunks are skipped."""
    chunks: list[Chunk] = []
    if by == "lines":
        lines = doc.text.split("\n")
        for a, b in _windows(len(lines), size, overlap):
            text = "\n".join(lines[a:b]).strip()
            if text:
                chunks.append(Chunk(f"{doc.name}@L{a + 1}-{b}#{_hash(text)}", doc.name, len(chunks), a + 1, b, text))
    elif by == "tokens":
        spans = (token_spans or approx_token_spans)(doc.text)
        for a, b in _windows(len(spans), size, overlap):
            # Slice the original text between token offsets, so the chunk keeps its spacing.
            text = doc.text[spans[a][0]:spans[b - 1][1]].strip()
            if text:
                chunks.append(Chunk(f"{doc.name}@T{a}-{b}#{_hash(text)}", doc.name, len(chunks), a, b, text))
    else:
        raise UserError(f"Unknown chunking {by!r}.", "Use --chunk-by lines or --chunk-by tokens.",
                        code="docs.chunk_by", params={"field": "chunk_by", "value": str(by)})
    return chunks


def chunk_documents(docs: Sequence[Document], **kwargs) -> list[Chunk]:
    return [c for d in docs for c in chunk_document(d, **kwargs)]


@dataclass
class ChunkConfig:
    docs: str = field(metadata=cli.meta(cli.required(), cli.positional()))  # folder or file (.txt/.md/.pdf)
    by: Literal["lines", "tokens"] = "lines"   # tokens: approximate without a tokenizer
    size: int = 20                             # lines or tokens per chunk
    overlap: int = 2                           # lines or tokens shared by neighbouring chunks


@cli_guard
def main(argv: list[str] | None = None) -> None:
    parser = cli.config_parser("documents", ChunkConfig, __doc__)
    cli.add_common(parser, "json")
    ns = parser.parse_args(argv)
    args = cli.config_from_args(ChunkConfig, ns)
    chunks = chunk_documents(load_documents(args.docs), by=args.by, size=args.size, overlap=args.overlap)
    if ns.json:
        import json
        print(json.dumps([{"id": c.id, "doc": c.doc, "chars": len(c.text), "text": c.text} for c in chunks],
                         ensure_ascii=False, indent=2))
        return
    for c in chunks:
        print(f"{c.id}\t{len(c.text)} chars\t{c.text[:40]!r}")
    print(f"{len(chunks)} chunks")


if __name__ == "__main__":
    main()
