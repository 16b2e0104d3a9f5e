# pbx-bridge itself: only the installed package (a wheel built in the first stage) and
# its dependencies, in a virtual environment, run by the user pbx-bridge (uid/gid 10001;
# the Asterisk image gives that group read access to the recordings). Settings come from
# the environment (PBX_BRIDGE_<SECTION>__<KEY>; no config file in the image, no secret).
# Build from the repository root:
#   docker build -f docker/bridge.Dockerfile -t pbx-bridge .
# BASE: the tests build from a local Debian sid base (no registry reachable there).
ARG BASE=docker.io/library/debian:sid-slim

FROM ${BASE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3 python3-venv ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY pyproject.toml README.md /src/
COPY pbx_bridge /src/pbx_bridge
# ca-bundle: an optional build secret, the CA bundle pip must trust behind a TLS-inspecting
# proxy (`--secret id=ca-bundle,src=/etc/ssl/certs/ca-certificates.crt`); never in the image.
RUN --mount=type=secret,id=ca-bundle \
    if [ -f /run/secrets/ca-bundle ]; then export PIP_CERT=/run/secrets/ca-bundle; fi \
 && python3 -m venv /opt/build \
 && /opt/build/bin/pip install --no-cache-dir --disable-pip-version-check -q build \
 && /opt/build/bin/python -m build --wheel --outdir /wheels /src \
 && python3 -m venv --without-pip /opt/pbx-bridge \
 && /opt/build/bin/pip --python /opt/pbx-bridge/bin/python install --no-cache-dir \
      --disable-pip-version-check -q /wheels/pbx_bridge-*.whl

FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends python3 passwd \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 pbx-bridge \
 && useradd --uid 10001 --gid 10001 --no-create-home --home-dir /data \
      --shell /usr/sbin/nologin pbx-bridge \
 && install -d -o pbx-bridge -g pbx-bridge -m 0750 /data
COPY --from=build /opt/pbx-bridge /opt/pbx-bridge
COPY docker/bridge-entrypoint.sh /usr/local/bin/pbx-bridge-entrypoint
ENV PATH=/opt/pbx-bridge/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PBX_BRIDGE_DATABASE__URL=sqlite:////data/pbx_bridge.sqlite3
USER pbx-bridge
WORKDIR /data
VOLUME ["/data"]
EXPOSE 8080
# Ready = AMI logged in and the database reachable (docs/contract.md, /readyz).
HEALTHCHECK --interval=10s --timeout=5s --start-period=20s --retries=3 \
  CMD ["python3", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/readyz' % os.environ.get('PBX_BRIDGE_HTTP__PORT', '8080'), timeout=4)"]
ENTRYPOINT ["/usr/local/bin/pbx-bridge-entrypoint"]
CMD ["pbx-bridge", "serve"]
