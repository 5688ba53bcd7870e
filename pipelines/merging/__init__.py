"""Evolutionary merging on a small dev set (JRadiEvo's technique): the run (``evolve``), its dev and
test questions (``data``), the inputs checked and mixed (``inputs``), tensor merge methods
(``methods``), the CMA-ES search (``search``), the honest test-set report (``report``), the
search as a workbench job (``jobs``); and the same for a vision-language model's language tower
merged with text LMs, scored on reports (``report_merge``): the tower seen as a causal LM and
checked against the LMs before anything loads (``towers``), candidates written into the loaded
VLM (``tower_mixer``), the dev and test studies and their per-candidate scorers (``report_data``).

Imports ``evaluation`` too, by design: a candidate is scored with the same engine and metrics
as any evaluation, so a merge's numbers mean what Table 1's mean.
"""
