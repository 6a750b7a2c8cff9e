"""Render README.md from index.ipynb (Quarto, which nbdev_readme uses, cannot be installed everywhere).

Usage: python tools/render_readme.py [--check]
Markdown cells are copied, code cells become ```python blocks, cells flagged `#| hide` are left out,
and nbdev directives are stripped. With --check nothing is written and the exit status says whether
README.md is current (tests/test_foundation.py runs this).
"""
import re, sys
from pathlib import Path
import nbformat
from nbconvert import MarkdownExporter
from traitlets.config import Config

ROOT = Path(__file__).resolve().parent.parent
HEADER = "<!-- Generated from index.ipynb by tools/render_readme.py: edit the notebook, not this file. -->\n\n"

def render(nb_path: Path = ROOT / 'index.ipynb') -> str:
    nb = nbformat.read(nb_path, as_version=4)
    keep = []
    for cell in nb.cells:
        src = cell.source
        if cell.cell_type == 'code':
            if re.search(r'^#\|\s*(hide|export)', src, re.M) or re.search(r'^#\|\s*default_exp', src, re.M): continue
            cell.source = '\n'.join(l for l in src.splitlines() if not l.startswith('#|')).strip()
            cell.outputs = []
        keep.append(cell)
    nb.cells = keep
    body, _ = MarkdownExporter(config=Config({'MarkdownExporter': {'exclude_output': True}})).from_notebook_node(nb)
    body = re.sub(r'\n{3,}', '\n\n', body).strip() + '\n'
    # nbdev's "> summary" line under the title reads as a quote; keep it.
    return HEADER + body

if __name__ == '__main__':
    text = render()
    readme = ROOT / 'README.md'
    if '--check' in sys.argv:
        if not readme.exists() or readme.read_text(encoding='utf-8') != text:
            sys.exit('README.md is stale: run python tools/render_readme.py')
        print('README.md is current'); sys.exit(0)
    readme.write_text(text, encoding='utf-8'); print(f'wrote {readme}')
