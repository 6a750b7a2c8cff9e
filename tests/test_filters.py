"""Filter SCMs, counterfactual filter importance, ablation and pruning curves (chapter 09)."""
import copy

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from causal_nb.core import intervene, model_state
from causal_nb.data import causal_shapes
from causal_nb.filters import (FilterSCM, SmallResNet, ablate_filters, auc, compare_rankings, conv_layers, filter_importance,
                               filter_parents, filter_responses, pruning_curve, pruning_curves)
from causal_nb.models import SmallCNN, train


@pytest.fixture(scope='module')
def shapes():
    return causal_shapes(600, seed=11)


@pytest.fixture(scope='module')
def cnn(shapes):
    return train(SmallCNN(3, 1, 32), shapes, epochs=2, progress_bar=False).model


def snapshot(m):
    return model_state(m), {k: v.clone() for k, v in m.state_dict().items()}, sum(len(x._forward_hooks) for x in m.modules())


def unchanged(m, snap):
    st, sd, hooks = snap
    now = model_state(m)
    return (now.training == st.training and now.requires_grad == st.requires_grad and
            all(torch.equal(v, m.state_dict()[k]) for k, v in sd.items()) and
            sum(len(x._forward_hooks) for x in m.modules()) == hooks)


def test_bad_input_is_refused_with_names(cnn, shapes):
    with pytest.raises(ValueError, match="layer 'fc1' is a Linear, not a convolution"): filter_importance(cnn, 'fc1', shapes)
    with pytest.raises(ValueError, match="layer 'nope' is not a module"): filter_importance(cnn, 'nope', shapes)
    with pytest.raises(ValueError, match=r"ks must be counts in \[0, 64\]"): pruning_curve(cnn, 'conv2', shapes, list(range(64)), ks=[100])
    with pytest.raises(ValueError, match=r"filters must be indices in \[0, 31\]"): ablate_filters(cnn, 'conv1', [32], shapes)
    with pytest.raises(ValueError, match='data is empty'): filter_importance(cnn, 'conv2', shapes.images[:0])
    with pytest.raises(ValueError, match='at least 8 images'): FilterSCM(cnn, ['conv1', 'conv2']).fit(shapes.images[:4])
    dead = copy.deepcopy(cnn); dead.conv1.weight.data[5] = 0
    with pytest.raises(ValueError, match=r"constant 'frobenius' values for filters \[5\] of layer 'conv1'"):
        FilterSCM(dead, ['conv1', 'conv2']).fit(shapes)


def test_no_function_changes_the_model(cnn, shapes):
    cnn.train()                                      # a model left in training mode must stay so
    snap = snapshot(cnn)
    try:
        for m in ('counterfactual', 'magnitude', 'scm'): filter_importance(cnn, 'conv2', shapes, m, n_images=64)
        ablate_filters(cnn, 'conv2', [0, 1], shapes, n_images=64)
        pruning_curves(cnn, 'conv2', shapes.subset(64), shapes.subset(64, seed=1), seeds=2)
        filter_responses(cnn, ['conv1'], shapes, n_images=32)
        with pytest.raises(ValueError): ablate_filters(cnn, 'conv2', [99], shapes)
        assert unchanged(cnn, snap)
    finally: cnn.eval()


def test_network_importance_equals_a_hook_loop(cnn, shapes):
    x = shapes.images[:48]
    imp = filter_importance(cnn, 'conv1', x, 'counterfactual', n_images=None)
    with torch.inference_mode(): p = cnn(x).softmax(1)
    pred = p.argmax(1)
    loop = []
    for j in range(32):
        with intervene(cnn, {'conv1': lambda o, j=j: o.index_fill(1, torch.tensor([j]), 0.)}), torch.inference_mode():
            loop.append(float((cnn(x).softmax(1) - p).gather(1, pred[:, None]).abs().mean()))
    np.testing.assert_allclose(imp['importance'].to_numpy(), loop, atol=1e-6)
    assert sorted(imp['rank']) == list(range(1, 33))


def test_importance_through_skip_connections():
    torch.manual_seed(0)
    net = SmallResNet(8).eval()
    x = torch.rand(16, 1, 28, 28)
    layer = 'layer2.0.conv2'                         # its output is added to the shortcut before the ReLU
    imp = filter_importance(net, layer, x, 'counterfactual', n_images=None)
    with torch.inference_mode(): p = net(x).softmax(1)
    pred = p.argmax(1)
    with intervene(net, {layer: lambda o: o.index_fill(1, torch.tensor([3]), 0.)}), torch.inference_mode():
        want = (net(x).softmax(1) - p).gather(1, pred[:, None]).abs().mean()
    assert abs(imp['importance'][3] - float(want)) < 1e-6


