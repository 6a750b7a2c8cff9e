#!/usr/bin/env bash
# Run every test: each chapter and index.ipynb with nbdev_test's rules (cells flagged `slow` skipped; tools/run_chapters.py
# keeps the outputs for the documentation site), then pytest (the site is built and opened in Chromium there), then the wheel test.
#   bash tools/test.sh            the full suite, the wheel test (pytest -m slow: a wheel installed in a fresh venv runs
#                                 every notebook) included
#   bash tools/test.sh --slow     only the slow pass: the chapters with their `slow` cells (the full tutorial settings)
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/${VENV:-.venv}/bin:$PATH" MPLBACKEND=Agg PYTHONHASHSEED=0
# nbdev_test runs one notebook per core; one torch thread each avoids oversubscribing the cores
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
if [ "${1:-}" = "--slow" ]; then
  echo "[test] slow pass: nbdev_test --flags slow"
  exec nbdev_test --flags slow --timing
fi
echo "[test] chapters and front page: nbdev_test's rules, outputs kept in _build/executed for the docs site"
python tools/run_chapters.py --out _build/executed
echo "[test] pytest tests/"
python -m pytest tests/ -q -p no:cacheprovider
echo "[test] pytest -m slow: the wheel, installed in a fresh venv, runs every copied notebook"
python -m pytest tests/ -q -p no:cacheprovider -m slow
