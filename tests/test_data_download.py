"""The Fashion-MNIST download path for a machine with internet, run for real against a local web server.

torchvision's own downloader fetches fixture IDX files from 127.0.0.1 (its mirror list pointed there, its MD5 list
set to the fixture's): the download happens once into the cache with a progress bar, two processes asking at once
download once, and a corrupted transfer is refused without leaving files behind.
"""
import hashlib, http.server, multiprocessing as mp, os, tempfile, threading
from pathlib import Path

import numpy as np
import pytest
import torchvision

import causal_nb.data as cd

N = 30  # images per split in the fixture


def _idx(arr: np.ndarray) -> bytes:
    "The bytes of a gzipped IDX file, as the Fashion-MNIST mirror serves them."
    with tempfile.TemporaryDirectory() as d: return cd.write_idx(arr, Path(d) / 'x.gz').read_bytes()


def _fixture() -> dict[str, bytes]:
    rng = np.random.default_rng(0)
    files = {}
    for stem in ('train', 't10k'):
        files[f'{stem}-images-idx3-ubyte.gz'] = _idx(rng.integers(0, 256, (N, 28, 28)))
        files[f'{stem}-labels-idx1-ubyte.gz'] = _idx(np.arange(N) % 10)
    return files


class _Server:
    "A local HTTP server for the fixture files, counting GET requests; `corrupt` names files it truncates."
    def __init__(self, files: dict[str, bytes]):
        self.files, self.gets, self.corrupt = files, [], set()
        outer = self
        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a): pass
            def _send(self, body: bool):
                name = self.path.lstrip('/')
                if name not in outer.files: self.send_response(404); self.end_headers(); return
                data = outer.files[name]
                if name in outer.corrupt: data = data[: len(data) // 2]
                self.send_response(200); self.send_header('Content-Length', str(len(data))); self.end_headers()
                if body: outer.gets.append(name); self.wfile.write(data)
            # torchvision probes redirects with a GET carrying 'Method: HEAD'
            def do_GET(self): self._send(self.headers.get('Method') != 'HEAD')
            def do_HEAD(self): self._send(False)
        self.httpd = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Handler)
        self.url = f'http://127.0.0.1:{self.httpd.server_address[1]}/'
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()
    def close(self): self.httpd.shutdown(); self.httpd.server_close()


def _point_torchvision_at(monkeypatch, url: str, files: dict[str, bytes]):
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, 'mirrors', [url])
    monkeypatch.setattr(torchvision.datasets.FashionMNIST, 'resources', [(n, hashlib.md5(d).hexdigest()) for n, d in files.items()])


@pytest.fixture
def online(tmp_path, monkeypatch):
    "No local Fashion-MNIST anywhere, an empty cache, and torchvision's mirror on a local server."
    files = _fixture(); server = _Server(files)
    monkeypatch.setenv('CAUSAL_NB_CACHE', str(tmp_path / 'cache'))
    monkeypatch.delenv('CAUSAL_NB_FASHION_MNIST', raising=False)
    monkeypatch.setattr(cd, 'DEBIAN_FASHION_MNIST', tmp_path / 'no-debian-package')
    _point_torchvision_at(monkeypatch, server.url, files)
    yield server
    server.close()


def _leftovers(cache: Path) -> list[str]:
    "Files and folders in the data cache other than the finished data set and the lock file."
    data = cache / 'data'
    return sorted(p.name for p in data.iterdir() if p.name != 'FashionMNIST' and not p.name.endswith('.lock')) if data.exists() else []


def test_downloads_once_into_the_cache_with_a_progress_bar(online, tmp_path, capfd):
    test = cd.fashion_mnist(train=False)
    err = capfd.readouterr().err
    assert len(test) == N and 'downloaded to' in test.name
    assert sorted(online.gets) == sorted(online.files)                  # all four files, each once
    assert '100%' in err and 'B/s' in err, err[-500:]                    # torchvision's progress bar per file
    raw = tmp_path / 'cache' / 'data' / 'FashionMNIST' / 'raw'
    assert sorted(p.name for p in raw.iterdir()) == sorted(online.files)  # the verified archives, nothing else
    assert _leftovers(tmp_path / 'cache') == []
    train = cd.fashion_mnist(train=True)
    assert len(train) == N and len(online.gets) == 4                     # the second call reads the cache


def _load_in_child(cache: str, url: str, files: dict[str, bytes], q):
    os.environ['CAUSAL_NB_CACHE'] = cache; os.environ.pop('CAUSAL_NB_FASHION_MNIST', None)
    cd.DEBIAN_FASHION_MNIST = Path(cache) / 'no-debian-package'
    torchvision.datasets.FashionMNIST.mirrors = [url]
    torchvision.datasets.FashionMNIST.resources = [(n, hashlib.md5(d).hexdigest()) for n, d in files.items()]
    q.put(len(cd.fashion_mnist(train=False)))


def test_two_processes_download_once(tmp_path):
    "Two notebooks opened at once on a fresh machine: one downloads, the other waits on the lock and reads its files."
    files = _fixture(); server = _Server(files)
    try:
        ctx = mp.get_context('spawn'); q = ctx.Queue()
        procs = [ctx.Process(target=_load_in_child, args=(str(tmp_path / 'cache'), server.url, files, q)) for _ in range(2)]
        for p in procs: p.start()
        got = [q.get(timeout=120) for _ in procs]
        for p in procs: p.join(30)
    finally: server.close()
    assert got == [N, N]
    assert sorted(server.gets) == sorted(files)
    assert _leftovers(tmp_path / 'cache') == []


def test_a_corrupted_transfer_is_refused_and_leaves_nothing(online, tmp_path):
    online.corrupt = {'t10k-images-idx3-ubyte.gz'}
    with pytest.raises(FileNotFoundError, match=r'torchvision download: failed \(RuntimeError'):
        cd.fashion_mnist(train=False)
    assert not (tmp_path / 'cache' / 'data' / 'FashionMNIST').exists() and _leftovers(tmp_path / 'cache') == []
    online.corrupt = set()
    assert len(cd.fashion_mnist(train=False)) == N                        # the next try downloads cleanly


def test_a_damaged_cache_says_how_to_recover(online, tmp_path):
    cd.fashion_mnist(train=False)
    f = tmp_path / 'cache' / 'data' / 'FashionMNIST' / 'raw' / 't10k-images-idx3-ubyte.gz'
    f.write_bytes(f.read_bytes()[:40])
    with pytest.raises(ValueError, match='the cached download is damaged: delete .*FashionMNIST/raw and load again'):
        cd.fashion_mnist(train=False)
