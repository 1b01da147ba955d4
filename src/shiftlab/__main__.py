"""``python -m shiftlab``: the same entry point as the ``shiftlab`` console script (``shiftlab.cli.run``)."""

from shiftlab.cli import run

run()
