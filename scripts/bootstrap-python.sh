#!/usr/bin/env bash
# Make sure the interpreter the Makefile asks for (python3.11) exists with venv support.
# On a fresh Debian machine it installs python3.11 and python3.11-venv with apt-get.
set -euo pipefail
python="${1:-python3.11}"
if command -v "$python" >/dev/null 2>&1 && "$python" -c "import venv, ensurepip" >/dev/null 2>&1; then
  exit 0
fi
echo "bootstrap: $python with venv is missing; installing it with apt-get" >&2
if [ "$(id -u)" -ne 0 ]; then
  echo "bootstrap: run as root, or install python3.11 and python3.11-venv yourself" >&2
  exit 1
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q python3.11 python3.11-venv
