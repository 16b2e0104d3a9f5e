# pbx-bridge itself. Build from the repository root:
#   docker build -f docker/bridge.Dockerfile -t pbx-bridge .
FROM python:3.12-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY pbx_bridge ./pbx_bridge
COPY config ./config
RUN pip install --no-cache-dir .
ENV PBX_BRIDGE_DATABASE__URL=sqlite:////data/pbx_bridge.sqlite3
# `serve` refuses an unmigrated database: the container applies the migrations first.
ENTRYPOINT ["sh", "-c", "pbx-bridge db upgrade --config /app/config/pbx_bridge.example.toml && exec \"$@\"", "--"]
VOLUME ["/data"]
EXPOSE 8080
CMD ["pbx-bridge", "serve", "--config", "/app/config/pbx_bridge.example.toml"]
