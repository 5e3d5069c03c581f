#!/usr/bin/env bash
# The test command (README, `.ci/run`): what the tests need, a venv, the style and
# layer checks, then the whole suite. Pass pytest options after it: `bash tests/run.sh -m "not slow"`.
set -euo pipefail
cd "$(dirname "$0")/.."
export PREFECT_SERVER_ANALYTICS_ENABLED=false DO_NOT_TRACK=1

# headless Chromium renders the HTML report in its test; PostgreSQL keeps the Prefect
# server's database in the deployment test (deploy/postgres.sh). Debian packages.
missing=()
command -v chromium >/dev/null || missing+=(chromium)
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo="sudo"
  echo "tests: installing ${missing[*]} (apt-get)" >&2
  $sudo apt-get install -y --no-install-recommends "${missing[@]}" \
    || ($sudo apt-get update && $sudo apt-get install -y --no-install-recommends "${missing[@]}") \
    || { echo "tests: could not install ${missing[*]}; install them (Debian: apt-get install ${missing[*]}) and rerun" >&2; exit 1; }
fi

# the venv takes ~7 GB (CUDA build of torch from the local wheels, DEVELOPERS.md): say so up front
free_gb=$(df -Pk . | awk 'NR==2 {print int($4 / 1048576)}')
if [ ! -d .venv ] && [ "$free_gb" -lt 10 ]; then
  echo "tests: only ${free_gb} GB free here; the venv needs ~7 GB and the tests ~2 GB: free disk space" >&2
  exit 1
fi
python3 -m venv .venv && . .venv/bin/activate
pip install -e '.[test]'
pip uninstall -y argparse  # nnU-Net's dependencies pull in the 2015 backport; it breaks Prefect's server (README)
ruff format --check .
ruff check .
lint-imports
python -m pytest -q "$@"
