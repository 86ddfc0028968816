# syntax=docker/dockerfile:1
#
# evotoken: OpenAI-compatible server for EvoToken diffusion LMs.
#
#   docker build -t evotoken:0.1.0 .
#   docker run --gpus 1 --init --stop-timeout 90 -p 8000:8000 -v hf-cache:/var/cache/huggingface \
#     -e EVOTOKEN_MODEL=GSAI-ML/LLaDA-8B-Instruct \
#     -e EVOTOKEN_LORA=zhongzero/EvoToken_LLaDA_Instruct_8B_Lora \
#     -e EVOTOKEN_DTYPE=bfloat16 evotoken:0.1.0
#
# --stop-timeout: `docker stop` waits 10 s by default before SIGKILL, less than the server's
# 30 s drain (EVOTOKEN_SHUTDOWN_GRACE), and would cut streams that are still running; compose
# sets 90 s (stop_grace_period). Podman and buildah: build with `--format docker`, or the
# HEALTHCHECK below is dropped (the OCI image format has no healthcheck field).
#
# The official PyTorch image already carries torch, CUDA and cuDNN matched to each other, which
# is the part that is hard to get right and slow to download; we add only our pure-Python
# dependencies on top. Any pytorch/pytorch *-runtime tag with torch >=2.4,<2.15 (Python >= 3.11)
# works; pick the CUDA line that your driver supports (12.8 needs driver >= 570, and runs Hopper
# and Blackwell; 2.5.1-cuda12.4-cudnn9-runtime is the choice for older 550-series drivers).
ARG BASE_IMAGE=pytorch/pytorch:2.9.0-cuda12.8-cudnn9-runtime

# ---------------------------------------------------------------------------------------------
# build: install the package into a venv that sees the base image's torch.
# The source tree, pip's build backend and its temp files stay in this stage; only the venv
# moves on, so the runtime image carries no source and no build tooling.
FROM ${BASE_IMAGE} AS build

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# --system-site-packages: torch (~5 GB with its CUDA libs) comes from the base image. pip sees it
# as already satisfying `torch>=2.4,<2.15` and does not download a second copy.
RUN python -m venv --system-site-packages /opt/venv
ENV PATH=/opt/venv/bin:$PATH

WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer is reused by every rebuild that
# changes only our code, which is nearly all of them.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install --no-cache-dir -r /tmp/requirements.txt

COPY README.md ./
COPY evotoken_core ./evotoken_core
COPY server ./server
# The import is a smoke test: a missing dependency fails the build, not the first start on a
# GPU host. (No `pip check`: it would also judge the base image's own conda packages.)
RUN pip install --no-cache-dir --no-deps . \
    && python -c "import evotoken_core, server.app"

# ---------------------------------------------------------------------------------------------
# runtime
FROM ${BASE_IMAGE} AS runtime

LABEL org.opencontainers.image.title="evotoken" \
      org.opencontainers.image.description="OpenAI-compatible server for EvoToken diffusion language models" \
      org.opencontainers.image.licenses="Apache-2.0"

# A fixed, high uid so that host-side permissions on mounted caches are predictable
# (chown -R 10001 /srv/hf-cache) and never collide with a real host account.
ARG APP_UID=10001
RUN groupadd --gid "${APP_UID}" evotoken \
    && useradd --create-home --uid "${APP_UID}" --gid "${APP_UID}" --shell /usr/sbin/nologin evotoken \
    && mkdir -p /var/cache/huggingface /models \
    && chown evotoken:evotoken /var/cache/huggingface /models

COPY --from=build /opt/venv /opt/venv
COPY --chmod=0755 deploy/docker/healthcheck.py /usr/local/bin/evotoken-healthcheck

# HF_HOME is the mount point for the model cache volume: an 8B checkpoint is 16 GB and must
# survive container restarts and upgrades. A named volume mounted here starts out owned by
# the evotoken user because this directory is.
# EVOTOKEN_HOST: inside a container, loopback-only would make the published port useless.
# PYTHONUNBUFFERED: log lines reach `docker logs` as they happen, not when a buffer fills.
# DL3064 reads the "TOKEN" in our EVOTOKEN_ prefix as a secret; nothing secret is set here.
# hadolint ignore=DL3064
ENV PATH=/opt/venv/bin:$PATH \
    HF_HOME=/var/cache/huggingface \
    EVOTOKEN_HOST=0.0.0.0 \
    EVOTOKEN_PORT=8000 \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER ${APP_UID}:${APP_UID}
WORKDIR /home/evotoken
EXPOSE 8000
VOLUME ["/var/cache/huggingface"]

# /ready, not /health: a replica that is still loading 16 GB of weights is alive but must not
# be sent traffic. The start period covers a first run that downloads the checkpoint; failures
# inside it do not count, and the first success ends it early.
HEALTHCHECK --interval=15s --timeout=5s --start-period=15m --retries=3 \
    CMD ["evotoken-healthcheck", "/ready"]

# Exec form: `evotoken` is PID 1's only child under `init: true` (or PID 1 itself), so docker
# stop's SIGTERM reaches uvicorn directly and in-flight requests get their grace period.
STOPSIGNAL SIGTERM
ENTRYPOINT ["evotoken", "serve"]
CMD []
