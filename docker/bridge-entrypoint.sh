#!/bin/sh
# The bridge container's entrypoint: apply the database migrations (`serve` refuses an
# outdated schema), then run the command. The bridge and the one-shot that loads the
# directory start together on the same /data: flock lets one migrate at a time.
set -eu
flock /data/.migrate.lock pbx-bridge db upgrade
exec "$@"
