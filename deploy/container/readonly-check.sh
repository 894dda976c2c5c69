#!/bin/bash
# Runs `geosentry run` the way the container is meant to run (README "Security"): read-only root
# filesystem, a tmpfs on /tmp only, an unprivileged uid/gid 10001 with no home, no capabilities;
# without a container runtime (a private mount namespace and chroot: needs root and unshare).
# It replays ObsPy's BW.UH* recordings and exits 0 when the run exited 0, wrote its alerts to
# /tmp, and a write outside /tmp failed.
#   deploy/container/readonly-check.sh [VENV]      (default $GEOSENTRY_VENV or .venv)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
VENV=$(cd "${1:-${GEOSENTRY_VENV:-$ROOT/.venv}}" && pwd)
WORK=$(mktemp -d /var/tmp/geosentry-ro.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
mkdir "$WORK/data" "$WORK/root"
"$VENV/bin/python" -c "from geosentry.stream.testing import interleaved
open('$WORK/data/demo.mseed', 'wb').write(b''.join(interleaved()))"
chmod -R a+rX "$WORK/data"
unshare --mount --propagation private bash -s "$WORK" "$VENV" <<'INNER'
set -euo pipefail
WORK=$1 VENV=$2 R=$1/root
mount --bind / "$R" && mount -o remount,bind,ro "$R"
mount -t proc proc "$R/proc"
mount --rbind /dev "$R/dev"
mount -t tmpfs -o size=64m,mode=1777 tmpfs "$R/tmp"
mount --bind "$WORK/data" "$R/mnt" && mount -o remount,bind,ro "$R/mnt"
# a development interpreter under /root (pyenv) is out of uid 10001's reach: expose just it
PYREAL=$(readlink -f "$VENV/bin/python")
if [[ $PYREAL == /root/* ]]; then
  PYHOME=/root/${PYREAL#/root/}; PYHOME=${PYHOME%%/versions/*}
  mount -t tmpfs -o size=1m,mode=0755 tmpfs "$R/root"
  mkdir -p "$R$PYHOME" && mount --bind "$PYHOME" "$R$PYHOME" && mount -o remount,bind,ro "$R$PYHOME"
fi
as_service() {
  chroot "$R" setpriv --reuid 10001 --regid 10001 --clear-groups --inh-caps=-all \
    env -i PATH=/usr/bin:/bin HOME=/nonexistent PYTHONDONTWRITEBYTECODE=1 "$@"
}
if as_service sh -c 'echo x > /etc/geosentry-ro-probe' 2>/dev/null; then
  echo "FAIL: the root filesystem is writable" >&2; exit 1
fi
status=0
as_service "$VENV/bin/geosentry" run --source /mnt/demo.mseed --sink jsonl:/tmp/alerts.jsonl \
  >"$WORK/stdout" 2>"$WORK/stderr" || status=$?
alerts=$(wc -l < "$R/tmp/alerts.jsonl" 2>/dev/null || echo 0)
echo "geosentry run: exit $status, $alerts alerts in /tmp/alerts.jsonl (tmpfs), stderr:"
sed 's/^/  | /' "$WORK/stderr"
[ "$status" = 0 ] && [ "$alerts" -gt 0 ]
INNER
