"""Sphinx configuration of the documentation site; tools/build_docs.py lays out the source tree it reads.

Sphinx with myst-nb builds the site because it installs from PyPI and runs offline (Quarto, which nbdev's own docs use,
cannot be installed from the package registries here). The notebooks arrive already executed by tools/run_chapters.py
(nbdev_test's rules: `slow` cells skipped), so myst-nb only renders them (nb_execution_mode = 'off').
"""
import configparser, os
from pathlib import Path

ROOT = Path(os.environ.get('CAUSAL_NB_ROOT', Path(__file__).resolve().parents[2]))
_cfg = configparser.ConfigParser(delimiters=['=']); _cfg.read(ROOT / 'settings.ini', encoding='utf-8'); _cfg = _cfg['DEFAULT']

project = _cfg['title']
author = _cfg['author']
copyright = _cfg['copyright']
release = version = _cfg['version']

extensions = ['myst_nb', 'sphinx.ext.autodoc', 'sphinx.ext.napoleon', 'sphinx.ext.viewcode', 'sphinx.ext.mathjax']
myst_enable_extensions = ['dollarmath', 'amsmath', 'colon_fence', 'deflist']
myst_heading_anchors = 3
nb_execution_mode = 'off'             # executed beforehand by tools/run_chapters.py
nb_merge_streams = True
nb_output_stderr = 'show'
nb_render_markdown_format = 'myst'
autodoc_member_order = 'bysource'
autodoc_typehints = 'signature'
autodoc_default_options = {'members': True, 'undoc-members': False, 'show-inheritance': True}
html_theme = 'furo'
html_title = f"{project} {release}"
# MathJax from its npm package, served by the site (tools/build_docs.py fetches it with npm); its CDN only as a fallback
_static = os.environ.get('CAUSAL_NB_STATIC')
html_static_path = [_static] if _static else []
mathjax_path = 'mathjax/tex-mml-chtml.js' if _static else 'https://cdn.jsdelivr.net/npm/mathjax@3/es5/tex-mml-chtml.js'
exclude_patterns = ['_build', '**.ipynb_checkpoints']
suppress_warnings = ['mystnb.unknown_mime_type', 'myst.header']


def _plain_docstring(app, what, name, obj, options, lines):
    "The docstrings are one-line plain text written for Python's help(), not reStructuredText: keep `|x|` and `*` literal."
    for i, line in enumerate(lines): lines[i] = line.replace('\\', '\\\\').replace('|', '\\|').replace('*', '\\*')


def setup(app):
    app.connect('autodoc-process-docstring', _plain_docstring)
