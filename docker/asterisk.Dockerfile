# Asterisk from the same Debian sid packages as the development sandbox
# (pbx_bridge/sandbox.py ROOT_PACKAGES), configured by the project's asterisk-conf/,
# which compose.yaml mounts at /etc/asterisk.
FROM debian:sid-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      asterisk asterisk-modules asterisk-core-sounds-en-gsm \
 && rm -rf /var/lib/apt/lists/*
EXPOSE 5038 8088 5060/udp
CMD ["asterisk", "-f", "-n", "-C", "/etc/asterisk/asterisk.conf"]
