"""Evaluation on IgakuQA-format exams: the run (``evaluator``), answer scoring (``scoring``), every
metric defined once (``metrics``), intervals and paired tests (``significance``), the typed summary
(``summary``), batches of checkpoints as one job (``batches``), the paper's Table 1
(``paper_table``), free-form prompts (``freeform``) and blind review (``reviews``).
"""
