"""The on-call web dashboard: FastAPI app (``app``), sign-in (``auth``), live ward model fed from Kafka
(``feed``), front end in ``static/`` (vanilla JS, no build step, no network at runtime)."""