def test_scm_recovers_a_known_structure():
    # two layers with no non-linearity between them: each second-layer mean is an exact affine function of the first's
    torch.manual_seed(1)
    net = nn.Sequential(nn.Conv2d(3, 5, 1), nn.Conv2d(5, 4, 1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 3))
    data = torch.rand(300, 3, 8, 8)          # independent channels: the first layer's 5 means span 3 dimensions
    scm = FilterSCM(net, ['0', '1'], summary='mean').fit(data)
    eq = scm.equations.query("target == '1'")
    assert len(eq) == 4 and (eq['r2'] > 1 - 1e-6).all()
    # (5 filters from 3 channels are collinear, so the coefficients are not identified; their predictions are)
    # a counterfactual changes nothing when the value set is the value observed (abduction keeps each image's residuals)
    probe = data[:1]
    v = float(filter_responses(net, ['0'], probe, 'mean')['0'][0, 2])
    p_do, p_obs = scm.counterfactual(probe, '0', [2], value=v)
    torch.testing.assert_close(p_do[0], p_obs, atol=1e-4, rtol=1e-4)


def test_filter_dag_follows_skip_connections():
    "The parents of every conv of a ResNet14, written out by hand from its blocks (identity shortcuts pass earlier convs on)."
    net = SmallResNet(14)
    scm = FilterSCM(net, conv_layers(net))
    assert scm.structure == 'traced'
    b10 = {'layer1.0.conv2', 'conv1'}                                   # what block layer1.0 outputs
    b11 = b10 | {'layer1.1.conv2'}
    b20 = {'layer2.0.conv2', 'layer2.0.shortcut.0'}
    b21 = b20 | {'layer2.1.conv2'}
    b30 = {'layer3.0.conv2', 'layer3.0.shortcut.0'}
    want = {'conv1': set(), 'layer1.0.conv1': {'conv1'}, 'layer1.0.conv2': {'layer1.0.conv1'},
            'layer1.1.conv1': b10, 'layer1.1.conv2': {'layer1.1.conv1'},
            'layer2.0.conv1': b11, 'layer2.0.conv2': {'layer2.0.conv1'}, 'layer2.0.shortcut.0': b11,
            'layer2.1.conv1': b20, 'layer2.1.conv2': {'layer2.1.conv1'},
            'layer3.0.conv1': b21, 'layer3.0.conv2': {'layer3.0.conv1'}, 'layer3.0.shortcut.0': b21,
            'layer3.1.conv1': b30, 'layer3.1.conv2': {'layer3.1.conv1'},
            'output': b30 | {'layer3.1.conv2'}}
    assert {k: set(v) for k, v in scm.parents.items()} == want
    # a subset of layers: paths through left-out convs count, paths through kept ones stop there
    sub = FilterSCM(net, ['layer3.0.conv2', 'conv1', 'layer2.0.conv1'])
    assert sub.layers == ['conv1', 'layer2.0.conv1', 'layer3.0.conv2']          # put in forward order
    assert sub.parents == {'conv1': [], 'layer2.0.conv1': ['conv1'],
                           # conv1 also through layer2.0's shortcut conv (left out)
                           'layer3.0.conv2': ['conv1', 'layer2.0.conv1'],
                           # and both through layer3.0's shortcut conv
                           'output': ['conv1', 'layer2.0.conv1', 'layer3.0.conv2']}


class TwoBranches(nn.Module):
    "Two 1×1 conv branches on disjoint input channels, merged by a 1×1 conv: `c` has two parents, `b` none."
    def __init__(self):
        super().__init__()
        self.a, self.b, self.c = nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 1), nn.Conv2d(6, 4, 1)
        self.head = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3))
    def forward(self, x): return self.head(self.c(torch.cat([self.a(x[:, :3]), self.b(x[:, 3:])], 1)))


