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
  # Only the chapters that have `slow` cells (the others ran whole in the fast pass), one at a time, so that what ran and
  # what did not is known. With SLOW_DEADLINE (epoch seconds) a chapter that cannot start, or is stopped, before it is
  # reported on a SKIPPED line and the pass exits 3: out of time is never counted as passed.
  mapfile -t slow_nbs < <(grep -l '"#| slow' nbs/*.ipynb)
  echo "[test] slow pass: nbdev_test --flags slow on ${#slow_nbs[@]} chapters with slow cells: ${slow_nbs[*]}"
  deadline=${SLOW_DEADLINE:-0}; passed=(); skipped=()
  for nb in "${slow_nbs[@]}"; do
    left=$(( deadline > 0 ? deadline - $(date +%s) : 86400 ))
    if [ "$left" -lt 60 ]; then skipped+=("$nb (not started)"); continue; fi
    t0=$(date +%s); rc=0
    timeout "$left" nbdev_test --flags slow --path "$nb" || rc=$?
    if [ "$rc" -eq 124 ]; then skipped+=("$nb (stopped after $(( $(date +%s) - t0 ))s)")
    elif [ "$rc" -ne 0 ]; then echo "[test] slow pass FAILED: $nb"; exit "$rc"
    else passed+=("$nb ($(( $(date +%s) - t0 ))s)"); fi
  done
  echo "[test] slow pass: passed ${#passed[@]} of ${#slow_nbs[@]}: ${passed[*]:-none}"
  if [ "${#skipped[@]}" -gt 0 ]; then
    echo "[test] SKIPPED, not run: out of time: ${skipped[*]}"; exit 3
  fi
  exit 0
fi
echo "[test] chapters and front page: nbdev_test's rules, outputs kept in _build/executed for the docs site"
python tools/run_chapters.py --out _build/executed
echo "[test] pytest tests/"
python -m pytest tests/ -q -p no:cacheprovider
echo "[test] pytest -m slow: the wheel, installed in a fresh venv, runs every copied notebook"
python -m pytest tests/ -q -p no:cacheprovider -m slow
