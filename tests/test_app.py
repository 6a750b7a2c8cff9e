"`causal-nb app` for real: Voila serves the explorers' dashboard on 127.0.0.1, Chromium opens it and moves a control."
import os, shutil, signal, socket, subprocess, sys, time, urllib.error, urllib.request
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
        if proc.poll() is not None: raise AssertionError(f"causal-nb app exited early ({proc.returncode})")
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
    log = tmp_path / 'app.log'     # a file, not a pipe: a pipe nobody reads fills up and stalls the server mid-page
    proc = subprocess.Popen([sys.executable, '-m', 'causal_nb.cli', 'app', '--data', data, '--no-browser', '--port', str(port)],
                            cwd=tmp_path, env=env, start_new_session=True, stdout=log.open('w'), stderr=subprocess.STDOUT, text=True)
    errors = []
    try:
        url = f'http://127.0.0.1:{port}/'
        _wait_http(url, proc, 120)
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        with sync_api.sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={'width': 1280, 'height': 720})      # a projector's resolution
            page.on('console', lambda m: errors.append(m.text) if m.type == 'error' else None)
            page.on('pageerror', lambda e: errors.append(str(e)))
            requests = []
            page.on('request', lambda r: requests.append(r.url))
            page.goto(url, timeout=240_000)
            # no code in the page: Voila strips the sources; the dashboard's first tab builds the intervention explorer
            page.wait_for_selector(f'{EXPLORER} img.causal-nb-input', timeout=300_000)
            page.wait_for_function("s => { const e = document.querySelector(s); return e && e.innerText.trim().length > 0 }",
                                   arg=f'{EXPLORER} .causal-nb-probs', timeout=120_000)
            body = page.inner_text('body')
            assert 'import' not in body and 'dashboard(' not in body, 'code is shown in the app'
            assert page.locator('.causal-nb-dashboard').count() == 1
            # nothing asked of another host (Voilà's lab template links Font Awesome on a CDN; the app's template drops it)
            remote = [u for u in requests if not u.startswith((url, 'data:', 'blob:', f'ws://127.0.0.1:{port}'))]
            assert not remote, f"the page asked other hosts: {remote}"
            # at 1280×720 the summary and the probabilities start in view, without scrolling
            for part in ('.causal-nb-summary', '.causal-nb-probs'):
                box = page.locator(f'{EXPLORER} {part}').bounding_box()
                assert box is not None and box['y'] < 720, (part, box)
            page.screenshot(path=str(ARTIFACTS / 'app-1280x720.png'))
            # control → view in the browser: the node slider, one keyboard step, until the node's picture is a new one
            node_img, node = f'{EXPLORER} img.causal-nb-node', page.locator(f'{EXPLORER} .widget-slider .noUi-handle').nth(1)
            node.focus(); latencies = []
            for _ in range(6):
                old = page.get_attribute(node_img, 'src'); t0 = time.perf_counter(); node.press('ArrowRight')
                page.wait_for_function("([s, o]) => document.querySelector(s).getAttribute('src') !== o", arg=[node_img, old],
                                       polling='raf', timeout=60_000)
                latencies.append(time.perf_counter() - t0)
            if os.environ.get('CAUSAL_NB_BROWSER_LATENCY'):      # bench/bench_widgets.py --browser collects these
                import json
                Path(os.environ['CAUSAL_NB_BROWSER_LATENCY']).write_text(json.dumps({'node_slider_s': latencies[1:]}))
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
            # 150% zoom: the same page, now at 1.5 device pixels per CSS pixel in a 1280×720 window (853 × 480 CSS pixels),
            # as Chromium's zoom does it; the same page, so no second kernel is started for the picture
            page.set_viewport_size({'width': 853, 'height': 480})
            cdp = page.context.new_cdp_session(page)
            cdp.send('Emulation.setDeviceMetricsOverride', {'width': 853, 'height': 480, 'deviceScaleFactor': 1.5, 'mobile': False})
            page.wait_for_function('() => window.innerWidth === 853 && window.devicePixelRatio === 1.5', timeout=30_000)
            page.wait_for_timeout(500)
            assert page.evaluate('() => document.documentElement.scrollWidth') <= 853 + 1, 'the page scrolls sideways at 150% zoom'
            import base64
            shot = cdp.send('Page.captureScreenshot', {'format': 'png'})['data']
            (ARTIFACTS / 'app-zoom150.png').write_bytes(base64.b64decode(shot))
            browser.close()
        widget_errors = [e for e in errors if 'widget' in e.lower() or 'model' in e.lower() or 'Error' in e]
        assert not widget_errors, f"browser console errors: {widget_errors}"
        if os.environ.get('CAUSAL_NB_UPDATE_SCREENSHOTS') == '1':
            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True); shutil.copy(ARTIFACTS / 'app-1280x720.png', SCREENSHOT)
            shutil.copy(ARTIFACTS / 'app-zoom150.png', SCREENSHOT.with_name('app-zoom150.png'))
    except BaseException:
        print(f"--- the app's log (last 4000 characters of {log}) ---\n{log.read_text()[-4000:]}")
        raise
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGINT)
        try: proc.wait(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()


def test_app_says_what_is_wrong():
    r = subprocess.run([sys.executable, '-m', 'causal_nb.cli', 'app', '--data', 'imagenet', '--no-browser'], capture_output=True, text=True)
    assert r.returncode == 2 and 'invalid choice' in r.stderr and 'fashion-mnist' in r.stderr
    r = subprocess.run([sys.executable, '-m', 'causal_nb.cli', 'app', '--port', '0', '--no-browser'], capture_output=True, text=True)
    assert r.returncode == 1 and 'port must be an integer' in r.stderr


def _kernels(root_pid: int) -> dict[int, int]:
    "The ipykernel processes below `root_pid` (the app), with their resident memory in bytes."
    parent, cmd, rss = {}, {}, {}
    for d in Path('/proc').iterdir():
        if not d.name.isdigit(): continue
        try:
            status = (d / 'status').read_text()
            cmd[int(d.name)] = (d / 'cmdline').read_bytes().replace(b'\0', b' ').decode(errors='replace')
        except OSError: continue
        fields = dict(l.split(':', 1) for l in status.splitlines() if ':' in l)
        parent[int(d.name)] = int(fields.get('PPid', '0').strip())
        rss[int(d.name)] = int(fields.get('VmRSS', '0 kB').split()[0]) * 1024
    def below(p):
        while p > 1:
            if p == root_pid: return True
            p = parent.get(p, 0)
        return False
    return {p: rss[p] for p, c in cmd.items() if 'ipykernel' in c and below(parent.get(p, 0))}


def _get(url: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=300) as r: return r.status, r.read().decode(errors='replace')
    except urllib.error.HTTPError as e: return e.code, (e.reason or '') + e.read().decode(errors='replace')


@pytest.mark.skipif(not Path('/proc').is_dir(), reason='counts kernels through /proc')
def test_app_keeps_its_kernels_bounded(tmp_path):
    """Three visits to an app with room for one page: the second is told to try again, the first page's kernel is shut down
    once nobody is connected to it, and the third visit gets its place; the kernel count never passes the limit."""
    pytest.importorskip('voila')
    port = _free_port()
    env = {**os.environ, 'JUPYTER_RUNTIME_DIR': str(tmp_path / 'rt'), 'JUPYTER_CONFIG_DIR': str(tmp_path / 'cfg'),
           'MPLBACKEND': 'Agg', 'PYTHONUNBUFFERED': '1'}
    log = tmp_path / 'app.log'
    proc = subprocess.Popen([sys.executable, '-m', 'causal_nb.cli', 'app', '--data', 'digits', '--no-browser', '--port', str(port),
                             '--max-kernels', '1', '--cull-idle', '60'],
                            cwd=tmp_path, env=env, start_new_session=True, stdout=log.open('w'), stderr=subprocess.STDOUT, text=True)
    url = f'http://127.0.0.1:{port}/'
    try:
        deadline = time.time() + 120
        while True:  # wait for the port without asking for a page (each page starts a kernel)
            if proc.poll() is not None: raise AssertionError(f"causal-nb app exited early:\n{log.read_text()[-4000:]}")
            with socket.socket() as s:
                if s.connect_ex(('127.0.0.1', port)) == 0: break
            assert time.time() < deadline, 'causal-nb app did not open its port within 120 s'
            time.sleep(.5)
        first = _get(url)                    # a visitor (curl, a page, a reload: each asks for a kernel)
        assert first[0] == 200, first[1][-500:]
        second = _get(url)
        assert second[0] == 503 and 'its limit (--max-kernels)' in second[1], second
        running = _kernels(proc.pid)
        assert len(running) == 1, running
        assert sum(running.values()) < 3 * 2**30, f'the kernel holds {sum(running.values()) / 2**30:.1f} GiB'
        # nobody is connected to those pages any more: after --cull-idle seconds their kernels are shut down (60 s, not
        # less: the culler counts a kernel still starting as idle, and a first start on a fresh venv can take 20-30 s)
        deadline = time.time() + 150
        while _kernels(proc.pid):
            assert time.time() < deadline, f'kernels still running 150 s after their pages closed: {_kernels(proc.pid)}'
            time.sleep(1)
        deadline, third = time.time() + 30, _get(url)  # the freed place serves the third visitor (once the manager lets it go)
        while third[0] == 503 and time.time() < deadline: time.sleep(1); third = _get(url)
        assert third[0] == 200, third
        assert len(_kernels(proc.pid)) == 1
    except BaseException:
        print(f"--- the app's log (last 4000 characters of {log}) ---\n{log.read_text()[-4000:]}")
        raise
    finally:
        if proc.poll() is None: os.killpg(proc.pid, signal.SIGINT)
        try: proc.wait(timeout=30)
        except subprocess.TimeoutExpired: os.killpg(proc.pid, signal.SIGKILL); proc.wait()
