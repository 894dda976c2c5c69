#!/usr/bin/env bash
# Debian packages the operations tests use (tests/ops): chromium (the console in a real
# headless browser), prometheus + promtool (rules checked and seen firing), docker-compose
# (`docker-compose config` on deploy/compose). Idempotent: installs only what is missing, and
# only as root with apt-get; otherwise says what is missing (those tests then skip, naming it).
set -euo pipefail
want=()
command -v chromium >/dev/null 2>&1 || want+=(chromium)
command -v promtool >/dev/null 2>&1 || want+=(prometheus)
command -v docker-compose >/dev/null 2>&1 || want+=(docker-compose)
[ ${#want[@]} -eq 0 ] && exit 0
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
  echo "installing Debian packages for the operations tests: ${want[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  if ! apt-get install -y -q --no-install-recommends "${want[@]}" >&2; then
    apt-get update -q >&2
    apt-get install -y -q --no-install-recommends "${want[@]}" >&2 || \
      echo "could not install ${want[*]}: the tests needing them skip" >&2
  fi
  # Debian starts a packaged prometheus where systemd runs; the tests start their own
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q prometheus 2>/dev/null; then
    systemctl disable --now prometheus >&2 || true
  fi
else
  echo "not installed: ${want[*]} (root + apt-get installs them); the tests needing them skip" >&2
fi
