"""`causal-nb report`, `reproduce` and `bench` end to end, through the installed console script.

The report runs in its quick setting on generated data (`causal_shapes`), and every file it writes is checked:
each embedded figure is a real, non-blank PNG, each CSV table holds finite numbers, `results.json` has no failed
section. The page is then opened in Chromium and screenshotted (the README shows that screenshot).
"""
import base64, contextlib, io, json, os, re, shutil, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name('causal-nb'))
ARTIFACTS = ROOT / 'tests' / 'artifacts'


def run(*args, timeout=900, **env):
    return subprocess.run([CLI, *map(str, args)], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, 'CAUSAL_NB_PROGRESS': '0', 'OMP_NUM_THREADS': '1', **env})


def figures(page: str) -> list[np.ndarray]:
    "Every embedded PNG of a report page, decoded (grey)."
    out = []
    for b64 in re.findall(r'src="data:image/png;base64,([^"]+)"', page):
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            im.verify()
        with Image.open(io.BytesIO(base64.b64decode(b64))) as im:
            out.append(np.asarray(im.convert('L')))
    return out


def check_report(out: Path, min_figures: int = 1) -> dict:
    "The report's files exist, its figures are non-empty images, its tables hold finite numbers; returns results.json."
    page = (out / 'index.html').read_text(encoding='utf-8')
    assert page.startswith('<!doctype html>') and '</html>' in page
    figs = figures(page)
    assert len(figs) >= min_figures, f"{len(figs)} figures"
    for i, f in enumerate(figs):
        assert f.shape[0] > 20 and f.shape[1] > 20, f"figure {i} is {f.shape}"
        assert f.std() > 1, f"figure {i} is blank (one grey level)"
    tables = sorted((out / 'tables').glob('*.csv'))
    assert tables, 'no tables written'
    for t in tables:
        df = pd.read_csv(t, index_col=0)
        assert len(df), f"{t.name} is empty"
        num = df.select_dtypes('number')
        if num.empty: continue                     # a text table (verdicts)
        vals = num.to_numpy(dtype=float)
        assert np.isfinite(vals).all(), f"{t.name} holds non-finite numbers:\n{df[~np.isfinite(vals).all(1)]}"
    res = json.loads((out / 'results.json').read_text())
    failed = {k: v['error'] for k, v in res['sections'].items() if 'error' in v}
    assert not failed, failed
    return res


# the packages only the dev extra installs: the README's first command runs without them, so the report must too
DEV_ONLY = ('captum', 'torchattacks', 'pgmpy', 'pytorch_grad_cam', 'quantus', 'y0', 'nnsight', 'art', 'voila', 'playwright',
            'nbdev', 'execnb', 'ghapi', 'hypothesis', 'pytest')


@pytest.fixture(scope='module')
def quick_report(tmp_path_factory):
    out = tmp_path_factory.mktemp('report') / 'out'
    # as on a runtime install (`bash tools/setup.sh`, no --dev): importing any dev-only package raises ImportError
    block = tmp_path_factory.mktemp('runtime-only'); (block / 'sitecustomize.py').write_text(
        f"import sys\nfor m in {DEV_ONLY!r}: sys.modules[m] = None\n")
    pythonpath = os.pathsep.join(p for p in (str(block), os.environ.get('PYTHONPATH', '')) if p)
    r = run('report', '--quick', '--data', 'causal-shapes', '--out', out, PYTHONPATH=pythonpath)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert 'report written to' in r.stdout
    return out


def test_report_quick_end_to_end(quick_report):
    res = check_report(quick_report, min_figures=5)
    titles = list(res['sections'])
    for t in ('Data', 'Model', 'Interventions and Expected-CE', "The paper's tables"): assert t in titles, titles
    assert res['meta']['quick'] is True and res['meta']['data'].startswith('CausalShapes')
    ece = pd.read_csv(quick_report / 'tables' / 'expected_ce.csv', index_col=0)
    assert {'Z0', 'PWM', 'FGSM'} <= set(ece.columns)
    # the paper's Table 3 is Fashion-MNIST's: on CausalShapes it is marked not comparable, with its reason
    assert res['sections']["The paper's tables"]['verdicts']['table3'] == 'not comparable'


