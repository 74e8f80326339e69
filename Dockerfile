FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY agents agents
COPY models models
COPY schemas schemas
COPY infra infra
COPY cli cli
COPY bench bench
COPY data data
RUN pip install --no-cache-dir .
USER nobody
ENTRYPOINT []
