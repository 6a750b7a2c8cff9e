"The classroom commands from the outside: `python -m causal_nb.classroom notebooks`, and `lab` started for real."
import json, os, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

from causal_nb.classroom import MANIFEST, notebooks_dir, shipped_files, shipped_notebooks

ROOT = Path(__file__).resolve().parent.parent


def test_in_a_checkout_the_repository_is_the_source():
    assert notebooks_dir() == ROOT
    names = shipped_notebooks()
    assert names[0] == 'index.ipynb' and sorted(names[1:]) == sorted(f'nbs/{p.name}' for p in (ROOT / 'nbs').glob('*.ipynb'))


def test_module_command_copies_and_reports(tmp_path):
    run = lambda *a: subprocess.run([sys.executable, '-m', 'causal_nb.classroom', *a], capture_output=True, text=True, cwd=tmp_path)
    r = run('notebooks', 'course')
    n = len(shipped_files())
    assert r.returncode == 0 and f'{n} copied' in r.stdout, r.stderr
    assert json.loads((tmp_path / 'course' / MANIFEST).read_text())['files'].keys() == set(shipped_files())
    page = tmp_path / 'course' / 'index.ipynb'
    # an edit: a cell's source
    nb = json.loads(page.read_text()); nb['cells'][0]['source'] = ['# My notes']; page.write_text(json.dumps(nb))
    r = run('notebooks', 'course')
    assert (r.returncode == 0 and f'{n - 1} unchanged' in r.stdout and 'you edited them (use --force' in r.stdout
            and 'index.ipynb' in r.stdout)
    assert run('notebooks', 'course', '--force').returncode == 0 and 'My notes' not in page.read_text()
    bad = run('notebooks', 'course/index.ipynb')
    assert bad.returncode == 1 and 'is not a folder' in bad.stderr
    assert run('frobnicate').returncode == 2


def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def test_lab_serves_the_copied_notebooks(tmp_path):
    "`lab` copies the notebooks and starts JupyterLab on them; the contents API lists the chapters."
    pytest.importorskip('jupyterlab')
    port, token = _free_port(), 'classroom-test'
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'rt'), 'JUPYTER_CONFIG_DIR': str(tmp_path / 'cfg'),
           'JUPYTER_DATA_DIR': str(tmp_path / 'data')}
    code = (f"from causal_nb.classroom import lab; lab({str(tmp_path / 'course')!r}, port={port}, browser=False, "
            f"extra_args=['--IdentityProvider.token={token}', '--ServerApp.ip=127.0.0.1'])")
    proc = subprocess.Popen([sys.executable, '-c', code], cwd=tmp_path, env=env, start_new_session=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        listing, deadline = None, time.time() + 120
        while time.time() < deadline and proc.poll() is None:
            try:
                with urllib.request.urlopen(f'http://127.0.0.1:{port}/api/contents/nbs?token={token}', timeout=5) as r:
                    listing = json.load(r); break
            except OSError: time.sleep(1)
        assert listing is not None, f"JupyterLab did not answer on port {port}"
        assert {c['name'] for c in listing['content']} >= {'00_core.ipynb', '03_docalculus.ipynb', '13_classroom.ipynb'}
        with urllib.request.urlopen(f'http://127.0.0.1:{port}/lab?token={token}', timeout=10) as r: assert r.status == 200
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGTERM)
        try: out = proc.communicate(timeout=30)[0]
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); out = proc.communicate()[0]
    assert 'copied' in out


def test_a_progress_bar_leaves_no_widget_in_the_outputs():
    """In a real kernel, `progress` draws tqdm's notebook bar (a widget) and, done, replaces its output with an empty
    one, so a saved or reloaded notebook holds no widget view ("Error displaying widget: model not found")."""
    jc = pytest.importorskip('jupyter_client')
    pytest.importorskip('ipywidgets')
    env = {**os.environ, 'PYTHONPATH': os.pathsep.join([str(ROOT), os.environ.get('PYTHONPATH', '')]).rstrip(os.pathsep),
           'OMP_NUM_THREADS': '1'}
    env.pop('PYTEST_CURRENT_TEST', None); env.pop('IN_TEST', None); env.pop('CAUSAL_NB_PROGRESS', None)
    km, kc = jc.manager.start_new_kernel(kernel_name='python3', env=env)
    try:
        msg_id = kc.execute("from causal_nb.core import progress\nn = sum(1 for _ in progress(range(5), desc='demo'))\nprint(n)")
        outputs, shown = {}, []                      # display id -> its latest data, as the front end keeps them
        while True:
            m = kc.get_iopub_msg(timeout=60)
            if m['parent_header'].get('msg_id') != msg_id: continue
            t, c = m['msg_type'], m['content']
            if t in ('display_data', 'update_display_data'):
                did = c.get('transient', {}).get('display_id')
                if t == 'display_data': shown.append(did)
                outputs[did] = c['data']
            if t == 'status' and c['execution_state'] == 'idle': break
    finally:
        kc.stop_channels(); km.shutdown_kernel(now=True)
    assert shown and all(d is not None for d in shown), shown          # the bar was drawn, under a display id
    left = [d for d in outputs.values() if 'application/vnd.jupyter.widget-view+json' in d]
    assert not left, left


def test_every_slow_cell_says_it_is_optional_and_how_long():
    "A student runs `#| slow` cells too: the markdown cell just above each says it is optional and about how long it takes."
    import re
    missing = []
    for nb_path in [ROOT / 'index.ipynb', *sorted((ROOT / 'nbs').glob('*.ipynb'))]:
        cells = json.loads(nb_path.read_text())['cells']
        for i, c in enumerate(cells):
            if c['cell_type'] == 'code' and re.search(r'^#\|\s*slow\b', ''.join(c['source']), re.M):
                above = ''.join(cells[i - 1]['source']) if i else ''
                if not (i and cells[i - 1]['cell_type'] == 'markdown' and re.match(r'\*Optional, about \d+ (min|h)\b', above)):
                    missing.append(f'{nb_path.name} cell {i}')
    assert not missing, missing
