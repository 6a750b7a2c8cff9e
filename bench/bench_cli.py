"""Time the README's first command and the command line's start-up: `--help` of every subcommand, and
`causal-nb report` from a cold cache and again from the warm one (issues #24 and #27).

    python bench/bench_cli.py [--full] [--with-setup] [--with-test-command] [--tests NB_OR_TEST ...] [--repeat 5]

Each command runs as a user would type it, in a subprocess of the installed `causal-nb` (torch picks its own
thread count; the machine's load average is recorded before each run). `--with-setup` also times the README's
whole first command, `bash tools/setup.sh && .venv/bin/causal-nb report --out report`, in a fresh clone of this
checkout's HEAD (a new virtual environment: several minutes and ~6 GB of disk). `--tests` times the given parts of
the README's second command (`nbs/XX.ipynb` under nbdev_test, `tests/test_X.py` under pytest), for an estimate
when the whole suite cannot run on a shared machine; `--with-test-command` times the whole of it in a fresh clone
(`bash tools/setup.sh --dev && bash tools/test.sh`, with the user's model cache). Writes bench/results/cli.json.
Heavy imports live inside the functions: importing this module (render.py does, for `markdown`) does nothing.
"""
from __future__ import annotations
import argparse, json, os, re, shutil, statistics, subprocess, sys, tempfile, time
from pathlib import Path

import _common as C

NAME = 'cli'
DEVICES = ('cpu',)
COMMAND = 'python bench/bench_cli.py [--with-setup] [--tests nbs/14_cli.ipynb tests/test_cli.py]'
SUBCOMMANDS = ('report', 'reproduce', 'bench', 'notebooks', 'lab', 'app')
HELP_TARGET, COLD_TARGET, WARM_TARGET = 1.0, 300.0, 60.0     # seconds: --help "well under a second"; ≤ 5 min cold, ≤ 1 min warm
ROOT = C.BENCH.parent


def _cli() -> str:
    return str(Path(sys.executable).with_name('causal-nb'))


def _run(cmd, env=None, cwd=None) -> tuple[float, subprocess.CompletedProcess]:
    "Seconds `cmd` took, and its result."
    t = time.perf_counter()
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=cwd)
    return time.perf_counter() - t, r


def _user_env(**extra) -> dict:
    "The environment a user's shell would give: no test or thread settings of ours."
    env = {k: v for k, v in os.environ.items() if k not in ('OMP_NUM_THREADS', 'CAUSAL_NB_PROGRESS', 'IN_TEST')}
    return {**env, **extra}


def measure_help(repeat: int) -> dict:
    "Median seconds of `causal-nb SUB --help` per subcommand, and whether torch was imported on the way."
    out = {}
    for sub in SUBCOMMANDS:
        secs = [_run([_cli(), sub, '--help'], _user_env())[0] for _ in range(repeat)]
        _, r = _run([_cli(), sub, '--help'], _user_env(PYTHONPROFILEIMPORTTIME='1'))
        mods = [l.split('|') for l in r.stderr.splitlines() if l.startswith('import time:')]
        cli_us = next((int(m[1]) for m in mods if m[2].strip() == 'causal_nb.cli'), None)
        out[sub] = {'median_s': statistics.median(secs), 'runs': [round(s, 3) for s in secs],
                    'torch_imported': any(m[2].strip() == 'torch' for m in mods), 'cli_import_s': cli_us and cli_us / 1e6}
        print(sub, out[sub], flush=True)
    return out


def measure_report(setting: str, cli: str, cwd: Path, cache: Path, label: str) -> dict:
    "One `causal-nb report` run (the README's command, plus --full for the full setting) with the given cache folder."
    out = cwd / f'report-{label}'
    cmd = [cli, 'report', '--out', str(out)] + (['--full'] if setting == 'full' else [])
    load = round(os.getloadavg()[0], 2)
    secs, r = _run(cmd, _user_env(CAUSAL_NB_CACHE=str(cache)), cwd=cwd)
    row = {'setting': setting, 'cache': label, 'seconds': round(secs, 1), 'exit': r.returncode, 'load_average': load,
           'from_cache': 'are in the cache' in r.stdout}
    res = out / 'results.json'
    if res.exists():
        j = json.loads(res.read_text())
        row['sections'] = {v.get('section', k): v.get('seconds') for k, v in j['sections'].items()}
        row['data'] = j['meta'].get('data'); row['device'] = j['meta'].get('device')
    if r.returncode: row['stderr'] = r.stderr[-1500:]
    print(label, {k: v for k, v in row.items() if k != 'sections'}, flush=True)
    return row


