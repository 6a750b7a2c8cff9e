"""Execute the chapters (and index.ipynb) the way `nbdev_test` does, and keep their outputs for the documentation site.

Usage: python tools/run_chapters.py [--out _build/executed] [--workers N] [NOTEBOOK ...]

nbdev_test runs every cell except those flagged with a test flag (`#| slow`: the full tutorial settings) and those marked
`#| eval: false`, in the notebook's own folder, with IN_TEST=1, and throws the outputs away. This script applies exactly
the same rules (it uses nbdev's own notebook processor, flags and executor, execnb), but writes each executed notebook,
outputs included, under `--out` in the repository's layout (`index.ipynb`, `nbs/00_core.ipynb`, ...), so the site shows
the figures, tables and verdicts the prose talks about. A notebook that fails is still written up to the failing cell,
its traceback as an error output, and the exit status is 1 with the failing notebooks named.
Cells flagged `slow` are kept in the page without outputs; the site says so (see tools/build_docs.py). As Jupyter's
inline backend does, the figures a cell leaves open are shown under it (unless it displayed them itself) and closed.
"""
from __future__ import annotations
import argparse, base64, io, os, sys, time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def execute(fn: Path, out: Path, skip_flags: set[str]) -> tuple[bool, float, str]:
    "Run one notebook with nbdev_test's rules; write it with outputs to `out`. Returns (passed, seconds, error text)."
    from execnb.nbio import write_nb
    from execnb.shell import CaptureShell
    from fastcore.xtras import working_directory
    from nbdev.frontmatter import FrontmatterProc
    from nbdev.process import NBProcessor
    os.environ['IN_TEST'] = '1'
    if str(ROOT) not in sys.path: sys.path.insert(0, str(ROOT))
    fm = getattr(NBProcessor(fn, procs=FrontmatterProc, process=True).nb, 'frontmatter_', {}) or {}
    # the title cell stays (FrontmatterProc would move it to metadata) and so do the `#|` lines (tools/build_docs.py reads them)
    nb = NBProcessor(fn, procs=[], process=True, rm_directives=False).nb
    skip = str(fm.get('skip_exec', '')).lower() in ('true', '1', 'yes')  # nbdev_test does not run such a notebook

    def no_eval(cell):  # the same predicate as nbdev.test.test_nb
        if cell.cell_type != 'code': return True
        if 'nbdev_export' + '(' in cell.source: return True
        direc = getattr(cell, 'directives_', {}) or {}
        if direc.get('eval:', [''])[0].lower() == 'false': return True
        return bool(skip_flags & direc.keys())

    def show_figures(cell):  # what Jupyter's inline backend does after each cell: show the cell's open figures, then close them
        plt = sys.modules.get('matplotlib.pyplot')
        if plt is None or not plt.get_fignums(): return
        shown = any('image/png' in (o.get('data') or {}) for o in cell.get('outputs', []))
        for num in ([] if shown else plt.get_fignums()):
            buf = io.BytesIO(); fig = plt.figure(num); fig.savefig(buf, format='png', bbox_inches='tight')
            cell.setdefault('outputs', []).append({'output_type': 'display_data', 'metadata': {},
                'data': {'image/png': base64.b64encode(buf.getvalue()).decode(), 'text/plain': f'<Figure {num}>'}})
        plt.close('all')

    start, err = time.time(), ''
    shell = CaptureShell(fn)
    try:
        if not skip:
            with working_directory(fn.parent): shell.run_all(nb, exc_stop=True, preproc=no_eval, postproc=show_figures)
        ok = True
    except Exception:
        ok, err = False, shell.prettytb(fname=fn)
    out.parent.mkdir(parents=True, exist_ok=True)
    for c in nb.cells:  # nbdev's processor adds private attributes; keep what nbformat knows
        for k in [k for k in c if k.endswith('_')]: c.pop(k)
    write_nb(nb, out)
    return ok, time.time() - start, err


def _run(args):
    fn, out, flags = args
    return execute(Path(fn), Path(out), set(flags))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('notebooks', nargs='*', help='notebooks to run (default: index.ipynb and nbs/*.ipynb)')
    p.add_argument('--out', default=str(ROOT / '_build' / 'executed'), help='folder for the executed copies')
    p.add_argument('--workers', type=int, default=None, help='notebooks run at once (default: the number of cores, at most 8)')
    a = p.parse_args(argv)
    from fastcore.parallel import parallel
    from nbdev.config import get_config
    flags = set(get_config().tst_flags.split())
    files = [Path(f).resolve() for f in a.notebooks] or [ROOT / 'index.ipynb', *sorted((ROOT / 'nbs').glob('*.ipynb'))]
    for f in files:
        if not f.is_file(): raise SystemExit(f"run_chapters: notebook {f} does not exist")
    jobs = [(str(f), str(Path(a.out) / f.relative_to(ROOT)), sorted(flags)) for f in files]
    n = a.workers if a.workers is not None else min(os.cpu_count() or 1, 8)
    res = parallel(_run, jobs, n_workers=n if len(jobs) > 1 else 0, pause=0.01)
    failed = [(f, e) for f, (ok, _, e) in zip(files, res) if not ok]
    for f, (ok, t, _) in sorted(zip(files, res), key=lambda o: -o[1][1]):
        print(f"{f.relative_to(ROOT)}: {int(t)} secs{'' if ok else '  FAILED'}")
    for f, e in failed: sys.stderr.write(f"\n{f.relative_to(ROOT)} failed:\n{e}\n")
    print(f"executed {len(files) - len(failed)} of {len(files)} notebooks into {a.out}")
    return 1 if failed else 0


if __name__ == '__main__':
    # run as a module so the worker processes can find `_run` by name
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import run_chapters
    sys.exit(run_chapters.main())
