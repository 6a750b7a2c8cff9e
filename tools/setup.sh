#!/usr/bin/env bash
# Set up causal_nb on a fresh Debian/Ubuntu machine: system packages, a virtual environment, the package.
#   bash tools/setup.sh          runtime: dataset-fashion-mnist, .venv with torch + causal_nb
#   bash tools/setup.sh --dev    also the developer/test tools (nbdev, pytest, peers) and chromium for browser tests
# Environment: PYTHON (default python3, 3.10+), VENV (default .venv).
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0; [ "${1:-}" = "--dev" ] && dev=1
PY=${PYTHON:-python3}; VENV=${VENV:-.venv}

pkgs="dataset-fashion-mnist"; [ $dev = 1 ] && pkgs="$pkgs chromium"
if command -v apt-get >/dev/null 2>&1; then
  missing=$(for p in $pkgs; do dpkg -s "$p" >/dev/null 2>&1 || echo "$p"; done)
  if [ -n "$missing" ]; then
    SUDO=""; [ "$(id -u)" != 0 ] && SUDO="sudo"
    echo "[setup] apt-get install $missing"
    $SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $missing >/dev/null \
      || echo "[setup] could not install $missing with apt-get; Fashion-MNIST will come from \$CAUSAL_NB_FASHION_MNIST or a download, else digits"
  fi
else
  echo "[setup] no apt-get: install Fashion-MNIST yourself (see README) or let causal_nb download it"
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV with $($PY --version)"
  $PY -m venv "$VENV" || { echo "[setup] '$PY -m venv' failed: on Debian/Ubuntu install python3-venv"; exit 1; }
fi
pip() { "$VENV/bin/python" -m pip "$@"; }
pip install -q --upgrade pip setuptools wheel 2>&1 | grep -v "is ignored" || true
echo "[setup] installing torch and torchvision"
pip install -q "torch==2.14.1" "torchvision==0.29.1" 2>&1 | grep -v "is ignored" || true
"$VENV/bin/python" -c "import torch, torchvision" || { echo "[setup] torch did not install"; exit 1; }
if [ $dev = 1 ]; then target=".[dev]"; else target="."; fi
echo "[setup] installing causal_nb ($target)"
pip install -q -e "$target" 2>&1 | grep -v -E "is ignored|BuildBackendWarning|Editable installation|^\s*!!|^\s*\*+|careful with folders|may take precedence|wheel_obj|^\s*$" || true
"$VENV/bin/python" -c "import causal_nb, sys; print('[setup] causal_nb', causal_nb.__version__, 'ready in', sys.prefix)"
