"""``python -m mdm``: the command line, for environments where the ``mdm`` script is not installed."""

from mdm.cli import app

app()
