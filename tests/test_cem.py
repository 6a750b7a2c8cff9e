"Causal Effect Maps: −CEM equals Captum's Occlusion, Grad-CAM equals pytorch-grad-cam's, CAM, errors, model untouched."
import copy

import numpy as np
import pytest
import torch
from torch import nn

from causal_nb.core import Node, model_state, seed_everything
from causal_nb.models import SmallCNN
from causal_nb.cem import (GapCNN, cam, causal_effect_map, concept_effect_map, grad_cam, map_auroc, pointing_game,
                           localisation_scores, feature_squeezing_score, CEDetector)

captum = pytest.importorskip('captum')
from captum.attr import Occlusion


@pytest.fixture(scope='module')
def net():
    seed_everything(0)
    return SmallCNN().eval()


@pytest.fixture(scope='module')
def x():
    g = torch.Generator().manual_seed(1)
    return torch.rand(5, 1, 28, 28, generator=g)


@pytest.mark.parametrize('window,stride,fill,head', [(4, 2, 0., 'softmax'), ((5, 3), (3, 2), .5, 'softmax'),
                                                     (3, 3, .2, 'sigmoid'), (7, 5, 0., 'softmax'), (28, 1, 0., 'softmax')])
def test_minus_cem_equals_captum_occlusion(net, x, window, stride, fill, head):
    t = torch.tensor([0, 3, 9, 1, 4])
    wh, ww = (window, window) if isinstance(window, int) else window
    sh, sw = (stride, stride) if isinstance(stride, int) else stride
    prob = nn.Sequential(net, nn.Softmax(1) if head == 'softmax' else nn.Sigmoid())
    ref = Occlusion(prob).attribute(x, sliding_window_shapes=(1, wh, ww), strides=(1, sh, sw), baselines=fill, target=t)[:, 0]
    ours = causal_effect_map(net, x, t, window, stride, fill, head=head)
    assert (ours + ref).abs().max() < 1e-5


def test_cem_baseline_image_and_rgb():
    seed_everything(2)
    m = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 3)).eval()
    x = torch.rand(3, 3, 16, 16); base = torch.rand(3, 3, 16, 16)
    ref = Occlusion(nn.Sequential(m, nn.Softmax(1))).attribute(x, sliding_window_shapes=(3, 4, 4), strides=(3, 2, 2),
                                                               baselines=base, target=1).sum(1)
    # Captum sums over the channel axis (every channel carries the same window value); our map is per pixel
    assert (causal_effect_map(m, x, 1, 4, 2, base) * 3 + ref).abs().max() < 1e-5


def test_memory_budget_does_not_change_the_map(net, x):
    a = causal_effect_map(net, x, 2, 4, 2)
    b = causal_effect_map(net, x, 2, 4, 2, max_bytes=200_000)
    c = causal_effect_map(net, x, 2, 4, 2, max_batch=7)
    assert torch.allclose(a, b, atol=1e-6) and torch.allclose(a, c, atol=1e-6)


def test_grad_cam_equals_pytorch_grad_cam(net, x):
    gc = pytest.importorskip('pytorch_grad_cam')
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    t = [0, 3, 9, 1, 4]
    for layer in ('conv1', 'conv2'):
        other = copy.deepcopy(net)
        ref = gc.GradCAM(model=other, target_layers=[getattr(other, layer)])(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in t])
        ours = grad_cam(net, x, torch.tensor(t), layer, normalize=True)
        assert (ours - torch.from_numpy(ref)).abs().max() < 1e-5


def test_grad_cam_against_autograd(net, x):
    "Grad-CAM by hand: per-image target logits, gradients at conv2, weights = spatial means."
    t = torch.tensor([0, 3, 9, 1, 4])
    feats = nn.Sequential(*list(net.children())[:4]); rest = nn.Sequential(*list(net.children())[4:])
    a = feats(x).detach().requires_grad_(True)
    rest(a).gather(1, t[:, None]).sum().backward()
    m = (a.grad.mean((2, 3), keepdim=True) * a).sum(1).relu().detach()
    ref = torch.nn.functional.interpolate(m[:, None], size=(28, 28), mode='bilinear', align_corners=False)[:, 0]
    assert torch.allclose(grad_cam(net, x, t, 'conv2'), ref, atol=1e-6)


