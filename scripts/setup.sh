#!/usr/bin/env bash
# Set up swe-srl on this machine, then run COMMAND (if given) with the environment's bin first on PATH.
#
#   bash scripts/setup.sh swesrl demo --out demo-out     # set up, then the main job
#   bash scripts/setup.sh python3 -m pytest -q            # set up (a no-op the second time), then the tests
#
# System packages (bubblewrap, git; more with SWESRL_SYSTEM_PACKAGES="...") are installed only when
# missing: with apt-get directly as root, through sudo otherwise. Python packages go into $PYTHON if set
# (CI), else the active virtual environment, else ./.venv (made here). Re-running skips what is done.
set -euo pipefail
cd "$(dirname "$0")/.."
say() { echo "[setup] $*" >&2; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else say "need root for: $* (not root, and no sudo)"; exit 1
  fi
}

need=()
for pkg in bubblewrap git ${SWESRL_SYSTEM_PACKAGES:-}; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ -z "${PYTHON:-}" ] && [ -z "${VIRTUAL_ENV:-}" ] && [ ! -x .venv/bin/python ] \
  && ! python3 -c 'import ensurepip' >/dev/null 2>&1; then
  need+=("python3-venv")
fi
if [ "${#need[@]}" -gt 0 ]; then
  if command -v apt-get >/dev/null 2>&1; then
    say "installing system packages: ${need[*]}"
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${need[@]}"
  else
    say "please install: ${need[*]} (no apt-get here)"; exit 1
  fi
fi

if [ -n "${PYTHON:-}" ]; then py="$PYTHON"
elif [ -n "${VIRTUAL_ENV:-}" ]; then py="$VIRTUAL_ENV/bin/python"
else
  [ -x .venv/bin/python ] || { say "creating .venv"; python3 -m venv .venv; }
  py="$PWD/.venv/bin/python"
fi
py="$(command -v "$py")"
bindir="$(dirname "$("$py" -c 'import sys; print(sys.executable)')")"

stamp="$("$py" -c 'import sys; print(sys.prefix)')/.swesrl-setup"
want="$(cat pyproject.toml | sha256sum | cut -c1-16) $PWD"
if [ "$(cat "$stamp" 2>/dev/null || true)" != "$want" ]; then
  say "installing Python packages into $("$py" -c 'import sys; print(sys.prefix)')"
  # TORCH_PIP_ARGS, e.g. "--index-url https://download.pytorch.org/whl/cpu", picks a CPU-only wheel.
  "$py" -m pip install -q "torch==2.13.0" ${TORCH_PIP_ARGS:-}
  "$py" -m pip install -q -e ".[dev,serving]"
  echo "$want" > "$stamp"
fi

if [ "$#" -gt 0 ]; then
  export PATH="$bindir:$PATH"
  exec "$@"
fi
say "done; commands are in $bindir"
