"""The Japanese CheXpert-style labeller against hand labels, report-level rules, and finding F1
computed by hand."""
import pytest

from pipelines.evaluation import findings

CARD, ECM, OPAC, LESION = "Cardiomegaly", "Enlarged Cardiomediastinum", "Lung Opacity", "Lung Lesion"
EDEMA, CONS, PNA, ATEL = "Edema", "Consolidation", "Pneumonia", "Atelectasis"
PTX, EFF, PLOTHER, FX, DEV = "Pneumothorax", "Pleural Effusion", "Pleural Other", "Fracture", "Support Devices"
P, N, U = "positive", "negative", "uncertain"

# Each sentence with what a reader says about each finding it mentions (positive > uncertain >
# negative within a sentence, as in a report); findings not listed are not mentioned. Written as a
# radiologist would read them, including cases the rules are known to get wrong.
HAND_LABELLED = [
    ("心拡大を認める。", {CARD: P}),
    ("心拡大は認めない。", {CARD: N}),
    ("心陰影の拡大なし。", {CARD: N}),
    ("CTRの拡大を認める。", {CARD: P}),
    ("心拡大(+)", {CARD: P}),
    ("右胸水貯留あり。", {EFF: P}),
    ("両側肋横角の鈍化を認める。", {EFF: P}),
    ("胸水や気胸は認めない。", {EFF: N, PTX: N}),
    ("明らかな気胸はない。", {PTX: N}),
    ("気胸は指摘できない。", {PTX: N}),
    ("無気肺は見られない。", {ATEL: N}),
    ("左下葉に無気肺を認める。", {ATEL: P}),
    ("板状無気肺あり。", {ATEL: P}),
    ("肺炎の可能性がある。", {PNA: U}),
    ("右下肺野の浸潤影は肺炎を疑う。", {CONS: P, PNA: U}),
    ("肺水腫は否定できない。", {EDEMA: U}),
    ("肺うっ血と思われる。", {EDEMA: U}),
    ("心不全による肺うっ血と考えられる。", {EDEMA: U}),
    ("左上肺野に結節影を認め、肺癌の可能性がある。", {LESION: P}),
    ("肺野に腫瘤影は指摘できない。", {LESION: N}),
    ("肺門部に腫瘤を疑う。", {LESION: U}),
    ("甲状腺結節を認める。", {}),                              # not a lung lesion
    ("間質性肺炎の所見を認める。", {OPAC: P}),                  # 肺炎 inside 間質性肺炎 is no pneumonia
    ("肺炎球菌ワクチン接種歴あり。", {}),
    ("レポートを参照のこと。", {}),                             # ポート inside レポート is no device
    ("両側にすりガラス影を認める。", {OPAC: P}),
    ("両側肺野の透過性低下を認める。", {OPAC: P}),
    ("肺野に異常影なし。", {OPAC: N}),
    ("右肋骨骨折を認める。", {FX: P}),
    ("明らかな骨折は認めない。", {FX: N}),
    ("気管チューブの先端は気管分岐部の上方3cmにある。", {DEV: P}),
    ("経鼻胃管は抜去されている。", {DEV: N}),
    ("右内頸静脈から中心静脈カテーテルが挿入されている。", {DEV: P}),
    ("ペースメーカーのリードは右室内にある。", {DEV: P}),
    ("左胸腔ドレーン留置中。", {DEV: P}),
    ("縦隔の拡大はなく、心胸郭比は正常範囲。", {ECM: N}),
    ("縦隔陰影の拡大を認め、大動脈解離の可能性がある。", {ECM: P}),
    ("前回認めた気胸は消失した。", {PTX: N}),
    ("胸水は前回と比べ著変なし。", {EFF: P}),
    ("胸水は減少したが残存している。", {EFF: P}),
    ("心拡大は認めないが、両側に胸水を認める。", {CARD: N, EFF: P}),
    ("心拡大を認め、胸水は認めない。", {CARD: P, EFF: N}),
    ("心拡大と肺うっ血を認める。", {CARD: P, EDEMA: P}),
    ("肺炎を示唆する所見はない。", {PNA: N}),
    ("肺炎を疑う所見あり。", {PNA: U}),
    ("気胸の可能性は低い。", {PTX: N}),
    ("右下葉にコンソリデーションを認める。", {CONS: P}),
    ("右上葉の浸潤影は改善しているが残存。", {CONS: P}),
    ("新たな浸潤影の出現なし。", {CONS: N}),
    ("胸膜肥厚を認める。", {PLOTHER: P}),
    ("右血気胸を認める。", {PTX: P}),                            # hemopneumothorax is a pneumothorax
    ("胸水(-)、気胸(-)。", {EFF: N, PTX: N}),
    ("気胸なし、胸水少量あり。", {PTX: N, EFF: P}),
    ("胸水少量あり、気胸なし。", {EFF: P, PTX: N}),
    ("胸水?", {EFF: U}),
    ("胸水の原因として心不全を考える。", {EFF: P, EDEMA: U}),
    ("肺水腫の増悪なし。", {EDEMA: P}),                          # still there, not worse
    ("気胸がないとは言えない。", {PTX: U}),                      # a double negative
    # Written after the rules were settled, labelled before the labeller saw them.
    ("両側胸水貯留を認め、うっ血性心不全が示唆される。", {EFF: P, EDEMA: U}),
    ("心胸郭比は58%と拡大している。", {CARD: P}),
    ("右下肺野に淡いすりガラス影があり、炎症性変化を疑う。", {OPAC: P, PNA: U}),
    ("気管内チューブ、経鼻胃管、右内頸静脈カテーテルが留置されている。", {DEV: P}),
    ("骨折を疑う所見は認めない。", {FX: N}),
    ("肺野に明らかな浸潤影や結節影は認められません。", {CONS: N, LESION: N}),
    ("右中肺野の結節は陳旧性炎症性瘢痕と考えられる。", {LESION: P, OPAC: U}),
    ("大動脈弓の石灰化を認める。", {}),
    ("肺門部の血管影の増強を認め、肺うっ血の所見である。", {EDEMA: P}),
    ("右肺に小さな結節影が散見されるが、有意な変化なし。", {LESION: P}),
    ("肺野の透過性は良好。", {OPAC: N}),
    ("縦隔気腫や皮下気腫は認めない。", {}),
    ("心拡大の疑い。", {CARD: U}),
    ("無気肺もしくは肺炎が考えられる。", {ATEL: U, PNA: U}),
    ("胸水貯留は認めず、肋横角は鋭。", {EFF: N}),
    ("CVカテーテル先端は上大静脈内。", {DEV: P}),
    ("左下肺野に浸潤影を認め、誤嚥性肺炎として矛盾しない。", {CONS: P, PNA: P}),
    ("肺うっ血は改善傾向。", {EDEMA: P}),
    ("明らかな心拡大や肺うっ血の所見は認めない。", {CARD: N, EDEMA: N}),
    ("気胸は認めず、ドレーン抜去可能と考える。", {PTX: N, DEV: P}),
    ("骨折の有無は不明。", {FX: U}),
]
# Written and labelled after the vocabulary was extended for the misses above; not used to tune it.
HELD_OUT = [
    ("右上葉に空洞を伴う結節影を認める。", {LESION: P}),
    ("左横隔膜挙上を認め、左下葉の無気肺を疑う。", {ATEL: U}),
    ("胸腔ドレーンの先端は右肺尖部にあり、気胸の再発はない。", {DEV: P, PTX: N}),
    ("心拡大は軽度で、前回と変化はない。", {CARD: P}),
    ("右肺尖部に小さな気胸が残存している。", {PTX: P}),
    ("両側下肺野に網状影を認め、間質性肺炎が疑われる。", {OPAC: P}),
    ("肋骨に骨折線は指摘できない。", {FX: N}),
    ("左房拡大と肺うっ血を認め、僧帽弁膜症が示唆される。", {EDEMA: P}),
    ("胸水は少量で、臨床的意義は乏しい。", {EFF: P}),
    ("気管支透亮像を伴う浸潤影があり、肺炎を考える。", {CONS: P, PNA: U}),
    ("挿管チューブの位置は適切。", {DEV: P}),
    ("右鎖骨下に皮下ポートを認める。", {DEV: P}),
    ("左肺野の透過性低下は胸水によるものと考えられる。", {OPAC: P, EFF: U}),
    ("索状影を認め、陳旧性変化と考える。", {OPAC: P}),
    ("縦隔の拡大は否定できない。", {ECM: U}),
    ("明らかな肋骨骨折や気胸は認めないが、胸壁の軟部組織腫脹あり。", {FX: N, PTX: N}),
    ("胸水や無気肺の増悪は認めない。", {EFF: P, ATEL: P}),
    ("心陰影は正常大。", {CARD: N}),
    ("右下肺野に5mm大の結節を認め、経過観察を勧める。", {LESION: P}),
]


