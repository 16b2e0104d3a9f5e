# Asterisk from the same Debian sid packages as the development sandbox
# (devtools/sandbox.py ROOT_PACKAGES), configured by the project's asterisk-conf/,
# which compose.yaml mounts read-only; the entrypoint writes /etc/asterisk from it with
# the secrets of the environment and runs Asterisk as the `asterisk` user with umask 027
# and the group `pbx-bridge` (gid 10001, the bridge image's user), so the bridge reads
# the recordings on the shared volume and nobody else does.
# BASE: the tests build from a local Debian sid base (no registry reachable there).
ARG BASE=docker.io/library/debian:sid-slim
FROM ${BASE}
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en-gsm asterisk-moh-opsound-gsm \
 && rm -rf /var/lib/apt/lists/* \
 && groupadd --gid 10001 pbx-bridge
COPY docker/asterisk-entrypoint.sh /usr/local/bin/pbx-bridge-asterisk-entrypoint
# Where MixMonitor writes (asterisk.conf astspooldir + /monitor): the shared volume.
VOLUME ["/var/spool/asterisk/monitor"]
EXPOSE 5038 8088 5060/udp
ENTRYPOINT ["/usr/local/bin/pbx-bridge-asterisk-entrypoint"]
CMD ["asterisk", "-f", "-n", "-U", "asterisk", "-G", "pbx-bridge", "-C", "/etc/asterisk/asterisk.conf"]