def test_report_in_chromium(quick_report):
    pw = pytest.importorskip('playwright.sync_api')
    if not Path('/usr/bin/chromium').exists(): pytest.skip('Debian chromium is not installed (apt-get install chromium)')
    ARTIFACTS.mkdir(exist_ok=True)
    with pw.sync_playwright() as p:
        browser = p.chromium.launch(executable_path='/usr/bin/chromium', args=[
            '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update',
            '--no-first-run', '--disable-sync', '--disable-quic'])
        try:
            page = browser.new_page(viewport={'width': 1200, 'height': 900})
            errors = []
            page.on('pageerror', lambda e: errors.append(str(e)))
            page.goto((quick_report / 'index.html').as_uri())
            page.wait_for_load_state('load')
            assert page.title() == 'causal_nb report'
            n_sections = page.locator('section').count()
            assert n_sections == len(json.loads((quick_report / 'results.json').read_text())['sections'])
            assert page.locator('nav li').count() == n_sections
            widths = page.eval_on_selector_all('img', 'imgs => imgs.map(i => i.naturalWidth)')
            assert widths and min(widths) > 0, widths          # every embedded figure decodes in the browser
            page.screenshot(path=str(ARTIFACTS / 'report.png'))
            assert not errors, errors
        finally: browser.close()
    with Image.open(ARTIFACTS / 'report.png') as im: assert im.size == (1200, 900)


def test_reproduce_prints_every_table_with_its_verdict(tmp_path):
    r = run('reproduce', '--quick', '--out', tmp_path)
    assert r.returncode == 0, r.stderr[-3000:]
    for n in range(1, 5): assert f'Table {n}. ' in r.stdout
    verdicts = re.findall(r'^verdict: (HOLDS|DOES NOT HOLD|NOT COMPARABLE) — .+', r.stdout, flags=re.M)
    assert len(verdicts) == 4, r.stdout
    assert verdicts[0] == verdicts[1] == verdicts[3] == 'NOT COMPARABLE'     # no ChestX-ray14 / ImageNet here
    assert verdicts[2] in ('HOLDS', 'DOES NOT HOLD')                        # Table 3 is recomputed on Fashion-MNIST
    t3 = pd.read_csv(tmp_path / 'table3.csv', index_col=0)
    assert list(t3.columns) == ['paper Z0', 'ours Z0', 'paper PWM', 'ours PWM', 'paper FGSM', 'ours FGSM']
    assert np.isfinite(t3.to_numpy()).all()
    j = json.loads((tmp_path / 'reproduce.json').read_text())
    assert j['table3']['numbers']['n_images'] == 500 and j['table1']['verdict'] == 'not comparable'
    assert '**Verdict:' in (tmp_path / 'reproduce.md').read_text()


def _image_folder(root: Path, n: int = 6, size: int = 16):
    g = torch.Generator().manual_seed(0)
    for split in ('train', 'val'):
        for k, c in enumerate(('dark', 'light')):
            (root / split / c).mkdir(parents=True)
            for i in range(n):
                x = torch.rand(size, size, 3, generator=g) * .5 + .5 * k   # learnable: light vs dark
                Image.fromarray((x * 255).byte().numpy()).save(root / split / c / f'{i}.png')
    return root


