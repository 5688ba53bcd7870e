"""Personal-data scanner for Japanese clinical text: the guard before text leaves the machine.

``scan(text)`` returns ``Finding``s (kind, matched text, span) for the identifiers typical of
Japanese clinical documents: patient names with honorifics (kanji, katakana or hiragana; a
one-character surname such as 林さん) or in a 患者/氏名 field, names in Latin letters (a
foreign patient's, or a romanised one) in a name field, after Mr/Mrs/Ms or before an honorific,
patient and medical-record numbers, dates of birth (Western and 昭和/平成/令和 dates, in Arabic
or kanji numerals such as 昭和五十二年三月十日), phone numbers (hyphens, none, or spaces:
090 1234 5678), addresses down to the block number, e-mail addresses and My Number (個人番号, checked with
its check digit). It is a pattern scanner: it favours catching too much (the user can
override after looking) over letting an identifier through, and it does not replace a
proper de-identification step for data that must be anonymised. Known cost of that choice: a
katakana noun before 様 meaning "-like" and not followed by a kanji (ポリープ様の隆起) is flagged.

Every path that sends text off this machine checks it here first (data generation, endpoint
models); ``jmedlora privacy FILE...`` (``pipelines.data.privacy``) prints what would be blocked.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from pipelines.core.errors import UserError


class PrivacyBlocked(UserError):
    """Raised before anything is sent; ``findings`` lists what was found, per chunk (data generation)
    or per prompt (``prompts=True``: a model behind a remote endpoint, e.g. in an evaluation)."""

    def __init__(self, base_url: str, findings: list[dict], *, prompts: bool = False):
        self.findings = findings
        self.event_fields = {"findings": findings, "base_url": base_url}    # in the job's error event
        lines = [f"  {f['chunk_id']}: {f['label']} {f['text']!r}" for f in findings[:20]]
        if len(findings) > 20:
            lines.append(f"  … and {len(findings) - 20} more")
        what, fix = (("prompt(s)", "Remove or de-identify it, use a local model, or, if you are allowed to send it, "
                                   "pass --allow-remote-pii.") if prompts else
                     ("chunk(s)", "Remove or de-identify it, generate with a local model (leave out --base-url), or, "
                                  "if you are allowed to send it, pass --allow-remote-pii."))
        super().__init__(
            f"Personal data found in {len({f['chunk_id'] for f in findings})} {what} that would be sent to "
            f"{base_url}, which is not on this machine:\n" + "\n".join(lines), fix,
            code="privacy.blocked_prompts" if prompts else "privacy.blocked",
            params={"url": base_url, "n": len({f["chunk_id"] for f in findings}), "more": max(0, len(findings) - 20),
                    "findings": [{k: f.get(k) for k in ("chunk_id", "kind", "text")} for f in findings[:20]]})


KINDS = {
    "name": "patient name",
    "record_number": "patient / medical record number",
    "date_of_birth": "date of birth",
    "date": "full calendar date (era)",
    "phone": "phone number",
    "address": "street address",
    "email": "e-mail address",
    "my_number": "My Number (個人番号)",
}


@dataclass(frozen=True)
class Finding:
    kind: str       # a key of KINDS
    text: str       # the matched text, as in the original
    start: int
    end: int

    @property
    def label(self) -> str:
        return KINDS[self.kind]

    def to_dict(self) -> dict:
        return {"kind": self.kind, "label": self.label, "text": self.text, "start": self.start, "end": self.end}


# Full-width digits, letters and punctuation are mapped one character to one character, so
# spans found in the normalised text are spans of the original.
_FW = {chr(c): chr(c - 0xFEE0) for c in range(0xFF01, 0xFF5F)}
_FW.update({"　": " ", "ー": "ー", "−": "-", "‐": "-", "―": "-", "‑": "-", "–": "-", "—": "-"})
_NORMALISE = str.maketrans(_FW)

_KANJI = r"一-龯々〆ヶ"
_KANA = r"ァ-ヺー"
_DASH = r"[-ー]"

_PREFECTURES = ("北海道|青森県|岩手県|宮城県|秋田県|山形県|福島県|茨城県|栃木県|群馬県|埼玉県|千葉県|東京都|"
                "神奈川県|新潟県|富山県|石川県|福井県|山梨県|長野県|岐阜県|静岡県|愛知県|三重県|滋賀県|京都府|"
                "大阪府|兵庫県|奈良県|和歌山県|鳥取県|島根県|岡山県|広島県|山口県|徳島県|香川県|愛媛県|高知県|"
                "福岡県|佐賀県|長崎県|熊本県|大分県|宮崎県|鹿児島県|沖縄県")

# Kanji numerals as clinical notes write them in 和暦 dates (昭和五十二年三月十日).
_KNUM = r"[〇一二三四五六七八九十]{1,4}"
_ERA_DATE = rf"(?:明治|大正|昭和|平成|令和)\s?(?:\d{{1,2}}|元|{_KNUM})\s?年\s?(?:\d{{1,2}}|{_KNUM})\s?月\s?(?:\d{{1,2}}|{_KNUM})\s?日"
_DATE = (rf"(?:{_ERA_DATE}"
         r"|(?:明治|大正|昭和|平成|令和|[MTSHR])\s?(?:\d{1,2}|元)\s?[年./]\s?\d{1,2}\s?[月./]\s?\d{1,2}日?"
         r"|\d{4}\s?[年/.-]\s?\d{1,2}\s?[月/.-]\s?\d{1,2}日?)")

# A name, then an honorific; not an eponym (バセドウ氏病) nor a form field (氏名). The name: a kanji
# family name (one character, as 林, or more) with an optional given name in kanji, hiragana or
# katakana (鈴木ハナコさん); a katakana name, one word or two (サトウ様, タナカ イチロウ様); a
# hiragana name (さとう様), as notes write a patient's name when its kanji are unknown. Words of
# those shapes that are no name (お母さん, 皆様, ナースさん) are dropped in scan().
_HONORIFIC_NAME = re.compile(
    rf"(?P<v>(?:[{_KANJI}]{{1,4}}[ 　]?(?:[{_KANJI}]{{1,4}}|[ぁ-ゖ]{{2,4}}|[{_KANA}]{{2,6}})?"
    rf"|(?<![{_KANA}])[{_KANA}]{{2,8}}(?:[ 　][{_KANA}]{{2,8}})?"
    rf"|(?<![ぁ-ゖ])[ぁ-ゖ]{{2,6}}(?:[ 　][ぁ-ゖ]{{2,6}})?)"
    # 様 before a kanji is "-like" in clinical text (インスリン様成長因子, すりガラス様陰影), not an honorific.
    rf"[ 　]?(?P<h>様|さま|さん|氏|殿))(?![病症名族])(?<!様(?=[{_KANJI}]))")

# A name in Latin letters, as a foreign patient's is written, or a Japanese one romanised (Taro
# Yamada, YAMADA Taro, Yamada, Taro; O'Brien, Smith-Jones): capitalised words, one to three.
_LATIN_WORD = r"(?:(?:[A-Z]['’])?[A-Z][a-z]+(?:-[A-Z]?[a-z]+)?|[A-Z]{2,}(?![a-z]))"
_LATIN_NAME = rf"{_LATIN_WORD}(?:,?[ ]{_LATIN_WORD}){{0,2}}"
_LATIN_NAMES = [
    # A name field in English (the Japanese fields take Latin names too, in _PATTERNS), where a bare
    # "Patient:" needs two words (Patient: Presented with … is a sentence, not a name).
    re.compile(rf"\b(?i:(?:patient|pt\.?)[' ]{{0,3}}(?:s[ ])?name|full[ ]name|name)\s*[:：]\s*(?P<v>{_LATIN_NAME})"),
    re.compile(rf"\b(?i:patient|pt\.?)\s*[:：]\s*(?P<v>{_LATIN_WORD}(?:,?[ ]{_LATIN_WORD}){{1,2}})"),
    # An English title before the name (Mrs. Smith); a Japanese honorific after it (Smith様, John Smithさん;
    # not 氏, which follows eponyms: Basedow氏の報告, Virchow氏の三徴).
    re.compile(rf"(?P<v>\b(?:Mr|Mrs|Ms|Miss|Mx)\.?[ ]{_LATIN_NAME})"),
    re.compile(rf"(?P<v>\b{_LATIN_NAME}[ 　]?(?:様|さま|さん))"),
]

_PATTERNS: list[tuple[str, re.Pattern]] = [
    ("name", re.compile(  # a 患者/氏名 field followed by a name, in Japanese script or Latin letters
        rf"(?:患者(?:氏名|名)?|氏名|名前|フリガナ|ふりがな)\s*[:：]\s*"
        rf"(?P<v>[{_KANJI}{_KANA}ぁ-ゖ]{{1,6}}(?:[ 　][{_KANJI}{_KANA}ぁ-ゖ]{{1,6}})?|{_LATIN_NAME})")),
    ("name", _HONORIFIC_NAME),
    *(("name", pattern) for pattern in _LATIN_NAMES),
    ("record_number", re.compile(
        r"(?:患者\s*ID|患者番号|カルテ\s*(?:番号|No\.?|ID)|診察券番号|病歴番号|受付番号|被保険者番号|保険者番号"
        r"|記号番号|MRN|\bID)\s*(?:[:：#]|は)?\s*(?P<v>[A-Za-z]{0,3}-?\d[\d-]{3,})", re.IGNORECASE)),
    ("date_of_birth", re.compile(rf"(?:生年月日|誕生日|DOB)\s*(?:[:：]|は)?\s*(?P<v>{_DATE})", re.IGNORECASE)),
    ("date_of_birth", re.compile(rf"(?P<v>{_DATE}\s?(?:生まれ|生))")),
    ("date", re.compile(rf"(?P<v>{_ERA_DATE})")),
    ("phone", re.compile(
        rf"(?<![\d-])(?P<v>(?:\+81{_DASH}?|0)\d{{1,4}}{_DASH}\d{{1,4}}{_DASH}\d{{3,4}}|0[5-9]0\d{{8}}|0\d{{9}})(?![\d-])")),
    # Written with spaces (090 1234 5678, 03 1234 5678): a mobile's 3-4-4, or 10 digits in three groups.
    ("phone", re.compile(r"(?<![\d-])(?P<v>(?:\+81 ?|0)[5-9]0 \d{4} \d{4}|0\d{1,4} \d{1,4} \d{4})(?![\d-])")),
    ("phone", re.compile(r"(?:TEL|Tel|電話|携帯)\s*(?:番号)?\s*[:：]?\s*(?P<v>\(?0\d{1,4}\)?[\d()-]{6,})")),
    ("address", re.compile(
        rf"(?P<v>(?:{_PREFECTURES})?[{_KANJI}ぁ-ゖ{_KANA}]{{1,8}}?[市区町村郡][{_KANJI}ぁ-ゖ{_KANA}]{{0,12}}?"
        rf"\d{{1,4}}(?:丁目|番地?|号|{_DASH}\d{{1,4}})(?:{_DASH}?\d{{1,4}}(?:丁目|番地?|号)?)*)")),
    ("email", re.compile(r"(?P<v>[\w.+-]+@[\w-]+(?:\.[\w-]+)+)")),
]

# Words that end like a name but are not one (患者様, ご家族様, 皆様, 担当医様, お母さん …).
_NOT_NAME_ENDINGS = ("患者", "家族", "者", "方", "員", "医", "師", "士", "様方", "各位", "本人", "皆",
                     "先生", "御中", "神", "子供", "子ども", "ご主人", "奥", "お客",
                     "母", "父", "兄", "姉", "弟", "妹", "娘", "息子", "嫁", "婿", "孫", "夫", "妻", "殿", "姫", "仏",
                     # the same in kana, and staff called by their role
                     "みな", "みんな", "ママ", "パパ",
                     "ナース", "ドクター", "ヘルパー", "ケアマネ", "スタッフ", "ボランティア", "ドライバー",
                     "リハ", "セラピスト", "クラーク", "ワーカー")
# Kana stems that begin with the polite お/ご are words (おかあさん, ご主人さま), not names.
_POLITE_PREFIXES = ("お", "ご")

# Ordinary words that end in an honorific-like character.
_NOT_NAME_WORDS = {"同様", "多様", "模様", "仕様", "異様", "一様", "態様", "紋様", "有様", "文様", "神様", "王様",
                   "宮殿", "御殿", "神殿", "彼氏", "両氏", "諸氏", "同氏", "某氏", "貴様", "殿様", "奥様", "各様",
                   "皆さん", "皆さま", "みなさん", "みなさま", "ひとさま", "たくさん"}

_MY_NUMBER = re.compile(r"(?<![\d-])(?P<v>\d{4}[ -]?\d{4}[ -]?\d{4})(?![\d-])")
_MY_NUMBER_CONTEXT = re.compile(r"(?:マイナンバー|個人番号)\s*(?:[:：]|は)?\s*$")


def my_number_check_digit(first11: str) -> int:
    """The check digit of a 12-digit My Number (総務省令 第5条)."""
    total = 0
    for n in range(1, 12):
        p = int(first11[11 - n])
        q = n + 1 if n <= 6 else n - 5
        total += p * q
    r = total % 11
    return 0 if r <= 1 else 11 - r


def is_my_number(digits: str) -> bool:
    digits = re.sub(r"\D", "", digits)
    return len(digits) == 12 and my_number_check_digit(digits[:11]) == int(digits[11])


def _looks_like_a_name(stem: str, honorific: str) -> bool:
    """Whether the words before an honorific are a name, not a role, a family word or a polite word."""
    return not (stem.endswith(_NOT_NAME_ENDINGS)
                or stem[-1] + honorific in _NOT_NAME_WORDS or stem + honorific in _NOT_NAME_WORDS
                or (re.match(r"[ぁ-ゖ]", stem) and stem.startswith(_POLITE_PREFIXES))
                or re.search(r"様|さま|さん|殿", stem))      # 皆さん|たくさん: two words, not one name


def scan(text: str) -> list[Finding]:
    """All personal-data findings in ``text``, in order, overlapping duplicates removed."""
    norm = text.translate(_NORMALISE)
    found: list[Finding] = []
    for kind, pattern in _PATTERNS:
        for m in pattern.finditer(norm):
            a, b = m.span("v")
            value = norm[a:b].rstrip()
            if pattern is _HONORIFIC_NAME:
                if not _looks_like_a_name(norm[a:m.start("h")].rstrip(), m.group("h")):
                    continue
            found.append(Finding(kind, text[a:a + len(value)], a, a + len(value)))
    for m in _MY_NUMBER.finditer(norm):
        a, b = m.span("v")
        if is_my_number(m.group("v")) or _MY_NUMBER_CONTEXT.search(norm[max(0, a - 12):a]):
            found.append(Finding("my_number", text[a:b], a, b))
    return _dedupe(found)


_PRIORITY = ["my_number", "date_of_birth", "record_number", "phone", "email", "address", "name", "date"]


def _dedupe(found: list[Finding]) -> list[Finding]:
    """Where findings overlap keep the more specific kind (a 生年月日 date is not just a date)."""
    found.sort(key=lambda f: (_PRIORITY.index(f.kind), f.start, -(f.end - f.start)))
    kept: list[Finding] = []
    for f in found:
        if not any(f.start < k.end and k.start < f.end for k in kept):
            kept.append(f)
    return sorted(kept, key=lambda f: f.start)


def redact(text: str, findings: list[Finding] | None = None) -> str:
    """``text`` with each finding replaced by ［KIND］ (for showing a document safely)."""
    findings = scan(text) if findings is None else findings
    out, pos = [], 0
    for f in sorted(findings, key=lambda f: f.start):
        out.append(text[pos:f.start] + f"［{f.kind}］")
        pos = f.end
    return "".join(out) + text[pos:]


def summarize(findings: list[Finding], limit: int = 10) -> str:
    """One line per finding (at most ``limit``), for error messages and logs."""
    lines = [f"{f.label}: {f.text!r}" for f in findings[:limit]]
    if len(findings) > limit:
        lines.append(f"… and {len(findings) - limit} more")
    return "\n".join(lines)
