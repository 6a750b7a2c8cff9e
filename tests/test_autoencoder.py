"Concept autoencoder: the backbone stays untouched (also on errors), the cache survives damage, bad input is refused."
import warnings
from collections import OrderedDict

import pytest
import torch
from torch import nn

import causal_nb.autoencoder as A
from causal_nb.autoencoder import (ConceptAutoencoder, autoencoder_layers, autoencoder_loss, concept_maps, concept_node,
                                   deep_loss, feature_layers, fidelity, fit_autoencoder, insert_autoencoder,
                                   interpretability_loss, shallow_loss)
from causal_nb.core import Node, intervenable_layers, model_state, paper_label
from causal_nb.data import ImageSet


# ---- fixtures ------------------------------------------------------------------------------------------------------
@pytest.fixture(autouse=True)
def scratch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv('CAUSAL_NB_CACHE', str(tmp_path))
    monkeypatch.setenv('CAUSAL_NB_PROGRESS', '0')


def tiny_net():
    torch.manual_seed(0)
    return nn.Sequential(OrderedDict(conv1=nn.Conv2d(1, 6, 3, padding=1), relu1=nn.ReLU(), pool1=nn.MaxPool2d(2),
                                     flatten=nn.Flatten(), fc=nn.Linear(6 * 4 * 4, 3))).eval()


class Nested(nn.Module):
    "A model whose forward is not a Sequential's: the autoencoder goes in through a hook."
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.features = nn.ModuleDict({'conv': nn.Conv2d(1, 4, 3, padding=1)})
        self.head = nn.Linear(4, 3)
    def forward(self, x): return self.head(self.features['conv'](x).relu().mean((2, 3)))


def data(n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return ImageSet(torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 3, (n,), generator=g), ['a', 'b', 'c'], name=f'rand{n}-{seed}')


def snapshot(model):
    return {k: v.clone() for k, v in model.state_dict().items()}, model_state(model)


def assert_unchanged(model, snap):
    weights, state = snap
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    assert model_state(model) == state


# ---- the user's model is never changed --------------------------------------------------------------------------
@pytest.mark.parametrize('make,layer', [(tiny_net, 'pool1'), (Nested, 'features.conv')])
def test_fit_leaves_model_unchanged(make, layer):
    net = make().train()                       # training mode and requires_grad on: both must survive
    hook_calls = []
    net.register_forward_hook(lambda m, i, o: hook_calls.append(1))
    snap = snapshot(net)
    fit = fit_autoencoder(net, layer, data(), n_concepts=4, hidden=8, epochs=1, batch_size=10)
    assert_unchanged(net, snap)
    assert fit.history.dead_concepts.iloc[-1] < 4        # some concept is alive, so gradients reach the encoder
    assert autoencoder_layers(fit.model) == [layer]
    # the copy's backbone is frozen and bitwise equal; the autoencoder did move
    assert all(not p.requires_grad for n, p in fit.model.named_parameters() if '_ae.' not in n)
    assert all(torch.equal(v, snap[0][k]) for k, v in fit.model.state_dict().items() if k in snap[0])
    torch.manual_seed(0)
    init = ConceptAutoencoder(**fit.ae.config())         # what fit_autoencoder started from (same seed)
    for part in ('encoder', 'concepts', 'decoder'):      # training moved every part of the autoencoder
        moved = [not torch.equal(p, q) for p, q in zip(getattr(fit.ae, part).parameters(), getattr(init, part).parameters())]
        assert any(moved), part


