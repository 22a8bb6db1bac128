# syntax=docker/dockerfile:1
# skaha-operator image: `make image` (podman or docker build -t skaha-operator:dev .).
# Two stages: `build` installs the package into a virtualenv; the final stage copies only that
# virtualenv onto the same pinned Python base, drops pip, and runs as a non-root user.
# To pin by digest as well, build with --build-arg PYTHON_IMAGE=python:3.11.11-slim-bookworm@sha256:...
# The bases are build arguments: hack/podman.sh builds FROM Debian's own python3 (bookworm, 3.11)
# made with mmdebstrap, BUILD_IMAGE with python3-venv and PYTHON_IMAGE without pip, and passes a
# wheelhouse (PIP_NO_INDEX=1, PIP_FIND_LINKS=/wheels) where the build cannot reach an index.

ARG PYTHON_IMAGE=python:3.11.11-slim-bookworm
ARG BUILD_IMAGE=python:3.11.11-slim-bookworm

FROM ${BUILD_IMAGE} AS build
ARG PIP_NO_INDEX
ARG PIP_FIND_LINKS
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
RUN python3 -m venv /opt/venv
COPY pyproject.toml README.md ./
COPY operator ./operator
RUN /opt/venv/bin/pip install . \
 && /opt/venv/bin/pip uninstall --yes pip setuptools wheel

FROM ${PYTHON_IMAGE}
LABEL org.opencontainers.image.title="skaha-operator" \
      org.opencontainers.image.description="Prepares, runs and releases Skaha science sessions." \
      org.opencontainers.image.licenses="Apache-2.0"
# No compiler, no pip: only the interpreter and the installed virtualenv (a base without pip,
# such as Debian's python3, has nothing to uninstall).
RUN if python3 -m pip --version >/dev/null 2>&1; then python3 -m pip uninstall --yes pip setuptools wheel; fi \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /tmp --shell /usr/sbin/nologin skaha
COPY --from=build /opt/venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    HOME=/tmp
# The root filesystem may be read-only (the chart mounts an emptyDir at /tmp).
USER 10001:10001
WORKDIR /tmp
EXPOSE 8080 9090
ENTRYPOINT ["python", "-m", "skaha_operator"]
CMD ["run", "--liveness=http://0.0.0.0:8080/healthz", "--metrics-port=9090", "--log-format=json"]
