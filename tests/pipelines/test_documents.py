"""Loading and chunking documents: formats, encodings, overlap, stable ids."""
from __future__ import annotations

import pytest

from pipelines.core.errors import UserError
from pipelines.data.documents import (
    approx_token_spans,
    chunk_document,
    chunk_documents,
    hf_token_spans,
    load_document,
    load_documents,
)


def _lines(n: int) -> str:
    return "\n".join(f"{i}行目: 心不全の治療について述べる。" for i in range(1, n + 1))


def test_load_txt_md_and_shift_jis(tmp_path):
    (tmp_path / "a.txt").write_text("心不全\n", encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.md").write_text("# 糖尿病\r\n本文\r\n", encoding="utf-8")
    (tmp_path / "c.txt").write_bytes("深部静脈血栓症".encode("cp932"))
    (tmp_path / "ignored.docx").write_bytes(b"x")
    docs = load_documents(tmp_path)
    assert [d.name for d in docs] == ["a.txt", "c.txt", "sub/b.md"]
    assert docs[1].text == "深部静脈血栓症"
    assert docs[2].text == "# 糖尿病\n本文\n"          # CRLF normalised


def test_load_pdf(tmp_path):
    from pypdf import PdfWriter
    from pypdf.generic import DecodedStreamObject, DictionaryObject, NameObject
    writer = PdfWriter()
    page = writer.add_blank_page(200, 200)
    font = DictionaryObject({NameObject("/Type"): NameObject("/Font"), NameObject("/Subtype"): NameObject("/Type1"),
                             NameObject("/BaseFont"): NameObject("/Helvetica")})
    page[NameObject("/Resources")] = DictionaryObject(
        {NameObject("/Font"): DictionaryObject({NameObject("/F1"): writer._add_object(font)})})
    stream = DecodedStreamObject()
    stream.set_data(b"BT /F1 12 Tf 20 100 Td (Heart failure guideline) Tj ET")
    page[NameObject("/Contents")] = writer._add_object(stream)
    path = tmp_path / "article.pdf"
    with open(path, "wb") as fh:
        writer.write(fh)
    assert "Heart failure guideline" in load_document(path).text

    (tmp_path / "broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with pytest.raises(UserError):
        load_document(tmp_path / "broken.pdf")


def test_missing_or_empty_folder(tmp_path):
    with pytest.raises(UserError, match="does not exist"):
        load_documents(tmp_path / "nope")
    with pytest.raises(UserError, match="No .txt"):
        load_documents(tmp_path)


def test_line_chunks_overlap_and_cover_everything(tmp_path):
    (tmp_path / "a.txt").write_text(_lines(45), encoding="utf-8")
    doc = load_document(tmp_path / "a.txt")
    chunks = chunk_document(doc, by="lines", size=20, overlap=5)
    assert [(c.start, c.end) for c in chunks] == [(1, 20), (16, 35), (31, 45)]
    assert chunks[0].text.splitlines()[-5:] == chunks[1].text.splitlines()[:5]
    assert chunks[0].id.startswith("a.txt@L1-20#")


def test_ids_are_stable_and_change_only_with_content(tmp_path):
    path = tmp_path / "a.txt"
    path.write_text(_lines(40), encoding="utf-8")
    first = [c.id for c in chunk_document(load_document(path), size=20, overlap=0)]
    assert first == [c.id for c in chunk_document(load_document(path), size=20, overlap=0)]
    lines = _lines(40).splitlines()
    lines[30] = "改訂された一文。"
    path.write_text("\n".join(lines), encoding="utf-8")
    second = [c.id for c in chunk_document(load_document(path), size=20, overlap=0)]
    assert second[0] == first[0] and second[1] != first[1]


def test_token_chunks_slice_the_original_text(tmp_path, tokenizer_dir):
    (tmp_path / "a.md").write_text("Heart failure (HF) は心臓のポンプ機能の低下である。 " * 30, encoding="utf-8")
    doc = load_document(tmp_path / "a.md")
    approx = chunk_document(doc, by="tokens", size=50, overlap=10)
    assert len(approx) > 3 and all(c.text in doc.text for c in approx)
    spans = approx_token_spans(doc.text)
    assert doc.text[spans[0][0]:spans[0][1]] == "Heart"
    from transformers import AutoTokenizer
    real = chunk_document(doc, by="tokens", size=64, overlap=8,
                          token_spans=hf_token_spans(AutoTokenizer.from_pretrained(tokenizer_dir)))
    assert len(real) > 1 and all(c.text in doc.text for c in real)


@pytest.mark.parametrize("size,overlap", [(0, 0), (10, 10), (10, -1)])
def test_bad_chunk_settings(tmp_path, size, overlap):
    (tmp_path / "a.txt").write_text(_lines(5), encoding="utf-8")
    with pytest.raises(UserError):
        chunk_documents(load_documents(tmp_path), size=size, overlap=overlap)


def test_blank_chunks_are_skipped(tmp_path):
    (tmp_path / "a.txt").write_text("本文\n" + "\n" * 30 + "末尾\n", encoding="utf-8")
    chunks = chunk_document(load_document(tmp_path / "a.txt"), size=10, overlap=0)
    assert [c.text for c in chunks] == ["本文", "末尾"]
    assert [c.index for c in chunks] == [0, 1]