@pytest.mark.parametrize('exc', [RuntimeError('boom'), KeyboardInterrupt()])
def test_model_unchanged_when_training_fails(monkeypatch, tmp_path, exc):
    net = tiny_net().train()
    snap = snapshot(net)
    calls = []
    real = A.autoencoder_loss
    def failing(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2: raise exc
        return real(*args, **kwargs)
    monkeypatch.setattr(A, 'autoencoder_loss', failing)
    with pytest.raises(type(exc)):
        fit_autoencoder(net, 'pool1', data(), n_concepts=2, hidden=4, epochs=2, batch_size=10)
    assert_unchanged(net, snap)
    assert not list((tmp_path / 'autoencoders').glob('*.pt'))          # nothing half-written in the cache


def test_insert_does_not_share_or_hook_the_original():
    net = Nested()
    snap = snapshot(net)
    ae = ConceptAutoencoder(4, 2)
    new = insert_autoencoder(net, 'features.conv', ae)
    assert_unchanged(net, snap)
    assert not net.features['conv']._forward_hooks
    assert new.features['conv'].weight.data_ptr() != net.features['conv'].weight.data_ptr()
    x = torch.rand(3, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(new(x), net.head(ae(net.features['conv'](x)).relu().mean((2, 3))))


# ---- naming, levels, concept maps ------------------------------------------------------------------------------
def test_concept_nodes_are_levels():
    net = tiny_net()
    new = insert_autoencoder(net, 'pool1', ConceptAutoencoder(6, 3))
    assert concept_node('pool1', 2) == Node('pool1_ae.concepts', 2)
    assert 'pool1_ae.concepts' in intervenable_layers(new)
    level, index = paper_label(new, concept_node('pool1', 2))
    assert index == 2 and level > paper_label(new, Node('conv1'))[0]
    z = concept_maps(new, 'pool1', torch.rand(5, 1, 8, 8))
    assert z.shape == (5, 3, 4, 4) and bool((z >= 0).all())


def test_feature_layers():
    shapes = feature_layers(tiny_net(), torch.rand(2, 1, 8, 8))
    assert shapes == {'conv1': (6, 8, 8), 'relu1': (6, 8, 8), 'pool1': (6, 4, 4)}


# ---- losses: each term reaches what it should ------------------------------------------------------------------
def test_loss_gradients():
    net = tiny_net()
    ae = ConceptAutoencoder(6, 3, hidden=4)
    new = insert_autoencoder(net, 'pool1', ae)
    x = torch.rand(8, 1, 8, 8)
    with torch.no_grad():
        a = nn.Sequential(net.conv1, net.relu1, net.pool1)(x); target = net(x)
    def grads(**lam):
        ae.zero_grad()
        z = ae.encode(a); r = ae.decode(z)
        autoencoder_loss(a, r, z, target, new.fc(new.flatten(r)),
                         **{'lam_shallow': 0, 'lam_deep': 0, 'lam_interp': 0, **lam}).total.backward()
        return {part: sum(float(p.grad.abs().sum()) for p in getattr(ae, part).parameters() if p.grad is not None)
                for part in ('encoder', 'concepts', 'decoder')}
    for lam in ({'lam_shallow': 1}, {'lam_deep': 1}):
        g = grads(**lam)
        assert all(v > 0 for v in g.values()), (lam, g)
    g = grads(lam_interp=1)
    assert g['encoder'] > 0 and g['decoder'] == 0
    assert all(p.grad is None for n, p in new.named_parameters() if '_ae.' not in n)


def test_loss_values():
    a = torch.rand(2, 3, 4, 4)
    assert float(shallow_loss(a, a)) == 0
    logits = torch.randn(5, 4)
    assert abs(float(deep_loss(logits, logits))) < 1e-6
    assert float(deep_loss(logits, logits.flip(0))) > 0
    assert abs(float(deep_loss(logits, logits, head='sigmoid'))) < 1e-6
    z = torch.rand(2, 3, 5, 5)
    assert torch.allclose(interpretability_loss(z), interpretability_loss(7 * z))


# ---- the cache ----------------------------------------------------------------------------------------------------
def test_cache_hit_and_key():
    net, d = tiny_net(), data()
    kw = dict(n_concepts=2, hidden=4, epochs=1, batch_size=10)
    first = fit_autoencoder(net, 'pool1', d, **kw)
    again = fit_autoencoder(net, 'pool1', d, **kw)
    assert (first.cached, again.cached) == (False, True)
    assert all(torch.equal(p, q) for p, q in zip(first.ae.state_dict().values(), again.ae.state_dict().values()))
    assert not fit_autoencoder(net, 'pool1', d, **{**kw, 'lam_interp': .5}).cached
    assert not fit_autoencoder(net, 'pool1', data(seed=1), **kw).cached
    other = tiny_net(); other.fc.bias.data += 1
    assert not fit_autoencoder(other, 'pool1', d, **kw).cached
    assert not fit_autoencoder(net, 'pool1', d, cache=False, **kw).cached


@pytest.mark.parametrize('damage', [b'garbage', b'', 'truncate', 'wrong-keys'])
def test_corrupt_cache_is_rebuilt(damage):
    net, d = tiny_net(), data()
    kw = dict(n_concepts=2, hidden=4, epochs=1, batch_size=10)
    path = fit_autoencoder(net, 'pool1', d, **kw).path
    if damage == 'truncate': path.write_bytes(path.read_bytes()[:100])
    elif damage == 'wrong-keys': torch.save({'state_dict': {}}, path)
    else: path.write_bytes(damage)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        redo = fit_autoencoder(net, 'pool1', d, **kw)
    assert not redo.cached and any('unreadable autoencoder cache' in str(w.message) for w in caught)
    assert autoencoder_layers(redo.model) == ['pool1']
    assert fit_autoencoder(net, 'pool1', d, **kw).cached


def test_half_loaded_cache_is_refitted_from_the_seeded_start():
    "A cache whose weights load only in part (one key missing) is fitted again from the seeded autoencoder, as without a cache."
    net, d = tiny_net(), data()
    kw = dict(n_concepts=2, hidden=4, epochs=1, batch_size=10)
    first = fit_autoencoder(net, 'pool1', d, **kw)
    saved = torch.load(first.path, weights_only=True)
    sd = {k: v + 1 for k, v in saved['state_dict'].items()}; sd.pop(next(iter(sd)))
    torch.save({**saved, 'state_dict': sd}, first.path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        redo = fit_autoencoder(net, 'pool1', d, **kw)
    assert not redo.cached and any('unreadable autoencoder cache' in str(w.message) for w in caught)
    assert autoencoder_layers(redo.model) == ['pool1']
    assert all(torch.equal(p, q) for p, q in zip(first.ae.state_dict().values(), redo.ae.state_dict().values()))


# ---- fidelity ----------------------------------------------------------------------------------------------------
def test_fidelity_of_identity_like_model():
    net, d = tiny_net(), data()
    fit = fit_autoencoder(net, 'pool1', d, n_concepts=2, hidden=4, epochs=1, batch_size=10)
    fid = fidelity(net, fit.model, d, batch_size=7)
    assert fid.n == len(d) and 0 <= fid.agreement <= 1 and fid.mean_kl >= 0
    assert fid.reconstruction.index.tolist() == ['pool1']
    assert fid.summary()['accuracy_drop'] == pytest.approx(fid.accuracy_original - fid.accuracy_autoencoded)
    snap = snapshot(fit.model)
    fidelity(net, fit.model, d)
    assert_unchanged(fit.model, snap)


def test_fidelity_sigmoid_head():
    net = tiny_net()
    g = torch.Generator().manual_seed(0)
    d = ImageSet(torch.rand(20, 1, 8, 8, generator=g), (torch.rand(20, 3, generator=g) > .5).float(), ['a', 'b', 'c'])
    new = insert_autoencoder(net, 'pool1', ConceptAutoencoder(6, 2))
    fid = fidelity(net, new, d)
    assert 0 <= fid.agreement <= 1 and fid.mean_kl >= 0


# ---- bad input ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize('call,err,msg', [
    (lambda n, d: fit_autoencoder(n, 'conv9', d), ValueError, "layer 'conv9' is not a module"),
    (lambda n, d: fit_autoencoder(n, 'fc', d), ValueError, "layer 'fc' does not output a 4-D feature map"),
    (lambda n, d: fit_autoencoder(n, 'pool1', d, n_concepts=0), ValueError, 'n_concepts must be a positive integer, got 0'),
    (lambda n, d: fit_autoencoder(n, 'pool1', d, n_concepts=True), TypeError, 'n_concepts must be an integer'),
    (lambda n, d: fit_autoencoder(n, 'pool1', d, epochs=0), ValueError, 'epochs must be a positive integer'),
    (lambda n, d: fit_autoencoder(n, 'pool1', d, lr=0), ValueError, 'lr must be a positive number'),
    (lambda n, d: fit_autoencoder(n, 'pool1', d, lr=float('inf')), ValueError, 'lr must be a positive number, got inf'),   # was accepted
    (lambda n, d: fit_autoencoder(n, 'pool1', d, batch_size=2.), TypeError, 'batch_size must be an integer, got float 2.0'),
    (lambda n, d: fit_autoencoder(n, 'pool1', d, lam_deep=float('nan')), ValueError, 'lam_deep must be a finite number'),
    (lambda n, d: fit_autoencoder(n, 'pool1', d.images), TypeError, 'data must be an ImageSet'),
    (lambda n, d: fit_autoencoder('net', 'pool1', d), TypeError, 'model must be a torch.nn.Module'),
    (lambda n, d: insert_autoencoder(n, 'conv1', ConceptAutoencoder(5, 2)), ValueError, 'channel mismatch'),
    (lambda n, d: insert_autoencoder(n, '', ConceptAutoencoder(6, 2)), ValueError, 'the whole model'),
    (lambda n, d: insert_autoencoder(n, 3, ConceptAutoencoder(6, 2)), TypeError, 'layer must be a dotted module name'),
    (lambda n, d: insert_autoencoder(n, 'pool1', nn.Conv2d(6, 6, 1)), TypeError, 'ae must be a ConceptAutoencoder'),
    (lambda n, d: insert_autoencoder(insert_autoencoder(n, 'pool1', ConceptAutoencoder(6, 2)), 'pool1_ae.encoder.0',
                                     ConceptAutoencoder(3, 2)), ValueError, 'part of an inserted autoencoder'),
    (lambda n, d: insert_autoencoder(n, 'fc', ConceptAutoencoder(6, 2))(d.images), ValueError, 'expects a 4-D feature map'),
    (lambda n, d: fidelity(n, n, d), ValueError, 'no ConceptAutoencoder inserted'),
    (lambda n, d: concept_maps(insert_autoencoder(n, 'pool1', ConceptAutoencoder(6, 2)), 'conv1', d.images),
     ValueError, "no autoencoder after layer 'conv1'"),
    (lambda n, d: ConceptAutoencoder(0, 2), ValueError, 'in_channels must be a positive integer'),
    (lambda n, d: ConceptAutoencoder(6, 2, kernel_size=4), ValueError, 'kernel_size must be odd'),
])
def test_bad_input(call, err, msg):
    with pytest.raises(err, match=msg): call(tiny_net(), data())


def test_channel_mismatch_at_run_time_names_the_fix():
    # MaxPool has no static channel count: the mismatch shows on the first forward, with the fix
    new = insert_autoencoder(tiny_net(), 'pool1', ConceptAutoencoder(5, 2))
    with pytest.raises(ValueError, match=r'got activations of shape \(2, 6, 4, 4\).*in_channels=6'):
        new(torch.rand(2, 1, 8, 8))