def test_report_streams_a_folder_and_shards_under_torchrun(tmp_path):
    data = _image_folder(tmp_path / 'images')
    args = ['--data', data, '--image-size', '16', '--batch-size', '4', '--sections', 'interventions', '--seed', '1']
    r1 = run('report', *args, '--out', tmp_path / 'one', CAUSAL_NB_CACHE=str(tmp_path / 'cache'))
    assert r1.returncode == 0, r1.stdout[-2000:] + r1.stderr[-3000:]
    assert '12 test images, streamed' in r1.stdout
    res = check_report(tmp_path / 'one')
    assert res['sections']['Interventions and Expected-CE']['n_images'] == 12      # the whole val split, streamed
    torchrun = Path(sys.executable).with_name('torchrun')
    r2 = subprocess.run([str(torchrun), '--nproc_per_node', '2', '--master_port', '29617', '-m', 'causal_nb.cli', 'report', *map(str, args),
                         '--out', str(tmp_path / 'two')], capture_output=True, text=True, timeout=900,
                        env={**os.environ, 'CAUSAL_NB_PROGRESS': '0', 'OMP_NUM_THREADS': '1', 'CAUSAL_NB_CACHE': str(tmp_path / 'cache')})
    assert r2.returncode == 0, r2.stdout[-2000:] + r2.stderr[-3000:]
    assert '2 processes' in r2.stdout
    a = pd.read_csv(tmp_path / 'one' / 'tables' / 'expected_ce.csv', index_col=0)
    b = pd.read_csv(tmp_path / 'two' / 'tables' / 'expected_ce.csv', index_col=0)
    pd.testing.assert_frame_equal(a, b, atol=1e-6, rtol=1e-5)
    assert json.loads((tmp_path / 'two' / 'results.json').read_text())['meta']['processes'] == 2


def test_report_with_a_model_file_and_weights(tmp_path):
    (tmp_path / 'net.py').write_text("from torch import nn\n"
                                     "def build_model(n_classes=10):\n"
                                     "    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, n_classes))\n")
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 32), torch.nn.ReLU(), torch.nn.Linear(32, 10))
    torch.save(net.state_dict(), tmp_path / 'w.pt')
    r = run('report', '--data', 'digits', '--model', tmp_path / 'net.py', '--weights', tmp_path / 'w.pt',
            '--sections', 'data,model', '--out', tmp_path / 'out')
    assert r.returncode == 0, r.stderr[-3000:]
    from causal_nb.data import load_data
    from causal_nb.models import evaluate
    acc = evaluate(net, load_data('digits', train=False)).accuracy
    got = json.loads((tmp_path / 'out' / 'results.json').read_text())['sections']['Model']['test_accuracy']
    assert abs(got - acc) < 1e-6


def test_report_and_reproduce_refuse_bad_input(tmp_path):
    one_line_error(run('report', '--data', 'imagenet-please'), "--data: data must be one of")
    one_line_error(run('report', '--data', 'digits', '--model', 'resnet1000'), '--model: expected one of small-cnn, lenet5',
                   "got 'resnet1000'")
    one_line_error(run('report', '--data', 'digits', '--sections', 'data,nonsense'), "--sections: unknown section(s) ['nonsense']")
    one_line_error(run('reproduce', '--tables', 'table1', '--chestxray', tmp_path, '--chexnet', tmp_path / 'none.pth'), 'does not exist')
    one_line_error(run('report', '--device', 'tpu9'), '--device', "'tpu9'")
    (tmp_path / 'afile').write_text('x')
    one_line_error(run('report', '--out', tmp_path / 'afile'), '--out', 'is a file; expected a folder')
    r = run('--debug', 'report', '--data', 'imagenet-please')
    assert r.returncode != 0 and 'Traceback' in r.stderr and 'UsageError' in r.stderr           # --debug shows where


def test_default_data_falls_back_to_digits_with_a_message(monkeypatch):
    import causal_nb.cli as cli, causal_nb.data as data
    real = data.load_data
    def no_fashion(name, *a, **k):
        if name == 'fashion-mnist': raise FileNotFoundError('Fashion-MNIST not found. Looked at: …')
        return real(name, *a, **k)
    monkeypatch.setattr(data, 'load_data', no_fashion)     # the command imports it when it runs
    said = []
    train, test, stream = cli.report_data(None, quick=True, log=said.append)
    assert train.images.shape[-1] == 8 and stream is None
    assert said and "uses scikit-learn's 8×8 digits instead" in said[0] and 'Looked at' in said[0]


