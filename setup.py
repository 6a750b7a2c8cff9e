"Package metadata comes from settings.ini (nbdev 2 layout), so there is one place to edit it."
from configparser import ConfigParser
from pathlib import Path
import setuptools
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent
cfg = ConfigParser(delimiters=['='])
cfg.read(HERE / 'settings.ini', encoding='utf-8')
cfg = cfg['DEFAULT']

requirements = cfg.get('requirements', '').split()
dev_requirements = cfg.get('dev_requirements', '').split()
classroom_requirements = cfg.get('classroom_requirements', '').split()
scripts = cfg.get('console_scripts', '').split()
readme = HERE / 'README.md'


class BuildWithNotebooks(build_py):
    """Also put the front page and the chapter notebooks into the built package, as `<lib>/notebooks/index.ipynb` and
    `<lib>/notebooks/nbs/*.ipynb`, so a wheel carries the tutorials while the repository's nbs/ stays their only copy.
    An editable install skips this: causal_nb.classroom finds the notebooks in the source tree."""
    def run(self):
        super().run()
        if getattr(self, 'editable_mode', False): return
        nbs = HERE / cfg['nbs_path']
        files = [HERE / 'index.ipynb', *sorted(nbs.glob('*.ipynb')), *sorted((nbs / 'images').glob('*.png')),  # images the chapters show
                 # what the front page links to and shows (causal_nb.classroom.FRONT_PAGE_FILES), so a student's copy has them
                 *[f for f in (HERE / 'BENCHMARKS.md', HERE / 'CONTRIBUTING.md', HERE / 'docs' / 'teaching.md') if f.is_file()], *sorted((HERE / 'docs' / 'images').glob('*.png'))]
        missing = [str(f) for f in files[:1] if not f.is_file()] + ([] if len(files) > 1 else [f"{nbs}/*.ipynb"])
        if missing: raise FileNotFoundError(f"cannot ship the notebooks, missing: {missing} (an sdist needs MANIFEST.in to include them)")
        out = Path(self.build_lib) / cfg['lib_path'] / 'notebooks'
        for f in files:
            target = out / f.relative_to(HERE)
            self.mkpath(str(target.parent))
            self.copy_file(str(f), str(target))


setuptools.setup(
    name=cfg['lib_name'],
    version=cfg['version'],
    description=cfg['description'],
    long_description=readme.read_text(encoding='utf-8') if readme.exists() else cfg['description'],
    long_description_content_type='text/markdown',
    author=cfg['author'], author_email=cfg['author_email'],
    url=cfg['git_url'],
    license='Apache-2.0',
    keywords=cfg['keywords'],
    classifiers=['Programming Language :: Python :: 3', 'Framework :: Jupyter',
                 'Topic :: Scientific/Engineering :: Artificial Intelligence'],
    packages=setuptools.find_packages(include=[cfg['lib_path'], cfg['lib_path'] + '.*']),
    include_package_data=True,
    install_requires=requirements,
    extras_require={'dev': dev_requirements, 'classroom': classroom_requirements},
    python_requires='>=' + cfg['min_python'],
    entry_points={'console_scripts': scripts, 'nbdev': [f"{cfg['lib_path']}={cfg['lib_path']}._modidx:d"]},
    cmdclass={'build_py': BuildWithNotebooks},
    zip_safe=False,
)
