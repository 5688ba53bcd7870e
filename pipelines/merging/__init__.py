"""Evolutionary merging on a small dev set (JRadiEvo's technique): the run (``evolve``), its dev and
test questions (``data``), the inputs checked and mixed (``inputs``), tensor merge methods
(``methods``), the CMA-ES search (``search``), the honest test-set report (``report``), the
search as a workbench job (``jobs``), and a vision-language model's language tower seen as a causal
LM, checked against the text LMs merged into it before anything loads (``towers``).

Imports ``evaluation`` too, by design: a candidate is scored with the same engine and metrics
as any evaluation, so a merge's numbers mean what Table 1's mean.
"""
