"""Instruction data from medical documents: load and chunk (``documents``), what would block sending
them away (``privacy``, the command over ``pipelines.core.privacy``), one request per chunk
(``chunk_requests``) and the generation run (``generate``),
parsing a model's Q&A list (``qa_parse``), the database store (``store``), and curation, review
and export (``curate``, ``curate_cli``); chest X-ray report files imported from a folder of images and a
CSV, and validated (``report_import``: ``jmedlora reports``); their English findings translated into
Japanese through the same endpoint, checked against a radiology glossary (``translate``), and the
translations listed and corrected by a person (``translation_review``).
"""
