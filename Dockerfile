# The emulator as a service container for CI pipelines (docs/ci.md). Build: make image, or
#   docker build -t dcp-emulator .            (BASE must provide python3 >= 3.11 with venv)
ARG BASE=python:3.12-slim
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/dcp-emulator/bin:$PATH

# A non-editable install of the package alone (no test extras) in its own venv, then the sources go.
COPY pyproject.toml README.md /tmp/src/
COPY dcp_emulator /tmp/src/dcp_emulator
RUN python3 -m venv /opt/dcp-emulator \
 && pip install /tmp/src \
 && rm -rf /tmp/src \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home dcp \
 && mkdir -p /data && chown dcp:dcp /data

# All configuration comes from DCP_EMULATOR_* variables; these are only the container's defaults.
# DCP_EMULATOR_SEED=example (built in) or a mounted file; DCP_EMULATOR_DB=/data/dcp.db keeps state on a volume.
ENV DCP_EMULATOR_HOST=0.0.0.0 \
    DCP_EMULATOR_PORT=8080
USER dcp
WORKDIR /data
EXPOSE 8080
HEALTHCHECK --interval=5s --timeout=3s --start-period=5s --retries=3 \
    CMD ["python", "-m", "dcp_emulator", "health"]
ENTRYPOINT ["python", "-m", "dcp_emulator"]
CMD ["serve"]
