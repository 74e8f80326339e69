"""``python -m vigil.cli``: the console script (workers are spawned this way)."""

from vigil.cli.main import main

main()