def test_dag_scm_is_exact_on_a_known_two_parent_structure():
    torch.manual_seed(2)
    net = TwoBranches().eval(); data = torch.rand(300, 6, 8, 8)
    scm = FilterSCM(net, ['a', 'b', 'c'], summary='mean').fit(data)
    assert scm.parents == {'a': [], 'b': [], 'c': ['a', 'b'], 'output': ['c']}   # a chain would say b <- a and c <- b
    eq = scm.equations.query("target == 'c'")
    assert len(eq) == 4 and (eq['r2'] > 1 - 1e-6).all() and set(eq['parents']) == {'a, b'}
    W = net.c.weight.detach()[:, :, 0, 0].double()                            # the true coefficients on [a, b]
    np.testing.assert_allclose(scm._eq['c'][1].coef_, W.numpy(), atol=1e-4)
    s, p = scm.values(data[:5])
    w = scm.propagate(s, p, 'a', [1], value=0.)
    torch.testing.assert_close(w['b'][0], s['b'])                              # not a descendant of a: unchanged
    want = s['c'] + (0. - s['a'][:, 1:2]) * W[:, 1].float()                    # the exact effect on c's means
    torch.testing.assert_close(w['c'][0], want, atol=1e-4, rtol=1e-4)


class Untraceable(nn.Module):
    def __init__(self):
        super().__init__(); self.a, self.b = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3); self.fc = nn.Linear(2, 2)
    def forward(self, x):
        h = self.a(x)
        if h.sum() > 0: h = h.relu()                                          # data-dependent control flow: fx cannot trace it
        return self.fc(self.b(h).mean((2, 3)))


def test_untraceable_model_falls_back_to_a_chain_with_a_note():
    with pytest.warns(UserWarning, match='cannot be traced by torch.fx.*Falling back to a chain'):
        scm = FilterSCM(Untraceable(), ['a', 'b'])
    assert scm.structure.startswith('chain') and scm.parents == {'a': [], 'b': ['a'], 'output': ['b']}
    with pytest.raises(ValueError, match=r"layers \['b'\] are never called"): filter_parents(_Unused(), ['a', 'b'])


class _Unused(nn.Module):
    def __init__(self):
        super().__init__(); self.a, self.b = nn.Conv2d(1, 2, 3), nn.Conv2d(2, 2, 3)
    def forward(self, x): return self.a(x).mean((1, 2, 3))


def test_other_regressors_plug_in(cnn, shapes):
    from sklearn.tree import DecisionTreeRegressor
    scm = FilterSCM(cnn, ['conv1', 'conv2'], regressor=lambda: DecisionTreeRegressor(max_depth=3)).fit(shapes, n_images=200)
    assert set(scm.equations['target']) == {'conv2', 'output'}
    imp = filter_importance(cnn, 'conv2', shapes, 'scm', scm=scm, n_images=64)
    assert len(imp) == 64 and np.isfinite(imp['importance']).all()
    with pytest.raises(TypeError, match='regressor must be a callable'): FilterSCM(cnn, ['conv1'], regressor=3)


def test_ablation_and_pruning_curves(cnn, shapes):
    held = causal_shapes(300, seed=12)
    order = list(filter_importance(cnn, 'conv2', shapes, n_images=128)['importance'].sort_values(ascending=False).index)
    curve = pruning_curve(cnn, 'conv2', held, order, ks=[0, 8, 32, 64])
    with torch.inference_mode(): base = float((cnn.eval()(held.images).argmax(1) == held.labels).float().mean())
    assert abs(curve[0] - base) < 1e-6                          # nothing removed: the intact model
    assert abs(curve[64] - ablate_filters(cnn, 'conv2', range(64), held).accuracy) < 1e-6   # everything removed
    assert curve[64] < curve[0]
    ab = ablate_filters(cnn, 'conv2', order[:8], held)
    assert abs(ab.accuracy - pruning_curve(cnn, 'conv2', held, order, ks=[8])[8]) < 1e-6
    c = pruning_curves(cnn, 'conv2', shapes.subset(128), held, seeds=3)
    assert list(c.columns) == ['counterfactual', 'magnitude', 'random', 'random sd']
    assert set(c.attrs['auc']) == {'counterfactual', 'magnitude', 'random'}
    assert np.ptp(c.loc[0, ['counterfactual', 'magnitude', 'random']].to_numpy(float)) < 1e-6   # nothing removed: the same model
    assert auc(pd.Series([1., 1.], index=[0, 10])) == pytest.approx(1.) and auc(pd.Series([1., 0.], index=[0, 4])) == pytest.approx(.5)


def test_rank_comparison():
    a = pd.DataFrame({'importance': [4., 3., 2., 1.]}); b = pd.DataFrame({'importance': [1., 2., 3., 4.]})
    assert compare_rankings(a, a)['spearman'] == pytest.approx(1.) and compare_rankings(a, b)['kendall'] == pytest.approx(-1.)
    assert compare_rankings(a, b, k=2)['top2_overlap'] == 0
    with pytest.raises(ValueError, match='same filters'): compare_rankings(a, b.iloc[:3])