def labelled(sentence: str) -> dict[str, str]:
    """The findings one sentence mentions, labelled as a one-sentence report."""
    return {k: v for k, v in findings.label_report(sentence).items() if v != "unmentioned" and k != "No Finding"}


def agreement(labelled_sentences) -> tuple[float, list[str], str]:
    """Share of (sentence, finding) pairs where the labeller says what the hand label says; a
    sentence that mentions nothing is one pair (right when the labeller finds nothing)."""
    pairs = agree = 0
    disagreements = []
    for sentence, hand in labelled_sentences:
        got = labelled(sentence)
        for finding in sorted(set(hand) | set(got)):
            pairs += 1
            if hand.get(finding) == got.get(finding):
                agree += 1
            else:
                disagreements.append(f"{sentence} {finding}: hand {hand.get(finding)}, labeller {got.get(finding)}")
    empty = [s for s, hand in labelled_sentences if not hand]
    pairs += len(empty)
    agree += sum(1 for s in empty if not labelled(s))
    return agree / pairs, disagreements, f"{agree}/{pairs}"


def test_agreement_with_hand_labels():
    figure, disagreements, counts = agreement(HAND_LABELLED + HELD_OUT)
    held_out, held_out_misses, held_out_counts = agreement(HELD_OUT)
    print(f"\nlabeller vs hand labels: {counts} = {figure:.3f} on {len(HAND_LABELLED + HELD_OUT)} sentences; "
          f"held out: {held_out_counts} = {held_out:.3f} on {len(HELD_OUT)}")
    print("\n".join(disagreements))
    assert len(HAND_LABELLED + HELD_OUT) >= 40
    assert figure >= 0.9, disagreements
    # A miss we expect: a size given as a number, not a word the vocabulary has.
    assert "心胸郭比は58%と拡大している。 Cardiomegaly: hand positive, labeller None" in disagreements


