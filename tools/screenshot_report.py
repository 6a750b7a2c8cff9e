"""Screenshot a causal-nb HTML report in Chromium for the README (docs/images/report.png).

Usage: python tools/screenshot_report.py REPORT_DIR [--section TITLE] [--out PNG]
Makes the README's picture from a real report, e.g. after `causal-nb report --quick --out report` on Fashion-MNIST:
the page top (title, run facts, contents) or, with --section, the top of that section.
"""
import argparse, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--no-first-run']

def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('report', type=Path, help='folder holding index.html')
    p.add_argument('--section', default=None, help="scroll to the section whose heading contains this text, e.g. 'Expected-CE'")
    p.add_argument('--out', type=Path, default=ROOT / 'docs' / 'images' / 'report.png')
    p.add_argument('--size', default='1200x900', help='viewport WxH')
    a = p.parse_args(argv)
    page_file = a.report / 'index.html'
    if not page_file.is_file(): sys.exit(f"no report at {page_file}: run causal-nb report --out {a.report} first")
    w, h = (int(v) for v in a.size.split('x'))
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path='/usr/bin/chromium', args=ARGS)
        page = b.new_page(viewport={'width': w, 'height': h})
        page.goto(page_file.resolve().as_uri()); page.wait_for_load_state('load')
        if a.section:
            heading = page.locator('section h2', has_text=a.section).first
            if heading.count() == 0: sys.exit(f"no section heading contains {a.section!r}")
            heading.scroll_into_view_if_needed(); page.evaluate('y => window.scrollBy(0, y)', heading.bounding_box()['y'] - 10)
        a.out.parent.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(a.out)); b.close()
    print(f'wrote {a.out}')
    return 0

if __name__ == '__main__': sys.exit(main())
