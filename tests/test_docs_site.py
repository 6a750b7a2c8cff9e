"""The documentation site in a real browser: tools/build_docs.py builds it (from the copies tools/run_chapters.py executed
during the README's test command when they are there, else it runs the chapters itself), a local HTTP server on
127.0.0.1 serves it, and Debian's Chromium (driven by playwright) opens every page: each figure must load, each link
inside the site must lead to a page that exists, no notebook output may be an error, the search must find the library's
names, and nothing may be fetched from another host. A screenshot of a chapter goes to tests/artifacts/ (and, with
CAUSAL_NB_UPDATE_SCREENSHOTS=1, to docs/images/docs-site.png, which the README shows)."""
import functools, http.server, os, re, shutil, subprocess, sys, threading
from pathlib import Path
from urllib.parse import unquote, urlparse

import pytest

from _browser import chromium, sync_api

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / 'tests' / 'artifacts'
pytestmark = pytest.mark.browser


@pytest.fixture(scope='module')
def site(tmp_path_factory):
    "Build the site into a temp folder and serve it on 127.0.0.1; yields (base url, site folder)."
    pytest.importorskip('myst_nb', reason='myst-nb (the dev extra) is not installed')
    out = tmp_path_factory.mktemp('site')
    executed = ROOT / '_build' / 'executed'
    sources = [ROOT / 'index.ipynb', *(ROOT / 'nbs').glob('*.ipynb')]
    fresh = all((executed / s.relative_to(ROOT)).exists() and
                (executed / s.relative_to(ROOT)).stat().st_mtime >= s.stat().st_mtime for s in sources)
    args = ['--executed', str(executed)] if fresh else []  # tools/test.sh executed them just before; else build_docs runs them
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MPLBACKEND': 'Agg', 'CAUSAL_NB_PROGRESS': '0'}
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'build_docs.py'), '--out', str(out), *args],
                       capture_output=True, text=True, env=env, cwd=ROOT)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-5000:]
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *a): pass
    handler = functools.partial(Quiet, directory=str(out))
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try: yield f'http://127.0.0.1:{server.server_address[1]}', out
    finally: server.shutdown(); server.server_close()


def pages(out: Path) -> list[str]:
    "Every page a reader reaches from the navigation: front page, chapters, Markdown pages, API pages, search and index."
    keep = [p for p in out.rglob('*.html') if not {'_modules', '_sources', '_static'} & set(p.relative_to(out).parts)]
    return sorted(p.relative_to(out).as_posix() for p in keep)


def test_site_has_every_chapter_and_module(site):
    _, out = site
    got = set(pages(out))
    chapters = {f'nbs/{p.stem}.html' for p in (ROOT / 'nbs').glob('*.ipynb')}
    assert chapters <= got, sorted(chapters - got)
    assert {'index.html', 'BENCHMARKS.html', 'docs/teaching.html', 'api/index.html', 'search.html'} <= got
    mods = [p.stem for p in (ROOT / 'causal_nb').glob('*.py') if not p.stem.startswith('_')]
    api = {f'api/{m}.html' for m in mods}
    assert api <= got, sorted(api - got)


def test_every_page_in_chromium(site):
    sync_api()
    base, out = site
    ARTIFACTS.mkdir(exist_ok=True)
    problems, outside, n_images, n_links = [], set(), 0, 0
    with chromium() as browser:
        page = browser.new_page(viewport={'width': 1280, 'height': 900})
        def route(r):  # the site must work offline: nothing from another host
            host = urlparse(r.request.url).hostname
            if r.request.url.startswith(base) or r.request.url.startswith(('data:', 'blob:')): return r.continue_()
            outside.add(host); return r.abort()
        page.route('**/*', route)
        errors = []
        page.on('pageerror', lambda e: errors.append(str(e)))
        for rel in pages(out):
            errors.clear()
            resp = page.goto(f'{base}/{rel}', wait_until='load')
            if not resp or resp.status != 200: problems.append(f'{rel}: HTTP {resp and resp.status}'); continue
            imgs = page.eval_on_selector_all('img', 'els => els.map(e => [e.getAttribute("src"), e.complete && e.naturalWidth > 0])')
            n_images += len(imgs)
            problems += [f'{rel}: image {src} does not load' for src, ok in imgs if not ok]
            hrefs = page.eval_on_selector_all('a[href]', 'els => els.map(e => e.href)')
            for h in hrefs:
                u = urlparse(h)
                if not h.startswith(base): continue
                n_links += 1
                target = out / unquote(u.path).lstrip('/')
                if target.is_dir(): target = target / 'index.html'
                if not target.exists(): problems.append(f'{rel}: broken link {u.path}')
            errs = page.eval_on_selector_all('.output.traceback, .output.error, div.cell_output .traceback', 'els => els.length')
            text = page.inner_text('body')
            if errs or 'Traceback (most recent call last)' in text: problems.append(f'{rel}: shows an error output')
            problems += [f'{rel}: script error {e}' for e in errors if 'mathjax' not in e.lower()]
        # search finds the library's names (the index is built offline)
        page.goto(f'{base}/search.html?q=causal_effect_map', wait_until='load')
        page.wait_for_selector('#search-results li', timeout=30_000)
        assert page.eval_on_selector_all('#search-results li', 'els => els.length') > 0
        page.goto(f'{base}/nbs/07_cem.html', wait_until='load')
        page.screenshot(path=str(ARTIFACTS / 'docs-site.png'))
        if os.environ.get('CAUSAL_NB_UPDATE_SCREENSHOTS') == '1':
            shutil.copy(ARTIFACTS / 'docs-site.png', ROOT / 'docs' / 'images' / 'docs-site.png')
    assert not problems, '\n'.join(problems[:40])
    assert n_images > 0 and n_links > 0
    # the site works offline: MathJax comes from its npm package (a CDN only when npm could not fetch it)
    offline = (out / '_static' / 'mathjax' / 'tex-mml-chtml.js').exists()
    assert outside <= (set() if offline else {'cdn.jsdelivr.net'}), sorted(outside)


def test_chapter_outputs_are_rendered(site):
    "The chapters arrive executed: most show outputs, and the chapters that teach with figures show their figures."
    _, out = site
    html = {p.stem: (out / 'nbs' / f'{p.stem}.html').read_text(encoding='utf-8') for p in sorted((ROOT / 'nbs').glob('*.ipynb'))}
    with_output = [k for k, h in html.items() if 'cell_output' in h]
    assert len(with_output) >= len(html) - 3, f'chapters rendered without any output: {sorted(set(html) - set(with_output))}'
    figures = {k: len(re.findall(r'<img[^>]+src="[^"]*_images/', h)) for k, h in html.items()}
    for k in ('03_docalculus', '06_interventions', '07_cem', '07b_faithfulness', '09_filters'):
        if k in figures: assert figures[k] >= 1, f'{k} shows no figure: {figures}'
