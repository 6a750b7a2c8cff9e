"BENCHMARKS.md is generated: it must equal the rendering of bench/results, and every bench script must render its section."
import json, os, subprocess, sys, textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'bench'))
import render  # noqa: E402  (bench/render.py)

SCRIPTS = render.scripts()


def test_benchmarks_md_is_the_rendering_of_the_results():
    r = subprocess.run([sys.executable, str(ROOT / 'bench' / 'render.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stdout[-4000:] + r.stderr


def test_check_fails_on_a_stale_file_and_shows_the_diff(tmp_path, capsys):
    stale = tmp_path / 'BENCHMARKS.md'
    stale.write_text(render.render().replace('**met**', '**not met**', 1), encoding='utf-8')
    assert render.main(['--check', '--out', str(stale)]) == 1
    out = capsys.readouterr().out
    assert out.startswith('--- BENCHMARKS.md (committed)') and '-' in out and '+' in out and 'met**' in out
    assert render.main(['--out', str(stale)]) == 0 and render.main(['--check', '--out', str(stale)]) == 0


def test_the_known_scripts_are_all_there_in_order():
    names = [render.name_of(p) for p in SCRIPTS]
    assert names[:6] == ['training', 'docalculus', 'attacks', 'autoencoder', 'interventions', 'cem'], names


CLEAN_IMPORT = textwrap.dedent('''
    import json, os, sys, warnings
    from pathlib import Path
    bench, script = Path(sys.argv[1]), Path(sys.argv[2])
    snapshot = lambda: sorted((str(p), p.stat().st_mtime_ns, p.stat().st_size) for p in bench.rglob('*') if '__pycache__' not in p.parts)
    before, filters, cwd = snapshot(), list(warnings.filters), set(os.listdir('.'))
    sys.argv = [script.name, '--no-such-option']          # a script that parses its arguments at import would exit here
    sys.path.insert(0, str(bench))
    import render
    mod = render.load(script)
    import inspect
    report = {'markdown': callable(getattr(mod, 'markdown', None)),
              'params': list(inspect.signature(mod.markdown).parameters) if hasattr(mod, 'markdown') else None,
              'devices': list(getattr(mod, 'DEVICES', ('cpu',))), 'main': callable(getattr(mod, 'main', None)),
              'files_changed': snapshot() != before, 'cwd_changed': set(os.listdir('.')) != cwd,
              'warnings_changed': list(warnings.filters) != filters}
    if 'torch' in sys.modules:
        report['torch_threads_changed'] = sys.modules['torch'].get_num_threads() != int(os.environ['EXPECT_THREADS'])
    print('REPORT' + json.dumps(report))
''')


@pytest.mark.parametrize('script', SCRIPTS, ids=[p.name for p in SCRIPTS])
def test_a_script_imports_without_side_effects_and_has_markdown(script, tmp_path):
    threads = os.environ.get('OMP_NUM_THREADS', '1')
    env = {**os.environ, 'OMP_NUM_THREADS': threads, 'EXPECT_THREADS': threads}
    r = subprocess.run([sys.executable, '-c', CLEAN_IMPORT, str(ROOT / 'bench'), str(script)], capture_output=True, text=True,
                       cwd=tmp_path, env=env, timeout=300)
    assert r.returncode == 0, r.stderr
    out, _, report = r.stdout.rpartition('REPORT')
    assert out == '' and r.stderr == '', f'importing {script.name} printed: {out!r} {r.stderr!r}'
    report = json.loads(report)
    assert report['markdown'] and report['params'] == ['results'], report
    assert report['main'], f'{script.name} has no main(argv=None)'
    assert set(report['devices']) <= {'cpu', 'cuda'} and report['devices'], report
    assert not report['files_changed'] and not report['cwd_changed'], f'importing {script.name} wrote files'
    assert not report['warnings_changed'] and not report.get('torch_threads_changed'), report


def test_sections_without_results_say_how_to_measure(tmp_path):
    text = render.render(tmp_path)
    heads = [l for l in text.splitlines() if l.startswith('## ')]
    assert len(heads) == len([p for p in SCRIPTS if hasattr(render.load(p), 'markdown')])
    assert text.count('Not measured yet: run `') == len(heads), text


def _docalculus(tmp_path, speedup):
    res = json.loads((ROOT / 'bench' / 'results' / 'docalculus.json').read_text())
    res.update(speedup_vs_pgmpy=speedup, ours_ms_per_query=1.0, pgmpy_ms_per_query=speedup)
    (tmp_path / 'docalculus.json').write_text(json.dumps(res))
    return render.load(ROOT / 'bench' / 'bench_docalculus.py').markdown(tmp_path)


def test_verdicts_follow_the_numbers(tmp_path):
    fast, slow = _docalculus(tmp_path, 2.0), _docalculus(tmp_path, 0.5)
    assert 'Target (at least as fast as pgmpy): **met**.' in fast and '(causal_nb faster)' in fast and '**2.00×**' in fast
    assert 'Target (at least as fast as pgmpy): **not met**.' in slow and '(causal_nb slower)' in slow
    train = render.load(ROOT / 'bench' / 'bench_training.py')
    res = json.loads((ROOT / 'bench' / 'results' / 'training.json').read_text())
    for acc, verdict in ((0.92, '**met**'), (0.905, '**not met**')):
        res['rows'][0]['test_accuracy'] = acc
        (tmp_path / 'training.json').write_text(json.dumps(res))
        text = train.markdown(tmp_path)
        assert f'Target (small CNN ≥ 91.0%): {verdict} — {acc:.2%} on CPU' in text, text


def test_discovery_order_and_scripts_without_markdown(tmp_path, capsys):
    for name in ('zeta', 'alpha', 'cem', 'training'):
        (tmp_path / f'bench_{name}.py').write_text(f"def markdown(results):\n    return '## {name}\\n'\n")
    (tmp_path / 'bench_nomd.py').write_text('x = 1\n')
    (tmp_path / 'helper.py').write_text("raise RuntimeError('not a bench script')\n")
    assert [render.name_of(p) for p in render.scripts(tmp_path)] == ['training', 'cem', 'alpha', 'nomd', 'zeta']
    heads = [l for l in render.render(tmp_path, tmp_path).splitlines() if l.startswith('## ')]
    assert heads == ['## training', '## cem', '## alpha', '## zeta']
    assert 'bench_nomd.py has no markdown' in capsys.readouterr().err