def measure_setup(work: Path) -> dict:
    "The README's whole first command in a fresh clone of HEAD: setup.sh (a new .venv), then the report from a cold cache."
    clone = work / 'clone'
    subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
    env = {'HOME': os.environ.get('HOME', '/root'), 'PATH': '/usr/local/bin:/usr/bin:/bin', 'CAUSAL_NB_CACHE': str(work / 'cache')}
    load = round(os.getloadavg()[0], 2)
    t = time.perf_counter()
    r = subprocess.run(['bash', 'tools/setup.sh'], capture_output=True, text=True, cwd=clone, env=env)
    setup_s = time.perf_counter() - t
    row = {'setup_seconds': round(setup_s, 1), 'setup_exit': r.returncode, 'load_average': load}
    if r.returncode == 0:
        rep = measure_report('quick', str(clone / '.venv' / 'bin' / 'causal-nb'), clone, work / 'cache', 'fresh-clone')
        row.update(report_seconds=rep['seconds'], report_exit=rep['exit'], total_seconds=round(setup_s + rep['seconds'], 1))
    else: row['stderr'] = r.stderr[-1500:]
    shutil.rmtree(clone, ignore_errors=True)
    return row


def measure_test_command(work: Path) -> dict:
    """The README's second command in a fresh clone of HEAD: `bash tools/setup.sh --dev` (a new .venv with the developer
    tools), then `bash tools/test.sh` (chapters, pytest, the wheel test), each timed, with the summary lines it printed.
    The model cache is the user's own (`~/.cache/causal_nb`, as on a machine that has run the chapters before): say so."""
    clone = work / 'clone-tests'
    subprocess.run(['git', 'clone', '-q', str(ROOT), str(clone)], check=True)
    env = {'HOME': os.environ.get('HOME', '/root'), 'PATH': '/usr/local/bin:/usr/bin:/bin'}
    row = {'load_average': round(os.getloadavg()[0], 2), 'cache': 'the user cache (~/.cache/causal_nb), warm'}
    t = time.perf_counter()
    r = subprocess.run(['bash', 'tools/setup.sh', '--dev'], capture_output=True, text=True, cwd=clone, env=env)
    row.update(setup_seconds=round(time.perf_counter() - t, 1), setup_exit=r.returncode)
    if r.returncode == 0:
        t = time.perf_counter()
        r = subprocess.run(['bash', 'tools/test.sh'], capture_output=True, text=True, cwd=clone, env=env)
        log = Path(tempfile.gettempdir()) / 'causal_nb_test_command.log'      # the whole output, kept for a failure's diagnosis
        log.write_text(r.stdout + '\n--- stderr ---\n' + r.stderr); row['log'] = str(log)
        row.update(test_seconds=round(time.perf_counter() - t, 1), test_exit=r.returncode,
                   total_seconds=round(row['setup_seconds'] + time.perf_counter() - t, 1),
                   summary=[l for l in r.stdout.splitlines() if re.search(r'(passed|failed|executed \d+ of)', l)][-4:])
        if r.returncode: row['tail'] = (r.stdout + r.stderr)[-3000:]
    else: row['tail'] = r.stderr[-1500:]
    print('test command', {k: v for k, v in row.items() if k != 'tail'}, flush=True)
    shutil.rmtree(clone, ignore_errors=True)
    return row


