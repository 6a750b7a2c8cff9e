"Causal Effect Maps: −CEM equals Captum's Occlusion, Grad-CAM equals pytorch-grad-cam's, CAM, errors, model untouched."
import copy

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


def _resnet18_features(m, x):
    return m.layer4(m.layer3(m.layer2(m.layer1(m.maxpool(m.relu(m.bn1(m.conv1(x))))))))


@pytest.mark.parametrize('arch', ['resnet18', 'densenet121'])
def test_cam_on_torchvision_models_that_pool_with_functions(arch):
    "CAM by hand: the class weights on the maps entering the (functional) global pooling; its mean is the logit minus the bias."
    tv = pytest.importorskip('torchvision')
    torch.manual_seed(4)
    m = getattr(tv.models, arch)(num_classes=4).eval()
    x = torch.rand(3, 3, 32, 32); t = torch.tensor([0, 3, 2])
    with torch.no_grad():
        f = _resnet18_features(m, x) if arch == 'resnet18' else torch.nn.functional.relu(m.features(x))
        fc = m.fc if arch == 'resnet18' else m.classifier
        logits = m(x)
    low = cam(m, x, t, upsample=False)
    torch.testing.assert_close(low, torch.einsum('nk,nkhw->nhw', fc.weight[t], f), atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(low.mean((1, 2)), logits.gather(1, t[:, None])[:, 0] - fc.bias[t], atol=1e-4, rtol=1e-4)
    up = torch.nn.functional.interpolate(low[:, None], size=(32, 32), mode='bilinear', align_corners=False)[:, 0]
    torch.testing.assert_close(cam(m, x, t), up)


def test_cam_equals_pytorch_grad_cam_on_resnet18():
    "On a GAP + Linear model Grad-CAM's weights are CAM's / (h·w): pytorch-grad-cam's normalised map is our normalised CAM."
    tv = pytest.importorskip('torchvision'); gc = pytest.importorskip('pytorch_grad_cam')
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    from causal_nb.cem import _minmax, _upsample
    torch.manual_seed(5)
    m = tv.models.resnet18(num_classes=4).eval(); x = torch.rand(2, 3, 64, 64); t = [1, 2]
    other = copy.deepcopy(m)
    ref = gc.GradCAM(model=other, target_layers=[other.layer4])(input_tensor=x, targets=[ClassifierOutputTarget(c) for c in t])
    ours = _minmax(_upsample(_minmax(cam(m, x, torch.tensor(t), relu=True, upsample=False)), (64, 64)))
    assert (ours - torch.from_numpy(ref)).abs().max() < 1e-4


def test_chexnet_fig3_maps_include_cam():
    "The paper's Fig. 3 setting: DenseNet121 with the CheXNet head (sigmoid, wrapped in Normalized) gets all three maps."
    pytest.importorskip('torchvision')
    import warnings
    from causal_nb.cem import compare_maps
    from causal_nb.models import densenet121_chexnet
    torch.manual_seed(6)
    with warnings.catch_warnings(): warnings.simplefilter('ignore'); m = densenet121_chexnet().eval()   # no weights here: random
    x = torch.rand(2, 3, 32, 32)
    m.train(); before = model_state(m); hooks = sum(len(k._forward_hooks) + len(k._forward_pre_hooks) for k in m.modules())
    with warnings.catch_warnings():
        warnings.simplefilter('error')                                    # nothing may be left out with only a warning
        maps = compare_maps(m, x, 5, window=8, stride=8, head='sigmoid')
    assert set(maps) == {'CEM', 'CAM', 'Grad-CAM'} and all(v.shape == (2, 32, 32) for v in maps.values())
    assert model_state(m) == before and sum(len(k._forward_hooks) + len(k._forward_pre_hooks) for k in m.modules()) == hooks


def test_compare_maps_never_drops_a_method_silently(net, x):
    from causal_nb.cem import compare_maps
    with pytest.warns(UserWarning, match='CAM left out: model \\(SmallCNN\\) has no global average pooling'):
        maps = compare_maps(net, x, 1)
    assert set(maps) == {'CEM', 'Grad-CAM'}
    with pytest.raises(ValueError, match='no global average pooling'): compare_maps(net, x, 1, methods=('CEM', 'CAM'))
    with pytest.raises(ValueError, match="methods must name 'CEM', 'CAM', 'Grad-CAM', .*got 'LIME'"):
        compare_maps(net, x, 1, methods=['LIME'])


class _MeanPool(nn.Module):
    "Global average pooling written as a tensor method, then dropout and a Linear."
    def __init__(self, how):
        super().__init__(); self.how = how; self.conv = nn.Conv2d(1, 5, 3, padding=1); self.drop = nn.Dropout(.5); self.fc = nn.Linear(5, 3)
    def forward(self, x):
        h = self.conv(x).relu()
        p = h.mean((2, 3)) if self.how == 'mean' else torch.nn.functional.adaptive_avg_pool2d(h, 1).view(h.shape[0], -1)
        return self.fc(self.drop(p))


@pytest.mark.parametrize('how', ['mean', 'adaptive'])
def test_cam_finds_functional_pooling(how):
    from causal_nb.cem import _cam_parts
    torch.manual_seed(8)
    m = _MeanPool(how); x = torch.rand(3, 1, 10, 10)                      # left in training mode: cam must not use dropout
    assert _cam_parts(m)[2] == 'traced'
    with torch.no_grad(): want = torch.einsum('nk,nkhw->nhw', m.fc.weight[[1, 1, 1]], m.conv(x).relu())
    torch.testing.assert_close(cam(m, x, 1, upsample=False), want)
    assert m.training


class _BranchyGap(nn.Module):
    "A GAP classifier torch.fx cannot trace (data-dependent branch): CAM falls back to the pooling module and the Linear after it."
    def __init__(self):
        super().__init__(); self.conv = nn.Conv2d(1, 6, 3, padding=1); self.pool = nn.AdaptiveAvgPool2d(1); self.fc = nn.Linear(6, 3)
    def forward(self, x):
        h = self.conv(x)
        if h.mean() > 100: h = -h
        return self.fc(self.pool(h.relu()).flatten(1))


def test_cam_on_an_untraceable_model_uses_the_pooling_module():
    from causal_nb.cem import _cam_parts
    torch.manual_seed(7)
    m = _BranchyGap().eval(); x = torch.rand(4, 1, 12, 12)
    assert _cam_parts(m)[2].startswith('module order (torch.fx cannot trace it')
    with torch.no_grad(): want = torch.einsum('nk,nkhw->nhw', m.fc.weight[[2] * 4], m.conv(x).relu())
    torch.testing.assert_close(cam(m, x, 2, upsample=False), want)


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
