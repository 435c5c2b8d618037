#!/usr/bin/env bash
# Install what the test suite needs and pip cannot provide: a PostgreSQL server (the store tests
# start their own on a loopback port), Java 17 (Spark), Chromium and chromedriver (browser tests),
# and the unprivileged system user that runs uploaded code (scripts/create-sandbox-user.sh).
# Idempotent: installs only what is missing. Fails loudly when it cannot install.
set -euo pipefail
if [ "$(id -u)" -eq 0 ]; then
  bash "$(dirname "$0")/create-sandbox-user.sh"
fi
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
java -version 2>&1 | grep -q 'version "\(1[7-9]\|2[0-9]\)' || missing+=(openjdk-17-jre-headless)
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
command -v wrk >/dev/null 2>&1 || missing+=(wrk)  # the API benchmark's load generator (a C program: cheap clients)
if [ ${#missing[@]} -eq 0 ]; then
  echo "test-deps: PostgreSQL, Java 17, Chromium, chromedriver and wrk are present"
  exit 0
fi
echo "test-deps: installing ${missing[*]}"
if [ "$(id -u)" -ne 0 ]; then
  echo "test-deps: need root to apt-get install ${missing[*]}; run: sudo $0" >&2
  exit 1
fi
apt-get update -q
DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${missing[@]}"
