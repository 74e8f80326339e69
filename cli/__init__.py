"""The ``vigil`` command line: the top layer (it may import every other room)."""
