# bookworm, as the Redis image and the tests: a floating tag moves to the next Debian release unseen
FROM python:3.11-slim-bookworm
WORKDIR /app
COPY pyproject.toml README.md constraints.txt ./
COPY agents agents
COPY models models
COPY schemas schemas
COPY infra infra
COPY cli cli
COPY bench bench
COPY data data
# the versions the tests ran (constraints.txt, `make lock`)
RUN pip install --no-cache-dir -c constraints.txt .
# onnxruntime's telemetry to Microsoft, off (docs/security.md; vigil.models sets it as well)
ENV ORT_DISABLE_TELEMETRY=1
# An unprivileged user with no passwd entry and no home (a numeric id, which Kubernetes'
# runAsNonRoot can check). Vigil writes nothing here: /app stays root's, Faust's empty data folder
# goes to the temp dir, the patients' state to Redis. tests/integration/test_image.py builds this
# image's files, install and user without a Docker engine and scores through a worker run so.
USER 10001:10001
ENTRYPOINT []