def test_longest_term_and_excluded_words():
    assert findings.sentence_labels("間質性肺炎と肺炎") == [(OPAC, "間質性肺炎", P), (PNA, "肺炎", P)]
    assert findings.sentence_labels("サポートとレポートとポート") == [(DEV, "ポート", P)]
    assert [m[1] for m in findings.sentence_labels("ＣＴＲの拡大")] == ["ctrの拡大"]   # NFKC, lower case


def test_report_label_precedence_and_no_finding():
    labels = findings.label_report("右胸水を疑う。右胸水貯留を認める。気胸なし。")
    assert labels[EFF] == P and labels[PTX] == N and labels[CARD] == "unmentioned"
    assert labels["No Finding"] == "unmentioned"
    assert findings.label_report("肺炎を疑う。肺炎は否定的。")[PNA] == U          # uncertain > negative
    assert findings.label_report("心拡大なし。\n気胸なし")["No Finding"] == P
    # Support Devices do not count against No Finding (CheXpert's rule).
    assert findings.label_report("ペースメーカー留置後。心拡大なし。")["No Finding"] == P
    assert findings.label_report("心拡大を疑う。")["No Finding"] == "unmentioned"
    assert set(findings.label_report("")) == set(findings.load_catalog().findings)
    assert len(findings.load_catalog().findings) == 14


