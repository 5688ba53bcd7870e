"""``python -m pipelines COMMAND …`` is ``jmedlora COMMAND …`` (see ``pipelines/core/commands.py``)."""
from pipelines.core.commands import main

main()
