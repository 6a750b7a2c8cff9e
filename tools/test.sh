#!/usr/bin/env bash
# Run every test: each chapter and index.ipynb under nbdev_test (cells flagged `slow` skipped), then pytest, then the wheel test.
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
echo "[test] chapters: nbdev_test"
nbdev_test --timing
echo "[test] front page: nbdev_test --path index.ipynb"
nbdev_test --path index.ipynb --timing
echo "[test] pytest tests/"
python -m pytest tests/ -q -p no:cacheprovider
echo "[test] pytest -m slow: the wheel, installed in a fresh venv, runs every copied notebook"
python -m pytest tests/ -q -p no:cacheprovider -m slow
