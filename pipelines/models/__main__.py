"""``python -m pipelines.models`` (the name before the capability folders) is ``jmedlora models``."""
import runpy

runpy.run_module("pipelines.models.references", run_name="__main__", alter_sys=True)
