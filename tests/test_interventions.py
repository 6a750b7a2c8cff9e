"Interventions: prefix-cached sweeps equal the obvious computation and Captum's; sharded sweeps equal one process."
import json, os, subprocess, sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from causal_nb.core import Node, intervene, model_state, seed_everything
from causal_nb.models import SmallCNN, LeNet5
from causal_nb.interventions import (NetworkSCM, ZeroOut, SetTo, Scale, Apply, PixelMask, idle, effect, expected_ce,
                                     expected_ce_table)

ROOT = Path(__file__).resolve().parents[1]

def naive(model, x, layer, index, fn, head='softmax'):
    "A full forward with a hook editing one channel: the obvious way."
    def edit(o):
        o = o.clone(); o[:, index] = fn(o[:, index]); return o
    with torch.no_grad(), intervene(model, {layer: edit}):
        out = model(x)
    return torch.softmax(out, 1) if head == 'softmax' else torch.sigmoid(out)

@pytest.mark.parametrize('layer', ['conv1', 'conv2', 'fc1'])
def test_sweep_equals_hooks_smallcnn(layer):
    seed_everything(0); m = SmallCNN().eval(); x = torch.rand(8, 1, 28, 28)
    scm = NetworkSCM(m); n = getattr(m, layer).weight.shape[0]
    for iv, fn in ((ZeroOut(), torch.zeros_like), (Scale(3.), lambda t: 3 * t), (SetTo(.5), lambda t: torch.full_like(t, .5))):
        p = scm.sweep(x, [Node(layer, i) for i in range(n)], iv)
        for i in (0, n // 2, n - 1):
            torch.testing.assert_close(p[i], naive(m, x, layer, i, fn), atol=1e-6, rtol=0)

def test_sweep_through_skip_connections():
    import torchvision
    seed_everything(0); net = torchvision.models.resnet18(num_classes=5).eval(); x = torch.rand(2, 3, 48, 48)
    scm = NetworkSCM(net)
    for layer in ('layer1.0.conv1', 'layer2.1.bn2', 'layer4.1.conv2'):
        assert scm.mode(layer) == 'prefix-cache'
        p = scm.sweep(x, [Node(layer, i) for i in (0, 3, 7)])
        for k, i in enumerate((0, 3, 7)):
            torch.testing.assert_close(p[k], naive(net, x, layer, i, torch.zeros_like), atol=1e-5, rtol=0)

def test_equals_captum_layer_feature_ablation():
    from captum.attr import LayerFeatureAblation
    seed_everything(1); m = LeNet5().eval(); x = torch.rand(6, 1, 28, 28)
    scm = NetworkSCM(m)
    target = 3
    eff, _ = scm.effects(x, [Node('conv2', i) for i in range(16)])
    ours = eff[:, :, target].T                                                # (images, channels)
    fwd = lambda inp: torch.softmax(m(inp), 1)
    a = m.conv2(m.pool1(m.relu1(m.conv1(x))))
    mask = torch.arange(16).view(1, 16, 1, 1).expand(1, 16, *a.shape[-2:])
    attr = LayerFeatureAblation(fwd, m.conv2).attribute(x, target=target, layer_mask=mask, perturbations_per_eval=16)
    torch.testing.assert_close(-attr[:, :, 0, 0], ours, atol=1e-6, rtol=0)   # Captum: f(x) − f(ablated)

def test_model_left_unchanged_and_errors():
    seed_everything(0); m = SmallCNN().train(); m.conv1.weight.requires_grad_(False)
    handle = m.register_forward_pre_hook(lambda mod, i: None)
    state = model_state(m); w = {k: v.clone() for k, v in m.state_dict().items()}
    x = torch.rand(4, 1, 28, 28); scm = NetworkSCM(m)
    scm.sweep(x, [Node('conv2', 1)]); expected_ce(scm, Node('fc1', 3), x, context=PixelMask(.2))
    with pytest.raises(ValueError, match="node index 99 is out of range for layer 'conv2'"): scm.sweep(x, [Node('conv2', 99)])
    with pytest.raises(ValueError, match="is not a module of SmallCNN"): scm.sweep(x, [Node('nope', 1)])
    with pytest.raises(ValueError, match="must keep the node's shape"): scm.sweep(x, [Node('conv2', 1)], Apply(lambda t: t.mean()))
    with pytest.raises(ValueError, match="produced NaN"): expected_ce(scm, Node('conv2', 1), x, context=lambda m, x, y: x / 0 - x / 0)
    with pytest.raises(ValueError, match="data is empty"): expected_ce(scm, Node('conv2', 1), x[:0])
    with pytest.raises(TypeError, match="node must be a Node"): expected_ce(scm, 'conv2', x)
    assert model_state(m) == state and m.training and not m.conv1.weight.requires_grad
    assert all(torch.equal(v, w[k]) for k, v in m.state_dict().items())
    handle.remove()

def test_expected_ce_definition_and_ci():
    seed_everything(2); m = SmallCNN().eval(); x = torch.rand(40, 1, 28, 28)
    scm = NetworkSCM(m)
    e = expected_ce(scm, Node('conv2', 4), x, n_boot=500)
    p = torch.softmax(m(x), 1).detach(); q = naive(m, x, 'conv2', 4, torch.zeros_like)
    torch.testing.assert_close(e.per_image, (p * (q - p)).sum(1), atol=1e-6, rtol=0)
    assert e.low < e.mean < e.high
    n = expected_ce(scm, Node('conv2', 4), x, ci='normal')
    assert abs(n.mean - e.mean) < 1e-12 and n.low < n.mean < n.high

def test_sigmoid_head_effects():
    seed_everything(3); m = SmallCNN(3).eval(); x = torch.rand(5, 1, 28, 28)
    scm = NetworkSCM(m, head='sigmoid')
    e = effect(scm, x, {Node('conv2', 2): ZeroOut()})
    torch.testing.assert_close(e, naive(m, x, 'conv2', 2, torch.zeros_like, 'sigmoid') - torch.sigmoid(m(x)).detach(), atol=1e-6, rtol=0)

def test_sharded_sweep_equals_one_process(tmp_path):
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'PYTHONPATH': str(ROOT)}
    script = str(ROOT / 'tests' / 'dist_sweep.py')
    one, two = tmp_path / 'one.json', tmp_path / 'two.json'
    subprocess.run([sys.executable, script, str(one)], check=True, env=env, timeout=300)
    subprocess.run([sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node=2', script, str(two)],
                   check=True, env=env, timeout=300)
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert (a['world'], b['world']) == (1, 2) and a['n'] == b['n'] == 80
    for c in a['per_image']:
        np.testing.assert_allclose(b['per_image'][c], a['per_image'][c], atol=1e-7, rtol=0)
