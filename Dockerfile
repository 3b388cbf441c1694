# tswatch API image.
#
# Connected build (pip reaches PyPI and the PyTorch CPU index from inside the build):
#   docker build -t tswatch:latest .
#   docker build --build-arg PIP_INDEX_ARGS="--index-url https://my.mirror/simple" -t tswatch .
# PIP_INDEX_ARGS is passed to every `pip install` of the build stage. Its default adds the
# PyTorch CPU index (https://download.pytorch.org/whl/cpu) so torch comes as the ~200 MB CPU
# wheel instead of the multi-GB CUDA build from PyPI.
#
# Offline build: docker/build-offline.sh fills ./wheelhouse and runs `docker build --network none`.
# When the build context holds wheels in ./wheelhouse, PIP_INDEX_ARGS is ignored and pip runs
# with `--no-index --find-links` on them.
#
# Runtime: non-root user tswatch (uid/gid 10001), registry volume /models, port 8000.

ARG PYTHON_IMAGE=python:3.11-slim

# ----------------------------------------------------------------------------- deps stage
FROM ${PYTHON_IMAGE} AS deps

ARG PIP_INDEX_ARGS="--extra-index-url https://download.pytorch.org/whl/cpu"
ARG TORCH_VERSION=2.13.0
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore

RUN python -m venv /opt/venv

# `wheelhous[e]` matches nothing on a connected build (no error as pyproject.toml matches);
# when present, the wheels land flat in /tmp/ctx next to pyproject.toml.
COPY pyproject.toml wheelhous[e] /tmp/ctx/

# Third-party dependencies only, so this (large) layer is reused until pyproject.toml or the
# wheelhouse change. Then trim what a server never needs (tests, C headers, static libraries).
RUN set -eu; \
    if ls /tmp/ctx/*.whl >/dev/null 2>&1; then \
        index_args="--no-index --find-links /tmp/ctx"; \
    else \
        index_args="$PIP_INDEX_ARGS"; \
    fi; \
    echo "$index_args" > /tmp/pip-index-args; \
    echo "pip index arguments: $index_args"; \
    python -c "import tomllib; p = tomllib.load(open('/tmp/ctx/pyproject.toml', 'rb')); print('\n'.join(p['project']['dependencies']))" > /tmp/requirements.txt; \
    /opt/venv/bin/pip install $index_args "torch==${TORCH_VERSION}" -r /tmp/requirements.txt; \
    /opt/venv/bin/python -c "import torch; assert torch.version.cuda is None, 'CUDA build of torch'"; \
    site=$(/opt/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"); \
    rm -rf "$site"/torch/include "$site"/torch/share/cmake "$site"/pyarrow/include "$site"/pyarrow/tests \
           "$site"/pandas/tests "$site"/numpy/*/tests "$site"/numpy/tests "$site"/matplotlib/tests; \
    find /opt/venv -name '*.a' -delete; \
    find "$site"/pyarrow -maxdepth 1 -name '*.pxd' -delete

# ---------------------------------------------------------------------------- build stage
FROM deps AS build

# The project itself: built from source into a wheel and installed non-editable. Its files
# (package, dist-info, console script) are staged in /overlay so the runtime image gets them as
# a small layer on top of the cached dependency layer.
COPY pyproject.toml README.m[d] /src/
COPY app /src/app
RUN set -eu; \
    /opt/venv/bin/pip install $(cat /tmp/pip-index-args) --no-deps /src; \
    /opt/venv/bin/pip check; \
    /opt/venv/bin/tswatch --help >/dev/null; \
    site=$(/opt/venv/bin/python -c "import sysconfig; print(sysconfig.get_paths()['purelib'])"); \
    mkdir /overlay; \
    tar -C / -cf - opt/venv/bin/tswatch "${site#/}/app" "${site#/}"/tswatch-*.dist-info | tar -C /overlay -xf -

# -------------------------------------------------------------------------- runtime stage
FROM ${PYTHON_IMAGE} AS runtime

RUN groupadd --gid 10001 tswatch \
    && useradd --uid 10001 --gid tswatch --home-dir /srv --no-create-home \
       --shell /usr/sbin/nologin tswatch \
    && mkdir -p /models /srv \
    && chown tswatch:tswatch /models /srv

COPY --from=deps /opt/venv /opt/venv
COPY --from=build /overlay/ /

ENV PATH=/opt/venv/bin:$PATH \
    VIRTUAL_ENV=/opt/venv \
    HOME=/srv \
    MPLCONFIGDIR=/tmp/matplotlib \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    TSWATCH_MODELS_DIR=/models \
    TSWATCH_HOST=0.0.0.0 \
    TSWATCH_PORT=8000

WORKDIR /srv
USER 10001:10001
VOLUME /models
EXPOSE 8000

# Ready = registry reachable and models loaded. The start period covers the demo training
# (TSWATCH_DEMO_ON_EMPTY=true on an empty registry takes 1-2 min on 2 cores).
HEALTHCHECK --interval=10s --timeout=5s --start-period=300s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('TSWATCH_PORT', '8000'), timeout=4)"]

STOPSIGNAL SIGTERM
# Exec form: `tswatch serve` (uvicorn.Server in-process) is PID 1 and gets SIGTERM directly.
CMD ["tswatch", "serve"]
