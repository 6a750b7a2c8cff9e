"""Build the documentation site: every chapter with its outputs, the API of each module, the tour, the teacher's guide and
BENCHMARKS.md and CONTRIBUTING.md, with search and links between them.

Usage: python tools/build_docs.py [--out _build/site] [--executed DIR | --no-execute]

1. Run the notebooks with nbdev_test's rules (tools/run_chapters.py: the quick setting, `slow` cells skipped), unless
   `--executed DIR` names a folder of copies executed before (CI reuses them) or `--no-execute` renders sources only.
2. Lay out a Sphinx source tree under _build/site-src: the executed notebooks in the repository's layout (so the links
   between chapters work unchanged), nbdev directives stripped and `#| hide` cells removed, a note on every `slow` cell, one
   API page per module (autodoc), the Markdown pages, and links to other repository files pointed at the repository host.
3. sphinx-build (myst-nb renders the notebooks; furo's search works offline) into `--out`; open `index.html` there.

Why Sphinx + myst-nb: nbdev's own site builder is Quarto, which cannot be installed from the package registries this
project may use; Sphinx and myst-nb install with pip, render executed notebooks as they are, and need no network.
"""
from __future__ import annotations
import argparse, configparser, json, os, re, shutil, subprocess, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PAGES_MD = ['BENCHMARKS.md', 'CONTRIBUTING.md', 'docs/teaching.md']
DIRECTIVE = re.compile(r'^\s*#\|\s*([\w-]+:?)(.*)$')


def settings() -> configparser.SectionProxy:
    c = configparser.ConfigParser(delimiters=['=']); c.read(ROOT / 'settings.ini', encoding='utf-8')
    return c['DEFAULT']


def modules() -> list[str]:
    "The package's public modules, in chapter order (from the notebooks' `default_exp`)."
    mods = []
    for nb in sorted((ROOT / 'nbs').glob('*.ipynb')):
        for cell in json.loads(nb.read_text(encoding='utf-8'))['cells']:
            m = re.search(r'^#\|\s*default_exp\s+(\S+)', ''.join(cell['source']), re.M)
            if cell['cell_type'] == 'code' and m: mods.append(m.group(1)); break
    return mods


def repo_link(target: str, page: Path, src: Path, git_url: str) -> str | None:
    "A link to a repository file that is not a page of the site becomes a link to the repository host; else None."
    if re.match(r'^[a-z][a-z0-9+.-]*:', target) or target.startswith('#') or not target.strip(): return None
    path, _, frag = target.partition('#')
    resolved = (page.parent / path).resolve()
    try: rel = resolved.relative_to(src.resolve())
    except ValueError: return None
    if (src / rel).exists(): return None  # part of the site
    repo_file = ROOT / rel
    if not repo_file.exists(): return None  # leave it; the link check reports it
    kind = 'tree' if repo_file.is_dir() else 'blob'
    return f"{git_url.rstrip('/')}/{kind}/{settings().get('branch', 'main')}/{rel.as_posix()}" + (f'#{frag}' if frag else '')


def fix_links(text: str, page: Path, src: Path, git_url: str) -> str:
    def sub(m):
        new = repo_link(m.group(2), page, src, git_url)
        return m.group(0) if new is None else f"{m.group(1)}({new})"
    return re.sub(r'(\]\s?)\(([^)\s]+)\)', sub, text)


def prepare_notebook(path: Path, dest: Path, src: Path, git_url: str, toc: list[str] | None = None) -> None:
    nb = json.loads(path.read_text(encoding='utf-8'))
    cells = []
    for cell in nb['cells']:
        text = ''.join(cell['source']) if isinstance(cell['source'], list) else cell['source']
        if cell['cell_type'] == 'code':
            directives = {m.group(1).rstrip(':'): m.group(2).strip() for m in map(DIRECTIVE.match, text.splitlines()) if m}
            if 'hide' in directives or 'default_exp' in directives: continue
            if 'slow' in directives:
                cells.append({'cell_type': 'markdown', 'id': f'slow-note-{len(cells)}', 'metadata': {}, 'source':
                    '*The next cell runs the full tutorial setting (a `slow` cell): it is skipped when the site is built, so '
                    'it shows no output here; run the notebook to see it.*'})
            text = '\n'.join(l for l in text.splitlines() if not DIRECTIVE.match(l)).strip('\n')
            if not text.strip(): continue
        else:
            text = fix_links(text, dest, src, git_url)
        cell['source'] = text
        cells.append(cell)
    if toc:
        cells.append({'cell_type': 'markdown', 'id': 'site-toctree', 'metadata': {}, 'source':
                      '```{toctree}\n:hidden:\n:maxdepth: 1\n\n' + '\n'.join(toc) + '\n```'})
    nb['cells'] = cells
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(json.dumps(nb, indent=1, ensure_ascii=False), encoding='utf-8')


