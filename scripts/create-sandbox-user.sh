#!/usr/bin/env bash
# Create the system user that runs users' model code (validation children, local training workers) when
# Hopper runs as root: no login shell, no home, no supplementary groups, nothing of the server's readable.
# The interpreter need not be readable by it in place (this machine keeps it under /root, mode 0700): the
# sandbox binds it into a filesystem view of its own. Idempotent; needs root.
set -euo pipefail
user="${HOPPER_SANDBOX_USER:-hopper-sandbox}"
if [ "$(id -u)" -ne 0 ]; then
  echo "sandbox-user: need root to create $user; run: sudo $0" >&2
  exit 1
fi
if id -u "$user" >/dev/null 2>&1; then
  echo "sandbox-user: $user exists (uid $(id -u "$user"))"
  exit 0
fi
useradd --system --user-group --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin "$user"
echo "sandbox-user: created $user (uid $(id -u "$user"))"
