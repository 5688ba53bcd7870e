"""The personal-data scanner: each kind of identifier found, ordinary medical text left alone."""
from __future__ import annotations

import pytest

from pipelines.core.privacy import is_my_number, my_number_check_digit, redact, scan


def kinds(text: str) -> list[tuple[str, str]]:
    return [(f.kind, f.text) for f in scan(text)]


def _valid_my_number(first11: str = "12345678901") -> str:
    return first11 + str(my_number_check_digit(first11))


@pytest.mark.parametrize("text,kind,found", [
    ("患者：山田 太郎（65歳男性）", "name", "山田 太郎"),
    ("患者氏名：ヤマダ タロウ", "name", "ヤマダ タロウ"),
    ("本日、鈴木花子様が来院された。", "name", "鈴木花子様"),
    ("担当の佐藤さんに説明した。", "name", "佐藤さん"),
    ("田中一郎殿", "name", "田中一郎殿"),
    ("患者ID: 12345678 で受付", "record_number", "12345678"),
    ("カルテ番号：Ａ-００１２３４５", "record_number", "Ａ-００１２３４５"),
    ("ID: 9876543", "record_number", "9876543"),
    ("生年月日：昭和45年3月2日", "date_of_birth", "昭和45年3月2日"),
    ("生年月日 1970/03/02", "date_of_birth", "1970/03/02"),
    ("1970年3月2日生の男性", "date_of_birth", "1970年3月2日生"),
    ("平成元年1月8日生まれ", "date_of_birth", "平成元年1月8日生まれ"),
    ("令和5年4月1日に入院", "date", "令和5年4月1日"),
    ("連絡先 03-1234-5678", "phone", "03-1234-5678"),
    ("携帯 09012345678", "phone", "09012345678"),
    ("電話：０４５－１２３－４５６７", "phone", "０４５－１２３－４５６７"),
    ("住所：東京都新宿区西新宿2丁目8-1", "address", "東京都新宿区西新宿2丁目8-1"),
    ("大阪市北区梅田1-2-3在住", "address", "大阪市北区梅田1-2-3"),
    ("連絡は taro.yamada@example.jp まで", "email", "taro.yamada@example.jp"),
    # What the guard missed in the round-two audit, in the phrasing of clinical notes:
    ("本日外来にて林さんより症状の訴えあり。", "name", "林さん"),
    ("サトウ様より電話あり、内服の確認。", "name", "サトウ様"),
    ("鈴木ハナコさん（78歳女性）、独居。", "name", "鈴木ハナコさん"),
    ("さとう様に検査結果を説明した。", "name", "さとう様"),
    ("ご本人（かとう はなこ様）へ病状説明。", "name", "かとう はなこ様"),
    ("昭和五十二年三月十日生まれの男性。", "date_of_birth", "昭和五十二年三月十日生まれ"),
    ("生年月日：平成元年十二月三日", "date_of_birth", "平成元年十二月三日"),
    ("令和五年四月一日に入院。", "date", "令和五年四月一日"),
    ("緊急連絡先（長男）携帯 090 1234 5678", "phone", "090 1234 5678"),
    ("自宅 03 1234 5678 へ連絡", "phone", "03 1234 5678"),
    # Names in Latin letters: a foreign patient's, or a romanised Japanese one.
    ("氏名：Taro Yamada（45歳）", "name", "Taro Yamada"),
    ("患者名: YAMADA Taro", "name", "YAMADA Taro"),
    ("Patient name: O'Brien, Sean", "name", "O'Brien, Sean"),
    ("Pt name: Maria Garcia", "name", "Maria Garcia"),
    ("Patient: John Smith (65M), chest pain.", "name", "John Smith"),
    ("Mrs. Smith-Jones was seen in clinic.", "name", "Mrs. Smith-Jones"),
    ("Smith様より電話あり、内服の確認。", "name", "Smith様"),
    ("John Smithさん（42歳男性）が来院。", "name", "John Smithさん"),
])
def test_identifiers_are_found(text, kind, found):
    assert (kind, found) in kinds(text)


def test_spans_point_into_the_original_text():
    text = "経過：患者ID：００１２３４５６、電話０３－１２３４－５６７８。"
    for f in scan(text):
        assert text[f.start:f.end] == f.text
    assert {f.kind for f in scan(text)} == {"record_number", "phone"}


def test_my_number_check_digit():
    good = _valid_my_number()
    bad = good[:11] + str((int(good[11]) + 1) % 10)
    assert is_my_number(good) and not is_my_number(bad)
    assert ("my_number", f"{good[:4]} {good[4:8]} {good[8:]}") in kinds(f"番号 {good[:4]} {good[4:8]} {good[8:]}")
    assert kinds(f"検体番号 {bad}") == []
    assert kinds(f"個人番号：{bad}")[0][0] == "my_number"        # stated as a My Number: flagged anyway


@pytest.mark.parametrize("text", [
    "心不全患者様では利尿薬を用いる。ご家族様への説明も重要である。",
    "バセドウ氏病とクッシング氏症候群の鑑別。氏名の記載欄。",
    "同様に、多様な症状を呈する。",
    "HbA1c 7.2%、LDL-C 140 mg/dL、BNP 500 pg/mL、eGFR 45。2019年のガイドラインで推奨された。",
    "ワルファリン 3 mg/日を投与し、PT-INR 2.0-3.0 を目標とする。",
    "看護師さんと医師が患者さんに説明した。",
    "お母さんと娘さんが付き添い、おばあさんは自宅。ナースさんとヘルパーさんに申し送り。",
    "みなさまへ。皆さんたくさんの質問をありがとうございます。奥様とご家族様へ。",
    "インスリン様成長因子、すりガラス様陰影、腫瘤様陰影、感冒様症状を認める。",
    "平成十五年に手術歴あり。",
    # Latin words that are no name: eponyms, a sentence after "Patient:", abbreviations.
    "Basedow病、Virchow氏の三徴、Parkinson病、Down症候群、Cushing症候群を鑑別する。",
    "Patient: Presented with chest pain. Patient: Male, 65. CT: no change. Name the drug.",
    "HbA1c、LDL-C、NYHA分類、ACE阻害薬、MRI所見。",
])
def test_ordinary_medical_text_is_not_flagged(text):
    assert kinds(text) == []


def test_redact_replaces_each_finding():
    text = "患者：山田 太郎、電話03-1234-5678。"
    assert redact(text) == "患者：［name］、電話［phone］。"
