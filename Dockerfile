# Reclaim's API and worker: one image, the command picks the process (see docker-compose.yml).
# No secret is baked in: every setting is a RECLAIM_* variable given at run time.

FROM python:3.12.11-slim-bookworm AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1
WORKDIR /src
COPY pyproject.toml README.md worker.py ./
COPY reclaim ./reclaim
COPY workflows ./workflows
COPY activities ./activities
COPY api ./api
COPY bench ./bench
RUN python -m venv /opt/reclaim && /opt/reclaim/bin/pip install .

FROM python:3.12.11-slim-bookworm
RUN groupadd --system --gid 10001 reclaim \
    && useradd --system --uid 10001 --gid reclaim --create-home --home-dir /home/reclaim reclaim
COPY --from=build /opt/reclaim /opt/reclaim
ENV PATH=/opt/reclaim/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /home/reclaim
USER reclaim
# The API (RECLAIM_API_PORT) and a worker's SDK metrics (RECLAIM_WORKER_METRICS_ADDRESS).
EXPOSE 8000 9464
CMD ["reclaim", "api"]
