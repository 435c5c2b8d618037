#!/usr/bin/env bash
# A scheduled batch job (e.g. from cron: `0 2 * * * /path/to/nightly_batch.sh`):
# submit tonight's search and let the long-running `hopper scheduler` pick it up.
set -euo pipefail
cd "$(dirname "$0")/../.."
.venv/bin/hopper submit examples/specs/digits_tpe.yaml