def test_finding_f1_by_hand():
    pred = [{CARD: P, EFF: N, PTX: U}, {PTX: P}, {"No Finding": P}]
    ref = [{CARD: P, EFF: P}, {PTX: P}, {"No Finding": P}]
    # uncertain as positive: Cardiomegaly TP; Effusion FN; Pneumothorax FP + TP; No Finding TP.
    res = findings.finding_f1(pred, ref)
    assert res["per_finding"][CARD] == {"tp": 1, "fp": 0, "fn": 0, "precision": 1.0, "recall": 1.0, "f1": 1.0}
    assert res["per_finding"][EFF]["f1"] == 0.0 and res["per_finding"][EFF]["precision"] is None
    assert res["per_finding"][PTX]["f1"] == pytest.approx(2 / 3)
    assert res["per_finding"][FX]["f1"] is None                        # nobody positive: left out of macro
    assert res["micro_f1"] == pytest.approx(2 * 3 / (2 * 3 + 1 + 1))      # TP 3, FP 1, FN 1
    assert res["macro_f1"] == pytest.approx((1 + 0 + 2 / 3 + 1) / 4)
    strict = findings.finding_f1(pred, ref, uncertain="negative")
    assert strict["micro_f1"] == pytest.approx(6 / 7) and strict["macro_f1"] == pytest.approx(0.75)
    with pytest.raises(ValueError):
        findings.finding_f1(pred, ref, uncertain="ignore")


def test_finding_f1_from_report_text():
    generated = ["心拡大を認める。胸水なし。", "気胸を認める。", "異常なし。"]
    reference = ["心拡大と右胸水を認める。", "気胸なし。", "心拡大なし。"]
    res = findings.finding_f1([findings.label_report(t) for t in generated],
                              [findings.label_report(t) for t in reference])
    # Cardiomegaly TP and Effusion FN (report 1); Pneumothorax FP and No Finding FN (report 2); No Finding TP (3).
    assert res["per_finding"][CARD]["tp"] == 1 and res["per_finding"][EFF]["fn"] == 1
    assert res["per_finding"][PTX]["fp"] == 1 and res["per_finding"]["No Finding"] == {
        "tp": 1, "fp": 0, "fn": 1, "precision": 1.0, "recall": 0.5, "f1": pytest.approx(2 / 3)}
    assert res["micro_f1"] == pytest.approx(2 * 2 / (2 * 2 + 1 + 2))
    assert res["macro_f1"] == pytest.approx((1 + 0 + 0 + 2 / 3) / 4)


def test_f1_intervals_contain_the_figure_and_repeat_by_seed():
    pred = [{CARD: P}, {CARD: N}, {EFF: P}, {CARD: P, EFF: P}, {PTX: U}, {}] * 5
    ref = [{CARD: P}, {CARD: P}, {EFF: P}, {CARD: P}, {PTX: P}, {}] * 5
    out = findings.finding_f1_intervals(pred, ref, resamples=2000, seed=3)
    point = findings.finding_f1(pred, ref)
    for key in ("micro_f1", "macro_f1"):
        assert out[key]["mean"] == pytest.approx(point[key])
        assert out[key]["ci_low"] <= out[key]["mean"] <= out[key]["ci_high"]
        assert out[key]["ci_low"] < out[key]["ci_high"]
    assert findings.finding_f1_intervals(pred, ref, resamples=2000, seed=3) == out
    assert findings.finding_f1_intervals(pred, ref, resamples=2000, seed=4) != out