def test_bench_command_renders_benchmarks(tmp_path):
    if not (ROOT / 'bench' / 'render.py').is_file(): pytest.skip('bench/render.py is not in this checkout')
    repo = tmp_path / 'repo'
    shutil.copytree(ROOT / 'bench', repo / 'bench', ignore=shutil.ignore_patterns('__pycache__'))
    shutil.copy(ROOT / 'BENCHMARKS.md', repo / 'BENCHMARKS.md')
    (repo / 'BENCHMARKS.md').write_text('stale\n')
    r = run('bench', '--render-only', '--repo', repo)
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-2000:]
    assert (repo / 'BENCHMARKS.md').read_text() == (ROOT / 'BENCHMARKS.md').read_text()


# ---------------------------------------------------------------- issue 27: the command line speaks to people

def one_line_error(r, *needles):
    "The command failed as a user error: exit status 2, one line on stderr (no traceback) holding every needle."
    assert r.returncode == 2, (r.returncode, r.stdout[-1500:], r.stderr[-3000:])
    lines = [l for l in r.stderr.splitlines() if l.strip()]
    assert len(lines) == 1 and 'Traceback' not in r.stderr, r.stderr[-3000:]
    for n in needles: assert n in lines[0], lines[0]
    return lines[0]


def leftovers(*folders: Path) -> list[str]:
    "Half-written things: scratch report folders and temporary cache files under `folders`."
    out = []
    for f in folders:
        if f.exists(): out += [str(p) for p in f.rglob('*') if '.partial-' in p.name or '.tmp' in p.name]
    return out


def test_bad_numbers_are_refused_by_their_flag(tmp_path):
    line = one_line_error(run('report', '--limit', '-5', '--out', tmp_path / 'out'), '--limit', "got '-5'", 'at least 1')
    assert 'n must be' not in line
    one_line_error(run('report', '--image-size', 'big'), '--image-size', "got 'big'")
    one_line_error(run('reproduce', '--limit', '0'), '--limit', "got '0'")
    one_line_error(run('report', '--full', '--quick'), '--full', 'quick is the default')
    assert not (tmp_path / 'out').exists()


def test_weights_errors_name_the_flag_and_what_differs(tmp_path):
    from causal_nb.data import load_data
    from causal_nb.models import build_model
    digits = load_data('digits'); shapes = load_data('causal-shapes', limit=8)
    one_line_error(run('report', '--data', 'digits', '--weights', tmp_path / 'missing.pt', '--out', tmp_path / 'o'),
                   '--weights: no file at', 'missing.pt')
    (tmp_path / 'corrupt.pt').write_bytes(b'\x00garbage, not a torch file')
    line = one_line_error(run('report', '--data', 'digits', '--weights', tmp_path / 'corrupt.pt'), '--weights:',
                          'is not a weights file torch can read')
    assert 'delete it' not in line                       # the cache's advice is wrong for a user's own file
    torch.save(build_model('lenet5', shapes).state_dict(), tmp_path / 'lenet.pt')
    one_line_error(run('report', '--data', 'causal-shapes', '--weights', tmp_path / 'lenet.pt'),
                   'does not fit --model small-cnn', 'the file fits --model lenet5')
    net = build_model('small-cnn', digits)
    last = list(net.state_dict())[-2:]
    torch.save({k: (torch.zeros(14, *v.shape[1:]) if k in last else v) for k, v in net.state_dict().items()},   # a 14-output head
               tmp_path / 'chexnet-like.pt')
    one_line_error(run('report', '--data', 'digits', '--weights', tmp_path / 'chexnet-like.pt'),
                   'shapes differ', 'expects (10', 'the file has (14', 'only the output layer differs', '--data selects')
    assert leftovers(tmp_path) == []


