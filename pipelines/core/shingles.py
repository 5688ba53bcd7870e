"""Text fingerprints for finding the same text twice: normalisation, character n-grams, MinHash.

Written once, used by curation (near-duplicate instruction records, ``pipelines.data.filters``) and
by the contamination check (exam questions found in training data, ``pipelines.tasks.overlap``). It
lives in ``core`` because ``data`` and ``training``/``evaluation`` are peers that may not import
each other, and both need the same fingerprints: a record flagged as a near-duplicate by curation
is a near-duplicate by the same measure when it is compared with an exam question.

Japanese has no spaces between words, so shingles are character n-grams of the normalised text
(NFKC, lower case, no spaces or punctuation) rather than whitespace words: a whitespace "word"
would be a whole sentence. Character 3-grams carry most Japanese morphemes (words average 1.8
characters on the exam questions, counted with MeCab) and keep a one-word edit from touching more
than three shingles. Normalising first makes full-width and half-width digits, 「、」 and 「,」 and
line breaks irrelevant: the same question typeset twice is the same text.
"""
from __future__ import annotations

import re
import unicodedata
import zlib
from functools import lru_cache

SHINGLE_CHARS = 3            # characters per MinHash shingle
NUM_PERM = 64                # MinHash permutations: more is more exact and slower
MINHASH_SEED = 1

_NOT_CONTENT = re.compile(r"[\W_]+")


def normalize(text: str) -> str:
    """For comparisons: NFKC, lower case, no spaces or punctuation."""
    return _NOT_CONTENT.sub("", unicodedata.normalize("NFKC", text).lower())


def char_ngrams(text: str, n: int) -> set[str]:
    """The character n-grams of ``text``; a text shorter than ``n`` is its own single n-gram."""
    return {text[i:i + n] for i in range(max(1, len(text) - n + 1))}


@lru_cache(maxsize=4)
def _template(num_perm: int):
    from datasketch import MinHash

    # crc32 instead of datasketch's default sha1: deterministic too, and several times faster;
    # the permutations are drawn once and shared (drawing them per record dominated the time).
    return MinHash(num_perm=num_perm, seed=MINHASH_SEED, hashfunc=zlib.crc32)


def minhash(normalized: str, num_perm: int = NUM_PERM):
    """The MinHash (datasketch ``LeanMinHash``) of a normalised text's character 3-grams.

    Two texts' ``jaccard`` estimates the Jaccard similarity of their 3-gram sets."""
    from datasketch import LeanMinHash, MinHash

    template = _template(num_perm)
    m = MinHash(num_perm=num_perm, seed=MINHASH_SEED, hashfunc=zlib.crc32,
                permutations=template.permutations, scheme=template.scheme)
    m.update_batch([g.encode("utf-8") for g in char_ngrams(normalized, SHINGLE_CHARS)])
    return LeanMinHash(m)


def from_signature(hashvalues, num_perm: int = NUM_PERM):
    """A ``LeanMinHash`` again from the hash values :func:`minhash` computed (e.g. read from a .npy cache)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=MINHASH_SEED, hashvalues=hashvalues, scheme=_template(num_perm).scheme)
