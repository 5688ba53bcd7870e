"""The floor every capability stands on; it imports none of them.

Errors users can fix (``errors``), command lines generated from config dataclasses (``cli``) and
the ``jmedlora`` command (``commands``), JSONL and safe loading (``jsonl``, ``safe_load``), file
locks and owner-only files (``run_lock``, ``private_files``), background jobs (``jobs``, with what
a job writes about itself in ``job_events`` and its status file in ``job_status``), the workspace
and its database (``workspace``, ``schema``), the access log and users (``audit``,
``auth``), what is local (``locality``), the personal-data guard before text leaves the machine
(``privacy``), which paths a page may read or write (``page_paths``, ``exports``), the
repository's own folders (``repo``), quiet library logs (``quiet``), text fingerprints for finding
the same text twice (``shingles``: normalisation, character n-grams, MinHash; curation's
near-duplicates and the contamination check share them).
"""
