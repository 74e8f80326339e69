"""Offline training of Vigil's clinical models (never imported by serving code; needs ``.[train]``).

Run: ``.venv-train/bin/python -m models.train`` (or ``vigil train`` / ``make train``).
"""
