"""What the browser tests share: Debian's Chromium (/usr/bin/chromium) driven by playwright, headless, with nothing
fetched in the background, and a poll that fails naming what it waited for."""
import contextlib, time
from pathlib import Path

import pytest

CHROMIUM = Path('/usr/bin/chromium')
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--no-first-run']


def sync_api():
    "playwright's sync API, or a skip naming what is missing (the package, or Debian's chromium)."
    api = pytest.importorskip('playwright.sync_api', reason='the playwright package is not installed')
    if not CHROMIUM.exists(): pytest.skip('Debian chromium is not installed (apt-get install chromium)')
    return api


@contextlib.contextmanager
def chromium():
    "A headless Chromium browser, closed on the way out."
    with sync_api().sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try: yield browser
        finally: browser.close()


def wait_for(fn, timeout: float, what: str, interval: float = .25):
    "Poll `fn()` until it returns something truthy; fail naming `what` after `timeout` seconds."
    end = time.time() + timeout
    while time.time() < end:
        v = fn()
        if v: return v
        time.sleep(interval)
    pytest.fail(f'timed out after {timeout:.0f} s waiting for {what}')
