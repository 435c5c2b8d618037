#!/usr/bin/env bash
# Build .venv-peers: Ray Tune for bench/search_efficiency.py and bench/peers.py (and their smoke tests).
# Ray Tune 2.60 needs pyarrow>=17, Hopper pins pyarrow 14.0.2, so Ray cannot join constraints.txt. This venv
# sees the project venv's packages through a .pth (the same TensorFlow, Keras, Optuna, KerasTuner and Hopper
# itself) and holds only what Ray adds or needs newer, pinned in bench/peers-constraints.txt; its own
# site-packages come first on sys.path, so its pyarrow shadows the project's.
# Idempotent: does nothing when the stamp is newer than both pin files. Usage: bash bench/peers_env.sh [PYTHON]
set -euo pipefail
cd "$(dirname "$0")/.."
python="${1:-python3.11}"
venv=.venv-peers
stamp=$venv/.peers-installed
base=.venv/lib/python3.11/site-packages
link_project_venv() {
  # addsitedir (not a bare path) so that the project venv's own .pth files run too: the editable install of
  # Hopper and, in a worktree, the layer beneath it. Written on every call: a copied or moved checkout (or a
  # removed worktree) would otherwise leave .venv-peers reading another checkout's packages, or none.
  local site
  site=$($venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
  echo "import site; site.addsitedir('$(cd "$base" && pwd)')" > "$site/_hopper_project_venv.pth"
}
if [ -f "$stamp" ] && [ "$stamp" -nt constraints.txt ] && [ "$stamp" -nt bench/peers-constraints.txt ]; then
  link_project_venv
  exit 0
fi
if [ ! -d "$base" ]; then
  echo "peers_env: $base is missing; build the project venv first (make)" >&2
  exit 1
fi
test -x $venv/bin/python || "$python" -m venv $venv
link_project_venv
combined=$(mktemp)
trap 'rm -f "$combined"' EXIT
# The project's pins, less the ones Ray moves, then Ray's.
pinned=$(grep -E '^[A-Za-z0-9_.-]+(\[[^]]*\])?==' bench/peers-constraints.txt | sed -E 's/(\[[^]]*\])?==.*//' | tr 'A-Z_' 'a-z-')
grep -viE "^($(echo "$pinned" | paste -sd'|'))==" constraints.txt > "$combined" || true
grep -E '==' bench/peers-constraints.txt | sed -E 's/\[[^]]*\]//' >> "$combined"
$venv/bin/python -m pip install --quiet --disable-pip-version-check -c "$combined" "ray[tune]" pyarrow
$venv/bin/python -c "import ray, ray.tune, pyarrow, tensorflow, keras, optuna, keras_tuner, hopper.engine; print('peers_env: ray', ray.__version__, 'pyarrow', pyarrow.__version__, 'tensorflow', tensorflow.__version__)"
touch "$stamp"
