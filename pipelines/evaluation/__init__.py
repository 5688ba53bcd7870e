"""Evaluation on IgakuQA-format exams: the run (``evaluator``), its progress between answers
(``progress``), predictions made elsewhere (IgakuQA's GPT-4, ChatGPT, examinees' majority)
scored as IgakuQA's evaluate_main.py does (``imported``), how a question is put to the model
(``prompting``), results on disk and resuming (``results``), answer scoring (``scoring``), every
metric defined once (``metrics``), intervals and paired tests (``significance``), the typed summary
(``summary``), batches of checkpoints as one job (``batches``), the paper's Table 1
(``paper_table``), free-form prompts (``freeform``) and blind review (``reviews``). Evaluation that
explains itself: accuracy per specialty and per band of the examinees' accuracy, wrong answers
against the examinees' favourite, the questions they found easy that a model missed
(``insights``), the question × checkpoint flip matrix with McNemar (``flips``), and
``jmedlora insights`` printing them (``insights_cli``); exam questions found in the training data
with the score without them (``contamination``), and the training records nearest a wrongly
answered question (``nearest``). Generated
radiology reports: BLEU/METEOR/ROUGE-L on MeCab tokens with bootstrap intervals and paired
comparisons (``report_metrics``), and CheXpert findings labelled in Japanese reports with finding
F1 (``findings``, vocabulary in ``assets/findings/chexpert_ja.json``).
"""
