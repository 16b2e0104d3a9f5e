#!/bin/sh
# The Asterisk container's entrypoint. Writes /etc/asterisk from the project's
# asterisk-conf/ (mounted read-only at $PBX_BRIDGE_CONF_SRC) with the secrets from the
# environment in place of its CHANGE-ME placeholders, then runs the command (Asterisk)
# with umask 027, so recordings and their folders are not world-readable.
# No secret, a placeholder, or characters that would need quoting: refuse to start.
set -eu
SRC=${PBX_BRIDGE_CONF_SRC:-/usr/local/share/pbx-bridge/asterisk-conf}
DST=${PBX_BRIDGE_CONF_DST:-/etc/asterisk}

need() {  # need NAME VALUE
    case "$2" in
        "" | CHANGE-ME)
            echo "asterisk: $1 is not set (docker/compose.yaml passes it from your environment)" >&2
            exit 64 ;;
        *[!A-Za-z0-9._-]*)
            echo "asterisk: $1 may hold only letters, digits, '.', '_' and '-'" >&2
            exit 64 ;;
    esac
}
need PBX_BRIDGE_AMI__SECRET "${PBX_BRIDGE_AMI__SECRET:-}"
need PBX_BRIDGE_ARI__PASSWORD "${PBX_BRIDGE_ARI__PASSWORD:-}"
need PBX_BRIDGE_DEMO_SIP_PASSWORD "${PBX_BRIDGE_DEMO_SIP_PASSWORD:-}"

umask 027
mkdir -p "$DST"
cp "$SRC"/*.conf "$DST"/
# Only the placeholder lines; the values were checked above (no sed metacharacters).
sed -i "s/^secret = CHANGE-ME\$/secret = $PBX_BRIDGE_AMI__SECRET/" "$DST/manager.conf"
sed -i "s/^password = CHANGE-ME\$/password = $PBX_BRIDGE_ARI__PASSWORD/" "$DST/ari.conf"
sed -i "s/^password = CHANGE-ME\$/password = $PBX_BRIDGE_DEMO_SIP_PASSWORD/" "$DST/pjsip.conf"
if grep -lE '^(secret|password) = CHANGE-ME$' "$DST"/*.conf >&2; then
    echo "asterisk: a CHANGE-ME placeholder is left in the files above" >&2
    exit 65
fi
chmod 0640 "$DST"/*.conf
# In the image (not when tests/unit runs this script on the host): Asterisk runs as the
# user asterisk (CMD -U) with the group pbx-bridge (CMD -G, gid 10001, the bridge's), so
# it reads its configuration through its own group, owns its run folder (/run is empty in
# a fresh container), and the recordings volume hands the group down to every recording.
if [ "$(id -u)" = 0 ] && id asterisk >/dev/null 2>&1; then
    chgrp asterisk "$DST"/*.conf
    install -d -o asterisk -g asterisk -m 0750 /var/run/asterisk
    chown asterisk:pbx-bridge /var/spool/asterisk/monitor
    chmod 2750 /var/spool/asterisk/monitor
fi
exec "$@"