def measure_tests(parts: list[str]) -> list[dict]:
    "Seconds each given part of the test command takes (notebooks under nbdev_test, test files under pytest)."
    rows = []
    bin_ = Path(sys.executable).parent
    env = {**os.environ, 'MPLBACKEND': 'Agg', 'PYTHONHASHSEED': '0', 'OMP_NUM_THREADS': os.environ.get('OMP_NUM_THREADS', '1')}
    for part in parts:
        cmd = ([str(bin_ / 'nbdev_test'), '--path', part] if part.endswith('.ipynb') else
               [sys.executable, '-m', 'pytest', part, '-q', '-p', 'no:cacheprovider'])
        load = round(os.getloadavg()[0], 2)
        secs, r = _run(cmd, env, cwd=ROOT)
        rows.append({'part': part, 'seconds': round(secs, 1), 'exit': r.returncode, 'load_average': load,
                     'summary': (r.stdout.strip().splitlines() or [''])[-1][:200]})
        print(rows[-1], flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(p, DEVICES)
    p.add_argument('--full', action='store_true', help='also time the full setting, cold and warm (25+ min on a 2-core CPU)')
    p.add_argument('--with-setup', action='store_true', help='also time setup.sh + the report in a fresh clone')
    p.add_argument('--with-test-command', action='store_true',
                   help="also time the README's second command (setup.sh --dev + tools/test.sh) in a fresh clone (15-30 min)")
    p.add_argument('--tests', nargs='*', default=[], help='parts of the test command to time')
    p.add_argument('--repeat', type=int, default=5, help='runs per --help timing')
    p.add_argument('--out', type=Path, default=None)
    a = p.parse_args(argv)
    C.check_device(p, a.device, DEVICES)
    res = {'benchmark': NAME, 'env': C.environment('cpu'), 'help': measure_help(a.repeat), 'report': []}
    with tempfile.TemporaryDirectory(prefix='bench_cli_') as work:
        work = Path(work)
        for setting in ('quick', 'full') if a.full else ('quick',):
            cache = work / f'cache-{setting}'
            for label in ('cold', 'warm'): res['report'].append(measure_report(setting, _cli(), work, cache, label))
        if a.with_setup: res['fresh_clone'] = measure_setup(work)
        if a.with_test_command: res['test_command'] = measure_test_command(work)
    if a.tests: res['tests'] = measure_tests(a.tests)
    out = C.write_result(a.out or C.result_file(NAME), res)
    print(markdown(out.parent))
    print(f'\nwritten to {out}')


def markdown(results: Path) -> str:
    "The BENCHMARKS.md section: --help times, the report cold and warm, the fresh clone, the test command's parts."
    head = "## The command line: `--help`, and the README's first command cold and warm (issues #24, #27)"
    r = C.read_result(C.result_file(NAME, 'cpu', results))
    if r is None: return C.section(head, C.not_measured(COMMAND, 'cli.json'))
    intro = (f"`{COMMAND}` runs the installed `causal-nb` in subprocesses as a user would (torch picks its thread count), "
             f"on {C.machine(r['env'])}; the load average before each run is in its row (this machine is shared with four "
             f"other engineers, so times under load are upper bounds).")
    h = r['help']
    help_tab = C.table(['subcommand', 'median of ' + str(len(next(iter(h.values()))['runs'])) + ' runs', 'causal_nb.cli import',
                        'torch imported'],
                       [[f'`causal-nb {s} --help`', C.seconds(v['median_s']), C.seconds(v.get('cli_import_s')),
                         'yes' if v['torch_imported'] else 'no'] for s, v in h.items()])
    worst = max(v['median_s'] for v in h.values())
    help_v = (f"Target (`--help` of every subcommand well under a second, no torch import before argparse is done): "
              f"{C.verdict(worst < HELP_TARGET and not any(v['torch_imported'] for v in h.values()))} — slowest median "
              f"{C.seconds(worst)} (a Python start-up included).")
    rows = [[f"`causal-nb report{' --full' if x['setting'] == 'full' else ''} --out report`", x['setting'], x['cache'],
             x.get('device', '—'), f"{x['load_average']:.1f}", C.seconds(x['seconds']) + ('' if x['exit'] == 0 else f" (exit {x['exit']})"),
             'yes' if x.get('from_cache') else 'no'] for x in r['report']]
    rep_tab = C.table(['command', 'setting', 'cache', 'device', 'load', 'wall time', 'sections from the cache'], rows)
    cold = [x['seconds'] for x in r['report'] if x['cache'] == 'cold' and x['setting'] == 'quick' and x['exit'] == 0]
    warm = [x['seconds'] for x in r['report'] if x['cache'] == 'warm' and x['exit'] == 0]
    secs = next((x.get('sections') for x in r['report'] if x['cache'] == 'cold' and x['setting'] == 'quick'), None) or {}
    parts = ('Where the cold run\'s time goes (seconds per section): '
             + ', '.join(f"{k} {v:.0f}" for k, v in secs.items()) + '.') if secs else ''
    fc = r.get('fresh_clone')
    if fc:
        clone = (f"The whole first command in a fresh clone (`bash tools/setup.sh && .venv/bin/causal-nb report --out report`, "
                 f"load {fc['load_average']:.1f}): setup.sh {C.seconds(fc['setup_seconds'])}"
                 + (f", the report {C.seconds(fc['report_seconds'])}, together {C.seconds(fc['total_seconds'])}."
                    if 'total_seconds' in fc else f" and it failed (exit {fc['setup_exit']})."))
    else: clone = 'The fresh-clone run (setup.sh included) was not recorded in this run (`--with-setup`).'
    total = [fc['total_seconds']] if fc and 'total_seconds' in fc else []
    rep_v = (f"Targets (the README's first command ≤ 5 min on a fresh 2-core machine with a cold cache; a second run ≤ 1 min): "
             f"report from a cold cache {C.verdict(bool(cold) and max(cold) <= COLD_TARGET) if cold else C.verdict(None)}"
             f"{' (' + C.seconds(max(cold)) + ')' if cold else ''}; with setup.sh "
             f"{C.verdict(total[0] <= COLD_TARGET) + ' (' + C.seconds(total[0]) + ')' if total else C.verdict(None)}; "
             f"second run {C.verdict(bool(warm) and max(warm) <= WARM_TARGET) if warm else C.verdict(None)}"
             f"{' (' + C.seconds(max(warm)) + ')' if warm else ''}. The full setting (`--full`) was "
             + ('timed above.' if any(x['setting'] == 'full' for x in r['report']) else
                "not timed in this run (25+ minutes on a 2-core CPU from a cold cache; its second run takes the sections "
                "from the cache like the quick one)."))
    tc = r.get('test_command')
    if tc and 'test_seconds' in tc:
        tcmd = (f"The README's second command in a fresh clone (load {tc['load_average']:.1f} at the start; model cache: "
                f"{tc['cache']}): `bash tools/setup.sh --dev` {C.seconds(tc['setup_seconds'])}, `bash tools/test.sh` "
                f"{C.seconds(tc['test_seconds'])} ({'passed' if tc['test_exit'] == 0 else 'exit ' + str(tc['test_exit'])}), "
                f"together {C.seconds(tc['total_seconds'])}; target for the test command under 30 min on 2 cores: "
                f"{C.verdict(tc['test_exit'] == 0 and tc['test_seconds'] <= 1800)}. What it printed last: "
                + '; '.join(f"`{l.strip()}`" for l in tc.get('summary', []) if 'Warning' not in l) + '.')
    elif tc: tcmd = f"The README's second command in a fresh clone failed at setup.sh --dev (exit {tc['setup_exit']})."
    else: tcmd = ''
    tests = r.get('tests')
    if tests:
        ttab = C.table(['part of `bash tools/test.sh`', 'load', 'wall time', 'result'],
                       [[f"`{t['part']}`", f"{t['load_average']:.1f}", C.seconds(t['seconds']),
                         ('passed' if t['exit'] == 0 else f"exit {t['exit']}") + (f": {t['summary']}" if t['summary'] else '')]
                        for t in tests])
        tnote = "Parts of the test command, also timed on their own:" if tc and 'test_seconds' in tc else (
                "The README's second command (`bash tools/setup.sh --dev && bash tools/test.sh`: every chapter and the front page "
                 "under nbdev_test, then pytest, then the wheel test) was **not run whole** on this shared machine; these are "
                 "the parts that were timed, so any total for it is an estimate from them.")
    else: ttab, tnote = '', ''
    return C.section(head, intro, help_tab, help_v, rep_tab, parts, clone, rep_v, tcmd, tnote, ttab, C.notes(r))


if __name__ == '__main__':
    main()