def layout(executed: Path | None, src: Path) -> list[str]:
    "Write the Sphinx source tree; returns the pages in the order of the site's navigation."
    git_url = settings()['git_url']
    if src.exists(): shutil.rmtree(src)
    src.mkdir(parents=True)
    for images in ('docs/images', 'nbs/images'):
        if (ROOT / images).is_dir(): shutil.copytree(ROOT / images, src / images)
    chapters = sorted((ROOT / 'nbs').glob('*.ipynb'))
    mods = modules()
    (src / 'api').mkdir()
    for m in mods:
        (src / 'api' / f'{m}.md').write_text(
            f"# `causal_nb.{m}`\n\nThe API of the module exported from its chapter (signatures and docstrings; each argument's\n"
            f"meaning is the comment beside it in the chapter's source).\n\n```{{eval-rst}}\n.. automodule:: causal_nb.{m}\n```\n",
            encoding='utf-8')
    (src / 'api' / 'index.md').write_text(
        "# API reference\n\n```{toctree}\n:maxdepth: 1\n\n" + '\n'.join(mods) + "\n```\n", encoding='utf-8')
    for md in PAGES_MD:
        if (ROOT / md).exists():
            (src / md).parent.mkdir(parents=True, exist_ok=True)
            (src / md).write_text(fix_links((ROOT / md).read_text(encoding='utf-8'), src / md, src, git_url), encoding='utf-8')
    # placeholders so repo_link knows which notebooks are pages; replaced below
    for nb in [ROOT / 'index.ipynb', *chapters]:
        (src / nb.relative_to(ROOT)).parent.mkdir(parents=True, exist_ok=True); (src / nb.relative_to(ROOT)).touch()
    pages = [f"nbs/{c.stem}" for c in chapters] + [p[:-3] for p in PAGES_MD if (ROOT / p).exists()] + ['api/index']
    for nb in chapters:
        rel = nb.relative_to(ROOT)
        prepare_notebook((executed / rel) if executed and (executed / rel).exists() else nb, src / rel, src, git_url)
    rel = Path('index.ipynb')
    prepare_notebook((executed / rel) if executed and (executed / rel).exists() else ROOT / rel, src / rel, src, git_url, toc=pages)
    return ['index', *pages]


MATHJAX = '3.2.2'


def offline_mathjax(static: Path) -> bool:
    "Put MathJax (its npm package: the combined TeX component and its fonts) under `static/mathjax`, so maths renders offline."
    target = static / 'mathjax' / 'tex-mml-chtml.js'
    if target.exists(): return True
    if not shutil.which('npm'): return False
    import tarfile, tempfile
    with tempfile.TemporaryDirectory() as tmp:
        r = subprocess.run(['npm', 'pack', f'mathjax@{MATHJAX}', '--pack-destination', tmp, '--silent'], capture_output=True, text=True)
        tgz = list(Path(tmp).glob('mathjax-*.tgz'))
        if r.returncode or not tgz: return False
        with tarfile.open(tgz[0]) as t:
            members = [m for m in t.getmembers() if m.name == 'package/es5/tex-mml-chtml.js'
                       or m.name.startswith('package/es5/output/chtml/fonts/')]
            # the 'data' filter where this Python has it (3.10.12+, 3.11.4+; Debian 12's 3.11.2 does not): members are picked above
            t.extractall(tmp, members=members, **({'filter': 'data'} if hasattr(tarfile, 'data_filter') else {}))
        shutil.copytree(Path(tmp) / 'package' / 'es5', static / 'mathjax', dirs_exist_ok=True)
    return target.exists()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument('--out', default=str(ROOT / '_build' / 'site'), help='folder for the HTML site')
    g = p.add_mutually_exclusive_group()
    g.add_argument('--executed', default=None, help='folder of notebooks executed by tools/run_chapters.py (skips running them)')
    g.add_argument('--no-execute', action='store_true', help='render the notebooks without outputs')
    a = p.parse_args(argv)
    executed = None
    if not a.no_execute:
        executed = Path(a.executed) if a.executed else ROOT / '_build' / 'executed'
        if not a.executed:
            rc = subprocess.call([sys.executable, str(ROOT / 'tools' / 'run_chapters.py'), '--out', str(executed)])
            if rc: print('build_docs: some notebooks failed; their pages show the error (see above)', file=sys.stderr)
            if not (executed / 'index.ipynb').exists(): raise SystemExit('build_docs: the notebooks could not be executed (see above)')
        elif not executed.is_dir(): raise SystemExit(f"build_docs: --executed {executed} is not a folder")
    src = ROOT / '_build' / 'site-src'
    pages = layout(executed, src)
    out = Path(a.out)
    static = ROOT / '_build' / 'static'
    env = {**os.environ, 'CAUSAL_NB_ROOT': str(ROOT)}
    if offline_mathjax(static): env['CAUSAL_NB_STATIC'] = str(static)
    else: print(f'build_docs: npm could not fetch mathjax@{MATHJAX}; pages with maths load MathJax from its CDN', file=sys.stderr)
    cmd = [sys.executable, '-m', 'sphinx', '-b', 'html', '-q', '-c', str(ROOT / 'docs' / 'sphinx'), str(src), str(out)]
    rc = subprocess.call(cmd, env=env)
    if rc: return rc
    print(f"build_docs: {len(pages)} pages and {len(modules())} API pages in {out / 'index.html'}")
    return 0


if __name__ == '__main__':
    sys.exit(main())