def _folder_with_bad_files(root: Path) -> Path:
    data = _image_folder(root)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(buf, format='PNG')
    (data / 'val' / 'dark' / 'cut.png').write_bytes(buf.getvalue()[:2000])          # a truncated PNG
    (data / 'train' / 'light' / 'notes.txt').write_text('not an image')
    return data


def test_folder_with_unreadable_files_is_skipped_with_a_warning_or_refused(tmp_path):
    data = _folder_with_bad_files(tmp_path / 'images')
    args = ['--data', data, '--image-size', '16', '--batch-size', '4', '--sections', 'data,model']
    r = run('report', *args, '--out', tmp_path / 'out', CAUSAL_NB_CACHE=str(tmp_path / 'cache'))
    assert r.returncode == 0, r.stdout[-2000:] + r.stderr[-3000:]
    warned = [l for l in r.stderr.splitlines() if l.startswith('causal-nb: warning: skipped')]
    assert any('skipped 1 of 13 files' in l and 'dark/cut.png (unreadable' in l for l in warned), r.stderr
    assert any('skipped 1 of 13 files' in l and 'light/notes.txt (not an image)' in l for l in warned), r.stderr
    assert json.loads((tmp_path / 'out' / 'results.json').read_text())['sections']['Data']['n_test'] == 12
    one_line_error(run('report', *args, '--strict', '--out', tmp_path / 'strict', CAUSAL_NB_CACHE=str(tmp_path / 'cache')),
                   '--data:', 'holds 1 file that is not a readable image', 'notes.txt', 'train')
    assert not (tmp_path / 'strict').exists() and leftovers(tmp_path) == []


def test_help_of_every_subcommand_imports_no_torch():
    for sub in ('report', 'reproduce', 'bench', 'notebooks', 'lab', 'app'):
        r = run(sub, '--help', PYTHONPROFILEIMPORTTIME='1')
        assert r.returncode == 0 and f'usage: causal-nb {sub}' in r.stdout, r.stderr[-2000:]
        imported = {l.split('|')[-1].strip() for l in r.stderr.splitlines() if l.startswith('import time:')}
        assert 'causal_nb.cli' in imported and 'torch' not in imported, sorted(i for i in imported if 'torch' in i)[:5]


def test_report_says_its_plan_and_progress_then_a_second_run_comes_from_the_cache(tmp_path):
    cache = str(tmp_path / 'cache')
    args = ['report', '--data', 'digits', '--sections', 'data,model,docalculus', '--out']
    r1 = run(*args, tmp_path / 'one', CAUSAL_NB_CACHE=cache)
    assert r1.returncode == 0, r1.stderr[-3000:]
    lines = r1.stdout.splitlines()
    plan = next(i for i, l in enumerate(lines) if l.startswith('[causal-nb] report: 3 sections on'))
    assert 'in the quick setting, on cpu; about' in lines[plan] and '--full runs the paper' in lines[plan]
    steps = [l for l in lines if re.match(r'\[causal-nb\] \d/3 ', l)]
    assert [s.split()[1] for s in steps] == ['1/3', '2/3', '3/3'] and all('left)' in s for s in steps), steps
    assert next(i for i, l in enumerate(lines) if l.startswith('[causal-nb] 1/3')) > plan        # the plan comes first
    page = (tmp_path / 'one' / 'index.html').read_text()
    assert page.count('<figcaption>') == page.count('<figcaption><span class="setting">[causal-nb report, quick setting]</span>') > 0
    assert 'Made in the quick setting' in page
    r2 = run(*args, tmp_path / 'two', CAUSAL_NB_CACHE=cache)
    assert r2.returncode == 0 and 'are in the cache' in r2.stdout and '1/3' not in r2.stdout, r2.stdout
    one, two = (json.loads((tmp_path / d / 'results.json').read_text())['sections'] for d in ('one', 'two'))
    assert {k: {n: x for n, x in v.items() if n != 'from_cache'} for k, v in two.items()} == one
    for t in (tmp_path / 'one' / 'tables').glob('*.csv'): assert t.read_text() == (tmp_path / 'two' / 'tables' / t.name).read_text()
    r3 = run(*args, tmp_path / 'three', '--recompute', CAUSAL_NB_CACHE=cache)
    assert r3.returncode == 0 and '1/3' in r3.stdout and 'are in the cache' not in r3.stdout


