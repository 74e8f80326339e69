"""Offline training of Vigil's clinical models (never imported by serving code; needs ``.[train]``).

Run: ``.venv-train/bin/python -m vigil.models.train`` (or ``vigil train`` / ``make train``).
"""
