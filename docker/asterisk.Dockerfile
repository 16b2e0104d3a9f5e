# Asterisk from the same Debian sid packages as the development sandbox
# (devtools/sandbox.py ROOT_PACKAGES), configured by the project's asterisk-conf/,
# which compose.yaml mounts read-only; the entrypoint writes /etc/asterisk from it with
# the secrets of the environment and runs Asterisk with umask 027.
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en-gsm \
 && rm -rf /var/lib/apt/lists/*
COPY docker/asterisk-entrypoint.sh /usr/local/bin/pbx-bridge-asterisk-entrypoint
EXPOSE 5038 8088 5060/udp
ENTRYPOINT ["/usr/local/bin/pbx-bridge-asterisk-entrypoint"]
CMD ["asterisk", "-f", "-n", "-C", "/etc/asterisk/asterisk.conf"]