def test_reproduce_says_its_plan_first():
    r = run('reproduce', '--tables', 'table1,table4')
    assert r.returncode == 0, r.stderr[-2000:]
    first = r.stdout.splitlines()[0]
    assert first.startswith('[causal-nb] reproduce, quick setting:') and 'need --chestxray DIR and --chexnet FILE' in first, first


def _interrupt_when(args, pattern: str, **env):
    """Run causal-nb in its own process group and press Ctrl-C (SIGINT to the group, as a terminal does) once a stdout line
    matches `pattern`; returns (exit status, stdout, stderr)."""
    import signal, threading
    p = subprocess.Popen([CLI, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                         env={**os.environ, 'CAUSAL_NB_PROGRESS': '0', 'OMP_NUM_THREADS': '1', **env})
    err, seen = [], []
    t = threading.Thread(target=lambda: err.append(p.stderr.read())); t.start()
    try:
        for line in p.stdout:
            seen.append(line)
            if re.search(pattern, line): os.killpg(p.pid, signal.SIGINT); break
        seen.append(p.stdout.read())
        rc = p.wait(timeout=300)
    finally:                                            # whatever this test started (e.g. a Voila server) ends with it
        with contextlib.suppress(ProcessLookupError): os.killpg(p.pid, signal.SIGKILL)
        p.wait(); t.join()
    return rc, ''.join(seen), err[0]


def test_ctrl_c_leaves_no_half_written_report_or_cache_and_says_what_was_kept(tmp_path):
    out = tmp_path / 'report'; out.mkdir(); (out / 'index.html').write_text('the previous report')
    cache = tmp_path / 'cache'
    rc, stdout, stderr = _interrupt_when(['report', '--data', 'digits', '--out', out], r'^\[causal-nb\] 4/\d+ ', CAUSAL_NB_CACHE=str(cache))
    assert rc == 130, (rc, stdout[-2000:], stderr[-3000:])
    line = [l for l in stderr.splitlines() if l.strip()][-1]
    assert 'causal-nb report: interrupted during the' in line and f'no report was written ({out} is as it was)' in line, stderr
    assert 'Kept in the cache' in line and 'models/smallcnn-' in line, line           # the model trained before Ctrl-C is kept
    assert 'Traceback' not in stderr
    assert [p.name for p in out.iterdir()] == ['index.html'] and (out / 'index.html').read_text() == 'the previous report'
    assert leftovers(tmp_path) == [], leftovers(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ['cache', 'report']


def test_app_says_its_plan_and_stops_on_ctrl_c(tmp_path):
    import importlib.util
    if importlib.util.find_spec('voila') is None: pytest.skip('voila is not installed')
    rc, stdout, stderr = _interrupt_when(['app', '--no-browser', '--port', '18917', '--data', 'digits'], r'^\[causal-nb\] app:',
                                         CAUSAL_NB_CACHE=str(tmp_path / 'cache'), TMPDIR=str(tmp_path))
    assert stdout.startswith('[causal-nb] app: the intervention, CEM, counterfactual and filter explorers on digits'), stdout
    assert 'the first start trains them (about' in stdout
    assert rc in (0, 130), (rc, stderr[-2000:])
    assert not list(tmp_path.glob('causal_nb_app_*'))                 # its temporary notebook folder is gone