def test_cam_matches_grad_cam_on_gap_model():
    seed_everything(3)
    g = GapCNN(4).eval(); x = torch.rand(6, 1, 32, 32); t = torch.tensor([0, 1, 2, 3, 0, 1])
    assert torch.allclose(grad_cam(g, x, t, 'relu3', relu=False) * 64, cam(g, x, t), atol=1e-5)


def test_model_unchanged(net, x):
    m = copy.deepcopy(net).train()
    for p in list(m.parameters())[:2]: p.requires_grad_(False)
    before = model_state(m)
    causal_effect_map(m, x, 1, 4, 2); grad_cam(m, x, 1); concept_effect_map(m, x[:2], Node('conv2', 3), 7, 7)
    feature_squeezing_score(m, x)
    with pytest.raises(ValueError): cam(m, x)
    assert model_state(m) == before
    assert all(p.grad is None for p in m.parameters())


@pytest.mark.parametrize('kwargs,match', [
    (dict(window=29), r'window \(29, 29\) is larger than the image \(28×28\)'),
    (dict(window=4, stride=0), 'stride must be positive'),
    (dict(window=4, stride=-2), 'stride must be positive'),
    (dict(window=4, stride=5), 'stride .* is larger than the window'),
    (dict(target=10), r'target 10 is out of range for a model with 10 outputs; expected 0 … 9'),
    (dict(target=-1), 'target -1 is out of range'),
    (dict(fill=2.), 'fill must lie inside bounds'),
])
def test_bad_input_value_errors(net, x, kwargs, match):
    with pytest.raises(ValueError, match=match): causal_effect_map(net, x, **kwargs)


def test_bad_input_type_errors(net, x):
    with pytest.raises(TypeError, match='window must be an integer'): causal_effect_map(net, x, window=2.5)
    with pytest.raises(TypeError, match='target must hold integer class indices'): causal_effect_map(net, x, target=torch.tensor([1.]))
    with pytest.raises(TypeError, match='model must be a torch.nn.Module'): causal_effect_map(net.state_dict(), x)
    with pytest.raises(ValueError, match='no global average pooling'): cam(net, x)
    with pytest.raises(ValueError, match='out of range'): grad_cam(net, x, 12)
    with pytest.raises(ValueError, match='not fitted'): CEDetector(net).score(x)


def test_localisation_metrics_known_answers():
    masks = torch.zeros(2, 4, 4, dtype=torch.bool); masks[:, :2] = True
    good = torch.arange(16.).flip(0).view(1, 4, 4).repeat(2, 1, 1)     # mask rows highest
    assert pointing_game(good, masks).all() and torch.allclose(map_auroc(good, masks), torch.ones(2, dtype=torch.float64))
    bad = -good
    assert not pointing_game(bad, masks).any() and torch.allclose(map_auroc(bad, masks), torch.zeros(2, dtype=torch.float64))
    df = localisation_scores({'good': good, 'bad': bad}, masks[:, None])
    assert df.loc['good', 'pointing'] == 1 and df.loc['bad', 'AUROC'] == 0


def test_cem_localises_a_planted_cause():
    "A model that reads only one 4×4 patch: the CEM evidence peaks there, AUROC 1."
    class Patch(nn.Module):
        def forward(self, x): return torch.stack([8 * x[:, 0, 10:14, 18:22].mean((1, 2)), torch.zeros(len(x))], 1)
    x = torch.rand(4, 1, 28, 28) * .5 + .5
    ev = -causal_effect_map(Patch(), x, 0, 2, 1)
    mask = torch.zeros(4, 28, 28, dtype=torch.bool); mask[:, 10:14, 18:22] = True
    assert pointing_game(ev, mask).all()
    assert (map_auroc(ev, mask) > .99).all()
