"`causal-nb app` for real: Voila serves the explorers' dashboard on 127.0.0.1, Chromium opens it and moves a control."
import os, shutil, signal, socket, subprocess, sys, time, urllib.request
from pathlib import Path

import pytest

from causal_nb.data import load_data

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / 'tests' / 'artifacts'                   # kept by CI
SCREENSHOT = ROOT / 'docs' / 'images' / 'app.png'          # refreshed with CAUSAL_NB_UPDATE_SCREENSHOTS=1
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run']
EXPLORER = '.causal-nb-interventionexplorer'


def _free_port() -> int:
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]


def _chromium() -> str:
    path = shutil.which('chromium') or '/usr/bin/chromium'
    if not Path(path).exists(): pytest.skip('Debian chromium is not installed (bash tools/setup.sh --dev installs it)')
    return path


def _wait_http(url: str, proc: subprocess.Popen, seconds: float) -> None:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if proc.poll() is not None: raise AssertionError(f"causal-nb app exited early ({proc.returncode}):\n{proc.stdout.read()}")
        try:
            with urllib.request.urlopen(url, timeout=5) as r:
                if r.status == 200: return
        except OSError: time.sleep(1)
    raise AssertionError(f"causal-nb app did not answer on {url} within {seconds:.0f} s")


def test_app_serves_the_explorers_and_a_control_drives_them(tmp_path):
    pytest.importorskip('voila')
    sync_api = pytest.importorskip('playwright.sync_api')
    chromium = _chromium()
    port = _free_port()
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'rt'), 'JUPYTER_CONFIG_DIR': str(tmp_path / 'cfg'),
           'MPLBACKEND': 'Agg', 'PYTHONUNBUFFERED': '1'}
    # Fashion-MNIST, the app's default, when this machine has it (its quick model is cached by the other tests); else digits
    try: load_data('fashion-mnist', train=False, limit=1); data = 'fashion-mnist'
    except FileNotFoundError: data = 'digits'
    proc = subprocess.Popen([sys.executable, '-m', 'causal_nb.cli', 'app', '--data', data, '--no-browser', '--port', str(port)],
                            cwd=tmp_path, env=env, start_new_session=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    errors = []
    try:
        url = f'http://127.0.0.1:{port}/'
        _wait_http(url, proc, 120)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={'width': 1280, 'height': 1000})
            page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
            page.on('pageerror', lambda e: errors.append(str(e)))
            page.goto(url, timeout=240_000)
            # no code in the page: Voila strips the sources; the dashboard's first tab builds the intervention explorer
            page.wait_for_selector(f'{EXPLORER} img.causal-nb-input', timeout=300_000)
            page.wait_for_function("s => { const e = document.querySelector(s); return e && e.innerText.trim().length > 0 }",
                                   arg=f'{EXPLORER} .causal-nb-probs', timeout=120_000)
            body = page.inner_text('body')
            assert 'import' not in body and 'dashboard(' not in body, 'code is shown in the app'
            assert page.locator('.causal-nb-dashboard').count() == 1
            before_img = page.get_attribute(f'{EXPLORER} img.causal-nb-input', 'src')
            before_probs = page.inner_text(f'{EXPLORER} .causal-nb-probs')
            page.screenshot(path=str(ARTIFACTS / 'app-before.png'))
            # move the image slider (the first slider of the explorer) two steps with the keyboard, as a teacher would
            handle = page.locator(f'{EXPLORER} .widget-slider .noUi-handle').first
            handle.focus(); handle.press('ArrowRight'); handle.press('ArrowRight')
            # the view follows the slider: the caption names image #2 and the picture and probabilities are new
            page.wait_for_function("s => document.querySelector(s).innerText.includes('image #2')", arg=EXPLORER, timeout=60_000)
            page.wait_for_timeout(500)
            assert page.get_attribute(f'{EXPLORER} img.causal-nb-input', 'src') != before_img
            assert page.inner_text(f'{EXPLORER} .causal-nb-probs') != before_probs
            readout = page.locator(f'{EXPLORER} .widget-slider .widget-readout').first.inner_text()
            assert readout.strip() == '2', f"the image slider reads {readout!r} after two steps right"
            page.screenshot(path=str(ARTIFACTS / 'app.png'))
            browser.close()
        widget_errors = [e for e in errors if 'widget' in e.lower() or 'model' in e.lower() or 'Error' in e]
        assert not widget_errors, f"browser console errors: {widget_errors}"
        if os.environ.get('CAUSAL_NB_UPDATE_SCREENSHOTS') == '1':
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True); shutil.copy(ARTIFACTS / 'app.png', SCREENSHOT)
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGINT)
        try: proc.communicate(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.communicate()


def test_app_says_what_is_wrong():
    r = subprocess.run([sys.executable, '-m', 'causal_nb.cli', 'app', '--data', 'imagenet', '--no-browser'], capture_output=True, text=True)
    assert r.returncode == 2 and 'invalid choice' in r.stderr and 'fashion-mnist' in r.stderr
    r = subprocess.run([sys.executable, '-m', 'causal_nb.cli', 'app', '--port', '0', '--no-browser'], capture_output=True, text=True)
    assert r.returncode == 1 and 'port must be an integer' in r.stderr
