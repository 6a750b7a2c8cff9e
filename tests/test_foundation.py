"Foundation tests beyond the chapters' own: parallel caches, interrupted writes, the state guard as a property, README freshness."
import multiprocessing as mp, os, subprocess, sys
from pathlib import Path

import pytest, torch
from torch import nn
from hypothesis import given, settings, strategies as st

from causal_nb.core import atomic_save, safe_load, check_images, preserve_state, model_state, intervene, CacheError
from causal_nb.data import load_data, causal_shapes, fashion_mnist
from causal_nb.models import build_model, train, predict, evaluate, SmallCNN

ROOT = Path(__file__).resolve().parent.parent


def test_readme_is_rendered_from_index():
    r = subprocess.run([sys.executable, str(ROOT / 'tools' / 'render_readme.py'), '--check'], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr + r.stdout


def _train_in_child(cache, q):
    os.environ['CAUSAL_NB_CACHE'] = cache; os.environ['CAUSAL_NB_PROGRESS'] = '0'
    torch.set_num_threads(1)
    data = load_data('digits', limit=300)
    res = train(build_model('small-cnn', data), data, epochs=2)
    q.put((res.cached, [v.sum().item() for v in res.model.state_dict().values()]))


def test_parallel_training_trains_once(tmp_path):
    "Two processes asking for the same model at once: one trains, the other waits on the lock and loads its result."
    ctx = mp.get_context('spawn'); q = ctx.Queue()
    procs = [ctx.Process(target=_train_in_child, args=(str(tmp_path), q)) for _ in range(2)]
    for p in procs: p.start()
    out = [q.get(timeout=300) for _ in procs]
    for p in procs: p.join(60)
    assert sorted(c for c, _ in out) == [False, True]
    assert out[0][1] == out[1][1]
    assert [f.name for f in (tmp_path / 'models').iterdir() if '.tmp' in f.name] == []      # no temporary file of a write


def test_interrupted_save_keeps_old_file(tmp_path, monkeypatch):
    "A write that dies half-way (here: an exception inside torch.save) leaves the previous file intact and no temp file."
    path = atomic_save({'w': torch.ones(3)}, tmp_path / 'm.pt')
    real_save = torch.save
    def dying_save(obj, f, *a, **k):
        f.write(b'partial'); raise KeyboardInterrupt
    monkeypatch.setattr(torch, 'save', dying_save)
    with pytest.raises(KeyboardInterrupt): atomic_save({'w': torch.zeros(3)}, path)
    monkeypatch.setattr(torch, 'save', real_save)
    assert torch.equal(safe_load(path)['w'], torch.ones(3))
    assert sorted(f.name for f in tmp_path.iterdir()) == ['m.pt']


def test_interrupted_byte_write_keeps_old_file_and_mode(tmp_path):
    "classroom's writer (bytes, no torch): a failed write leaves the previous file and no temporary file; files get the umask's mode."
    from causal_nb.classroom import _write_atomic
    path = tmp_path / 'notes.json'
    _write_atomic(path, b'{"v": 1}')
    with pytest.raises(TypeError): _write_atomic(path, 'text, not bytes')       # fails inside the write
    assert path.read_bytes() == b'{"v": 1}' and sorted(f.name for f in tmp_path.iterdir()) == ['notes.json']
    umask = os.umask(0); os.umask(umask)
    assert oct(path.stat().st_mode & 0o777) == oct(0o666 & ~umask)
    assert oct(atomic_save({'w': torch.ones(1)}, tmp_path / 'm.pt').stat().st_mode & 0o777) == oct(0o666 & ~umask)


def test_truncated_cache_is_reported(tmp_path):
    p = atomic_save({'w': torch.ones(1000)}, tmp_path / 'm.pt')
    p.write_bytes(p.read_bytes()[:100])
    with pytest.raises(CacheError, match='delete it to rebuild it'): safe_load(p)


def test_missing_data_files_name_the_fixes(tmp_path, monkeypatch):
    with pytest.raises(FileNotFoundError) as e: fashion_mnist(tmp_path / 'empty')
    msg = str(e.value)
    assert 'root argument' in msg and 'CAUSAL_NB_FASHION_MNIST' in msg and 'dataset-fashion-mnist' in msg


@settings(max_examples=25, deadline=None)
@given(modes=st.lists(st.booleans(), min_size=4, max_size=4), flags=st.lists(st.booleans(), min_size=4, max_size=4),
       n_hooks=st.integers(0, 3), fail=st.booleans())
def test_guard_restores_any_change(modes, flags, n_hooks, fail):
    net = nn.Sequential(nn.Linear(2, 3), nn.Dropout(), nn.Linear(3, 2))
    before = model_state(net); weights = [p.detach().clone() for p in net.parameters()]
    try:
        with preserve_state(net):
            for m, t in zip(net.modules(), modes): m.training = t
            for p, f in zip(net.parameters(), flags): p.requires_grad_(f)
            for i in range(n_hooks): net[i % 3].register_forward_hook(lambda m, i, o: o * 2)
            if any(flags): net(torch.randn(4, 2)).sum().backward()
            if fail: raise ValueError('inside')
    except ValueError: pass
    after = model_state(net)
    assert after.training == before.training and after.requires_grad == before.requires_grad and after.hooks == before.hooks
    assert all(g is None for g in after.grads.values())
    assert all(torch.equal(a, b) for a, b in zip(weights, net.parameters()))


@settings(max_examples=30, deadline=None)
@given(lo=st.floats(-3, 3), span=st.floats(.1, 3), shift=st.floats(.01, 5))
def test_out_of_bounds_images_are_rejected(lo, span, shift):
    x = torch.full((1, 1, 2, 2), lo + span / 2)
    check_images(x, bounds=(lo, lo + span))
    x[0, 0, 0, 0] = lo + span + shift
    with pytest.raises(ValueError, match='outside bounds'): check_images(x, bounds=(lo, lo + span))


def test_predict_and_evaluate_leave_model_unchanged():
    data = causal_shapes(64, seed=0)
    net = SmallCNN(3, in_size=32).train()
    net.fc1.weight.requires_grad_(False)
    before = model_state(net); w = {k: v.clone() for k, v in net.state_dict().items()}
    predict(net, data.images); evaluate(net, data)
    after = model_state(net)
    assert (after.training, after.requires_grad, after.hooks) == (before.training, before.requires_grad, before.hooks)
    assert all(torch.equal(v, w[k]) for k, v in net.state_dict().items())


def test_intervene_removes_hooks_on_keyboard_interrupt():
    net = nn.Sequential(nn.Linear(2, 2), nn.ReLU())
    with pytest.raises(KeyboardInterrupt):
        with intervene(net, {'1': torch.zeros_like}): raise KeyboardInterrupt
    assert len(net[1]._forward_hooks) == 0


def test_cli_rejects_unknown_model(tmp_path):
    cli = Path(sys.executable).with_name('causal-nb')
    r = subprocess.run([str(cli), 'report', '--data', 'digits', '--model', 'resnet9000', '--out', str(tmp_path)],
                       capture_output=True, text=True)
    assert r.returncode == 2 and '--model: expected one of' in (r.stderr + r.stdout)
