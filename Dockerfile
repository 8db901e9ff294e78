# syntax=docker/dockerfile:1
# The ContinuableJob operator image: `docker build -t <registry>/continuable-operator:0.1.0 .`
# from the repository root, then `helm install ... --set image.repository=<registry>/continuable-operator`.
# Job images do not use it: they get the SDK with `pip install continuable`.

ARG PYTHON_IMAGE=python:3.11-slim

# Build stage: install the project with its [operator] extra into a virtualenv.
FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
WORKDIR /src
# Only what the wheel is built from (see .dockerignore): the metadata, the SDK, the operator.
COPY pyproject.toml README.md ./
COPY sdk/ sdk/
COPY operator/ operator/
RUN /opt/venv/bin/pip install ".[operator]" \
    && /opt/venv/bin/continuable-operator --help >/dev/null

# Runtime stage: the same base (the venv's python links to it), no build files, not root.
FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="continuable-operator" \
      org.opencontainers.image.description="Kubernetes operator for checkpointed, resumable batch jobs (ContinuableJob)" \
      org.opencontainers.image.version="0.1.0" \
      org.opencontainers.image.licenses="Apache-2.0"
# A named user with a numeric id (65532, distroless' "nonroot"): Kubernetes can check
# runAsNonRoot from the image, and getpass.getuser() works.
RUN groupadd --gid 65532 continuable \
    && useradd --uid 65532 --gid 65532 --home-dir /tmp --no-create-home \
        --shell /usr/sbin/nologin continuable
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    HOME=/tmp \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1
# The chart runs it with a read-only root filesystem and /tmp as an emptyDir.
USER 65532:65532
WORKDIR /tmp
# 8080: /metrics; 8081: /healthz and /readyz.
EXPOSE 8080 8081
ENTRYPOINT ["continuable-operator"]
