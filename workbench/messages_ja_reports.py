"""Japanese for the errors about chest X-ray images and radiology reports: images (PNG, JPEG,
DICOM), report files, importing a folder of images with a CSV, and scoring reports.

One part of the error catalog (``messages_ja`` merges the parts and looks codes up); templates
are as described there. A row-level problem (``report.*``, ``report_import.row_*``) has no fix:
it is one line of a ``file:line: field: problem`` list whose fix is said once below it.
"""
from __future__ import annotations

# code -> (problem, fix or None)
ERRORS: dict[str, tuple[str, str | None]] = {
    # one image file (pipelines/tasks/images.py)
    "image.bad_size": ("画像サイズ {size} は幅・高さ 1〜8192 ピクセルの指定になっていません。",
                       "正方形なら数値を1つ（JRadiEvo と同じ 512 など）、または（幅, 高さ）の組を指定してください。"),
    "image.is_folder": ("{path} はフォルダで、画像ファイルではありません。", "PNG・JPEG・DICOM のファイルを1つ指定してください。"),
    "image.missing": ("画像ファイル {path} がありません。",
                      "パスを確認してください（所見ファイルでは、画像はファイルのあるフォルダからの相対パスで探します）。"),
    "image.unreadable": ("画像ファイル {path} を読めません（{reason}）。", "パスと読み取り権限を確認してください。"),
    "image.file_too_large": ("{path} は {limit_mb} MB を超えており、胸部X線画像1枚としては大きすぎます。",
                             "正しいファイルか確認してください。画像1枚（1フレーム）を PNG か DICOM で書き出してください。"),
    "image.too_many_pixels": ("{path} は {pixels} ピクセルの画像で、読み込める上限 {limit} ピクセルを超えています（解凍爆弾への対策）。",
                              "胸部X線画像か確認してください。本物の画像なら縮小（512×512 など）してから使ってください。"),
    "image.truncated": ("{path}（{kind}）は途中で切れています。画像の終わりまでデータがありません。",
                        "画像をもう一度コピーするか書き出してください。"),
    "image.corrupt": ("{path} を {kind} として復号できません。",
                      "ファイルが壊れていないか（画像ビューアで開けるか）確認し、もう一度書き出してください。"),
    "image.not_an_image": ("{path} は PNG・JPEG・DICOM の画像ではありません。",
                           "PNG に変換してください。ほかの形式は読み込めません。DICOM ファイルには DICOM のファイルヘッダーが必要です"
                           "（ヘッダーのないデータセットは `dcmconv +F 入力 出力` で保存し直してください）。"),
    "image.dicom_no_pixels": ("{path} は画素データのない DICOM ファイルです（レポート、構造化文書、ヘッダーのみのファイルなど）。",
                              "画像そのものの DICOM ファイルを指定してください。"),
    "image.dicom_photometric": ("{path} の Photometric Interpretation は {got} で、表示に対応していません"
                                "（対応：MONOCHROME1、MONOCHROME2、RGB、YBR_FULL、YBR_FULL_422）。",
                                "MONOCHROME2 の DICOM か PNG として書き出してください。"),
    "image.dicom_compressed": ("{path} は {syntax} で圧縮されており、ここでは復号できませんでした"
                               "（対応するデコーダーが入っていないか、データが壊れています）。",
                               "非圧縮で保存し直すか（例：`gdcmconv --raw 入力 出力`、`dcmdjpeg 入力 出力`）、PNG にしてください。"),
    # image-text-to-text models (pipelines/models/vision.py, modality.py)
    "vision.text_caller": ("{label} は画像とテキストを扱うモデル（視覚言語モデル）です。画像から文章を書くためのもので、"
                           "テキストだけのプロンプトへの回答や選択肢の採点はできません。",
                           "ここではテキストのモデル（default、登録済みのチェックポイント、モデルのフォルダ）を使ってください。"
                           "視覚言語モデルは画像を入力とする機能（画像からのレポート作成）で使ってください。"),
    "vision.text_model": ("{label} はテキスト専用のモデルで、画像を読めません。",
                          "画像とテキストを扱うモデルを指定してください：demo-vlm（jmedlora models prepare-demo-vlm で作成）か、"
                          "そのようなモデルのフォルダ（LLaVA、LLaVA-NeXT、Idefics3/SmolVLM、Qwen2-VL、PaliGemma）。"),
    "vision.remote_code": ("{path} のモデルは transformers に含まれないコードを使います。読み込むと、そのフォルダにある Python "
                           "ファイルが実行されます。",
                           "transformers が標準で対応するモデル（LLaVA、LLaVA-NeXT、Idefics3/SmolVLM、Qwen2-VL、PaliGemma）を"
                           "使ってください。そのコードを読んで信頼できる場合に限り、--trust-remote-code を指定できます。"),
    "vision.unsupported": ("{path} は画像からテキストを生成するモデル（image-text-to-text）として読み込めません：{detail}",
                           "transformers がそのように読み込めるモデル（LLaVA、LLaVA-NeXT、Idefics3/SmolVLM、Qwen2-VL、PaliGemma）を"
                           "使ってください。独自のコードでしか動かないモデル（Bunny など）には対応していません。"),
    "vision.no_processor": ("{path} に使える画像プロセッサがありません：{detail}",
                            "モデルのプロセッサのファイル（processor_config.json または preprocessor_config.json、トークナイザの"
                            "ファイル、chat_template.jinja）をそのフォルダにコピーしてください。"),
    "vision.no_chat_template": ("{label} にはチャットテンプレートがないため、プロンプトの中に画像を置けません。",
                                "モデルの chat_template.jinja（または chat_template.json）をそのフォルダにコピーしてください。"),
    # report files (pipelines/tasks/reports.py)
    "reports.missing": ("所見ファイル {path} がありません。",
                        "所見の JSONL を指定するか（例：assets/reports/sample_ja.jsonl）、`jmedlora reports import` で作成してください。"),
    "reports.none_usable": ("{path} に使える所見が1件もありません。",
                            "所見の JSONL（1行に {{\"id\", \"image\", \"findings_ja\"}} のオブジェクト1つ）か確認してください。"),
    "reports.bad_lines": ("{path} に問題のある行が {n} 件あります：\n{lines}", "該当する行を直してから、もう一度実行してください。"),
    "report.unknown_field": ("未知の項目です。追加の情報は metadata に入れてください", None),
    "report.unknown_field_close": ("未知の項目です（{suggestion} の誤りでは？）。追加の情報は metadata に入れてください", None),
    "report.missing": ("必須の項目がありません", None),
    "report.blank_id": ("空欄でない文字列か整数にしてください（結果と分割はこの ID で突き合わせます）", None),
    "report.image_blank": ("空でないパス（文字列）にしてください", None),
    "report.image_absolute": ("{image}：絶対パスです。所見ファイルのあるフォルダからの相対パスにしてください", None),
    "report.image_outside": ("{image}：所見ファイルのフォルダの外を指しています（「..」かリンク経由）。"
                             "画像はそのフォルダかその下に置いてください", None),
    "report.image_missing": ("{image}：ファイルが見つかりません（パスは所見ファイルのあるフォルダからの相対パスです）", None),
    "report.image_not_file": ("{image}：通常のファイルではありません（フォルダ、名前付きパイプ、デバイスなど）", None),
    "report.image_unreadable": ("{image}：画像として使えません：{inner}", None),
    "report.not_text": ("文字列か null にしてください（指定：{got}）", None),
    "report.findings_ja_empty": ("空です。日本語の所見（正解）が必要です（未翻訳の取り込みは require_ja=False で読み込みます）", None),
    "report.nothing_to_translate": ("空で、翻訳元の findings_en もありません", None),
    "report.view_too_long": ("{limit} 文字を超えています。撮影方向は PA、AP、LATERAL などの短いコードです", None),
    "report.metadata_type": ("JSON オブジェクトにしてください（指定：{got}）", None),
    "report.duplicate_id": ("ID {got} が重複しています", None),
    # importing images + a CSV (pipelines/data/report_import.py)
    "report_import.csv_too_big": ("{path} は {limit_mb} MB を超えており、所見の CSV としては大きすぎます。",
                                  "正しいファイルか確認するか、いくつかに分けてください。"),
    "report_import.csv_missing": ("CSV ファイル {path} がありません。", "--csv に指定したパスを確認してください。"),
    "report_import.csv_unreadable": ("CSV ファイル {path} を読めません（{reason}）。", "--csv に指定したパスと読み取り権限を確認してください。"),
    "report_import.csv_encoding": ("{path} は {encoding} のテキストではありません（{line} 行目付近）。",
                                   "UTF-8 で保存し直すか（Excel では「CSV UTF-8」）、日本語版 Excel の CSV なら --encoding cp932 を指定してください。"),
    "report_import.csv_malformed": ("{path} の {line} 行目を CSV として読めません（{detail}）。",
                                    "その行の引用符を確認してください（カンマや改行を含む所見は \" で囲む必要があります）。"),
    "report_import.csv_empty": ("{path} は空です。", "1行目に列名のある CSV を指定してください。"),
    "report_import.no_image_column": ("{path} に画像の列がありません。",
                                      "列名を path、filename、image のいずれかにしてください（MIMIC-CXR の dicom_id と subject_id、study_id でも構いません）。"),
    "report_import.no_japanese": ("{path} に findings_ja の列がありません。所見ファイルには日本語の所見が必要です。",
                                  "翻訳を findings_ja 列として加えるか、--allow-untranslated を付けて英語のまま取り込んでください。"),
    "report_import.no_findings": ("{path} に findings_ja、findings、findings_en のいずれの列もありません。",
                                  "所見の列名を findings_ja（日本語）か findings（英語）にしてください。"),
    "report_import.no_folder": ("画像フォルダ {path} がないか、フォルダではありません。", "画像のあるフォルダを --images に指定してください。"),
    "report_import.out_outside": ("所見ファイル {path} が画像フォルダ {images} の中にもその上位にもありません。"
                                  "所見ファイルは自分のフォルダとその下の画像しか読みません。",
                                  "--out を省略する（画像フォルダの reports.jsonl になります）か、画像フォルダの上位のフォルダに書き出してください。"),
    "report_import.out_exists": ("{path} はすでにあります。", "置き換えるなら --overwrite を付けるか、別の --out を指定してください。"),
    "report_import.nothing_written": ("{path} から取り込める行が1行もありません。", "上に挙げた問題を確認し、行を直してください。"),
    "report_import.row_width": ("値が {got} 個ありますが、列は {expected} 個です", None),
    "report_import.image_not_found": ("画像が見つかりません（探した場所：{looked}）", None),
    # translating English findings into Japanese (pipelines/data/translate.py)
    "translate.glossary_missing": ("用語集 {path} を読めません（ないか、ファイルではありません）。",
                                   "--glossary に存在する用語集の JSON を指定してください（既定は assets/reports/glossary_en_ja.json）。"),
    "translate.glossary_bad": ("{path} は用語集の JSON になっていません（{detail}）。",
                               "{{\"name\": ..., \"version\": ..., \"terms\": [{{\"en\": [\"pleural effusion\"], \"ja\": [\"胸水\"]}}]}} "
                               "の形で書いてください。"),
    "translate.no_english": ("{path} には findings_en のある行が1行もなく、翻訳する英語がありません。",
                             "英語の所見ごと取り込むか（`jmedlora reports import --allow-untranslated`）、各行に findings_en を加えてください。"),
    "translate.out_and_in_place": ("--out と --in-place が両方指定されています。",
                                   "どちらか一方にしてください（--out FILE は新しいファイルに書き、--in-place は入力を書き換えます）。"),
    "translate.out_is_input": ("--out {path} は入力ファイルそのものです。",
                               "別の --out を指定するか、入力を書き換えるなら --in-place を付けてください。"),
    "translate.out_outside": ("{path} は {source} のフォルダの中にもその上位にもありません。所見ファイルは自分のフォルダとその下の画像しか読みません。",
                              "--out は入力と同じフォルダ（かその上位）に書き出してください。"),
    "translate.out_exists": ("{path} はすでにあります。", "置き換えるなら --overwrite を付けるか、別の --out を指定してください。"),
    "translate.at_least_one": ("--concurrency は1以上にしてください。", "たとえば --concurrency 2 を指定してください。"),
    # reviewing translations (pipelines/data/translation_review.py)
    "translation.empty": ("{id} の日本語の所見を空にはできません。", "修正した訳文を書いてください（行を除くには所見ファイルを編集してください）。"),
    "translation.no_id": ("{path} に ID {id} の行がありません。", "翻訳の一覧で ID を確認してください。"),
    "translate.changed": ("{path} は翻訳中に変更されました（確認者が修正を保存したか、別の実行が書き込みました）。上書きしていません。",
                          "同じコマンドをもう一度実行してください。受け取った訳はキャッシュされていて、再び問い合わせません。"),
    "translation.changed": ("{id} の日本語の所見は、あなたが開いた後に別の人が変更しました。",
                            "一覧を開き直して相手の修正を読んでから、もう一度修正してください。"),
    "translation.no_file": ("所見ファイルが指定されていません。", "パスを入力するか、一覧から選んでください。"),
    # a file a page rewrites in place (pipelines/core/exports.py: editable_file)
    "edit.outside": ("{path}（{what}）は読めますが、この画面からは変更できません。保存できるのは {folder} などワークスペース内の決められたフォルダだけです。",
                     "ファイルのフォルダ（画像ごと）を {folder} にコピーし、そこで開いてください。"),
    "edit.symlink": ("{path}（{what}）はシンボリックリンクを通っています。この画面はリンク越しに書き込みません。",
                     "フォルダを通常のファイルとして {folder} にコピーしてください。"),
    "edit.not_a_file": ("{path}（{what}）は通常のファイルではありません。", "所見の JSONL ファイルそのものを指定してください。"),
    # evaluating reports (pipelines/evaluation/evaluator.py, report_run.py) and scoring them (report_metrics.py)
    "eval.report_method": ("レポート生成は生成した文章で採点します。--task report には --method {value} を使えません。",
                           "--method を指定しないでください（generate になります）。"),
    "report_scores.no_shared": ("2つのシステムに共通のレポートがありません。",
                                "同じ検査（同じレポート ID）で評価したレポートどうしを比べてください。"),
    "report_scores.duplicate_id": ("システム {side} に {key} が {id} のレポートが2件あります。",
                                   "1件のレポートにつき1行にしてください（両システムで同じ ID を使います）。"),
    "report_scores.missing_id": ("システム {side} の {row} 件目のレポートに {key} がありません。",
                                 "2つのシステムのレポートを突き合わせられるよう、すべての行に {key} を付けてください。"),
    "report_scores.missing_scores": ("{row} 件目のレポートの行に {fields} がありません。",
                                     "集計の前に各レポートを採点してください（またはレポート評価をやり直してください）。"),
}
