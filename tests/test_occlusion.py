"""Incremental occlusion: the exact engine gives causal_effect_map's map (and so Captum's Occlusion) on sequential, VGG-style,
residual, dense and depthwise nets; fallbacks warn and stay exact; the approximate modes are measured, not assumed."""
import warnings

import pytest
import torch
import torchvision
from torch import nn

from causal_nb.cem import causal_effect_map
from causal_nb.core import Normalized, model_state, seed_everything
from causal_nb.models import SmallCNN
from causal_nb.occlusion import IncrementalOcclusion, Span, sliding_span, union_span


def vgg_style():
    seed_everything(3)
    m = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU(inplace=True), nn.Conv2d(8, 8, 3, padding=1), nn.ReLU(),
                      nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.BatchNorm2d(16), nn.ReLU(),
                      nn.MaxPool2d(3, 2, padding=1, ceil_mode=True),
                      nn.Conv2d(16, 16, 3, stride=2, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 2 * 2, 7))
    for b in m.modules():
        if isinstance(b, nn.BatchNorm2d): b.running_mean.uniform_(-.2, .2); b.running_var.uniform_(.5, 2.)
    return m.eval()


def incremental(m, x, *a, **kw):
    return causal_effect_map(m, x, *a, engine=IncrementalOcclusion(), **kw)


@pytest.mark.parametrize('window,stride,fill,head', [(4, 2, 0., 'softmax'), ((5, 3), (3, 2), .5, 'softmax'), (3, 3, .2, 'sigmoid'),
                                                     (7, 5, 0., 'softmax'), (28, 1, 0., 'softmax'), (1, 1, 1., 'softmax')])
def test_small_cnn_exact(window, stride, fill, head):
    seed_everything(0)
    m = SmallCNN().eval(); x = torch.rand(3, 1, 28, 28); t = torch.tensor([0, 4, 9])
    assert (causal_effect_map(m, x, t, window, stride, fill, head=head)
            - incremental(m, x, t, window, stride, fill, head=head)).abs().max() < 1e-6


@pytest.mark.parametrize('window,stride', [(6, 3), (4, 4), ((8, 5), (4, 5)), (2, 1)])
def test_vgg_style_exact_with_baseline_image(window, stride):
    m = vgg_style(); g = torch.Generator().manual_seed(1)
    x = torch.rand(2, 3, 32, 32, generator=g); base = torch.rand(2, 3, 32, 32, generator=g)
    a = causal_effect_map(m, x, [1, 5], window, stride, base)
    b = incremental(m, x, [1, 5], window, stride, base)
    assert (a - b).abs().max() < 1e-6


@pytest.mark.parametrize('arch', ['resnet18', 'resnet18-normalized'])
def test_resnet18_exact_and_equal_to_captum(arch):
    pytest.importorskip('captum')
    from captum.attr import Occlusion
    seed_everything(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    m = Normalized(net, [.485, .456, .406], [.229, .224, .225]) if arch.endswith('normalized') else net
    x = torch.rand(2, 3, 64, 64)
    state = model_state(m)
    ours = incremental(m, x, [3, 7], 8, 4, max_batch=11)
    assert (ours - causal_effect_map(m, x, [3, 7], 8, 4)).abs().max() < 1e-5
    ref = Occlusion(nn.Sequential(m, nn.Softmax(1))).attribute(x, sliding_window_shapes=(3, 8, 8), strides=(3, 4, 4), baselines=0.,
                                                                target=torch.tensor([3, 7]), perturbations_per_eval=16).sum(1)
    assert (ours * 3 + ref).abs().max() < 1e-5            # Captum sums the window's value over the 3 channels
    assert model_state(m) == state


def test_chunking_and_full_at_do_not_change_the_map():
    seed_everything(1)
    net = torchvision.models.resnet18(num_classes=5).eval(); x = torch.rand(1, 3, 48, 48)
    a = causal_effect_map(net, x, 2, 12, 6, engine=IncrementalOcclusion())
    for eng, kw in [(IncrementalOcclusion(full_at=1.), {}), (IncrementalOcclusion(full_at=.05), {}),
                    (IncrementalOcclusion(), {'max_batch': 3}), (IncrementalOcclusion(), {'max_bytes': 50_000})]:
        assert (a - causal_effect_map(net, x, 2, 12, 6, engine=eng, **kw)).abs().max() < 1e-6


def test_model_left_unchanged_training_mode_and_grads():
    m = vgg_style().train(); x = torch.rand(1, 3, 32, 32)
    state = model_state(m)
    incremental(m, x, 0, 8, 4)
    assert model_state(m) == state and m.training and all(p.requires_grad for p in m.parameters())


def test_unsupported_layer_warns_and_stays_exact():
    seed_everything(2)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, padding_mode='circular'), nn.ReLU(),
                      nn.Flatten(), nn.Linear(4 * 10 * 10, 3)).eval()
    x = torch.rand(2, 1, 10, 10)
    with pytest.warns(UserWarning, match=r'2 \(Conv2d\) cannot be computed on slabs'):
        b = incremental(m, x, 1, 3, 2)
    assert (causal_effect_map(m, x, 1, 3, 2) - b).abs().max() < 1e-6
    plan = IncrementalOcclusion(warn=False).plan(m, x, 3, 2)
    assert list(plan['step']) == ['input', 'window', 'pointwise', 'full', 'full', 'full', 'full']


def test_batch_statistics_batchnorm_is_not_treated_as_elementwise():
    seed_everything(4)
    m = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.BatchNorm2d(4, track_running_stats=False), nn.ReLU(), nn.Flatten(),
                      nn.Linear(4 * 8 * 8, 3))
    x = torch.rand(3, 1, 8, 8)
    with pytest.warns(UserWarning, match='BatchNorm2d'):
        plan = IncrementalOcclusion().plan(m, x, 2, 2)
    assert plan.loc[plan['op'] == 'BatchNorm2d', 'step'].item() == 'full'


def test_untraceable_model_falls_back_with_a_message():
    class ValueBranch(nn.Module):
        def __init__(self): super().__init__(); self.net = SmallCNN()
        def forward(self, x): return self.net(x) if x.mean() > 0 else self.net(-x)
    seed_everything(5)
    m = ValueBranch().eval(); x = torch.rand(2, 1, 28, 28)
    with pytest.warns(UserWarning, match='torch.fx cannot trace ValueBranch'):
        b = incremental(m, x, 1, 7, 7)
    assert (causal_effect_map(m, x, 1, 7, 7) - b).abs().max() < 1e-7


def test_approximate_mode_caps_slabs_and_departs_from_exact():
    seed_everything(6)
    net = torchvision.models.resnet18(num_classes=10).eval(); x = torch.rand(1, 3, 64, 64)
    exact = incremental(net, x, 0, 8, 4)
    approx = causal_effect_map(net, x, 0, 8, 4, engine=IncrementalOcclusion(tau=.3))
    assert approx.shape == exact.shape and torch.isfinite(approx).all()
    assert (approx - exact).abs().max() > 1e-7                 # the cap drops changes: not exact (measured, in the chapter and the bench)
    plan = IncrementalOcclusion(tau=.3).plan(net, x, 8, 4)
    patch = plan[plan['step'].isin(['window', 'pointwise'])]
    assert (patch['share of the map'] <= .25).all() and (plan['step'] == 'full').sum() <= 3   # only flatten / fc after the pooling
    same = causal_effect_map(net, x, 0, 8, 4, engine=IncrementalOcclusion(tau=1.))
    assert (same - exact).abs().max() < 1e-6                  # tau = 1 caps nothing


def test_span_arithmetic():
    s = Span(torch.tensor([0, 5]), torch.tensor([4, 9]), 12)
    c = sliding_span(s, 3, 2, 1, 1, 6)                          # 3×3, stride 2, padding 1 on 12 → 6
    assert c.lo.tolist() == [0, 2] and c.hi.tolist() == [3, 5] and c.size == 3 and c.start.tolist() == [0, 2]
    d = sliding_span(s, 3, 1, 2, 2, 12)                         # dilation 2, padding 2: grows by 2 each side
    assert d.lo.tolist() == [0, 3] and d.hi.tolist() == [6, 11]
    u = union_span([s, Span(torch.tensor([2, 7]), torch.tensor([3, 12]), 12)])
    assert u.lo.tolist() == [0, 5] and u.hi.tolist() == [4, 12] and u.size == 7 and u.start.tolist() == [0, 5]
    v = union_span([s, Span(torch.tensor([2, 7]), torch.tensor([3, 12]), 12)], tau=.25)    # capped at 3, centred
    assert v.lo.tolist() == [0, 7] and v.hi.tolist() == [3, 10]


def test_errors():
    with pytest.raises(ValueError, match=r'tau must be None \(exact\) or a number in \(0, 1\], got 2'): IncrementalOcclusion(tau=2)
    with pytest.raises(ValueError, match='full_at must be a number'): IncrementalOcclusion(full_at=0)
    with pytest.raises(ValueError, match='tau must be'): IncrementalOcclusion(tau=True)


def test_first_order_is_first_order():
    "With a fill close to the image, the first-order map's error shrinks faster than the map itself (an O(δ²) remainder)."
    seed_everything(7)
    net = torchvision.models.resnet18(num_classes=10).eval(); x = torch.rand(1, 3, 64, 64) * .8 + .1
    rel = []
    for d in (.1, .01):
        fill = x - d
        exact = causal_effect_map(net, x, 4, 16, 8, fill, engine=IncrementalOcclusion())
        first = causal_effect_map(net, x, 4, 16, 8, fill, engine=IncrementalOcclusion(first_order=True))
        rel.append(float((first - exact).abs().max() / exact.abs().max()))
    assert rel[1] < rel[0] / 3 and rel[1] < .1, rel


def test_first_order_cuts_at_a_block_boundary_on_slabs():
    import torch.fx  # noqa: F401
    from causal_nb.cem import window_covers
    from causal_nb.occlusion import _cut_node
    seed_everything(0)
    m = SmallCNN().eval(); x = torch.rand(1, 1, 28, 28)
    R, C = window_covers(x.shape, 4, 2)
    eng = IncrementalOcclusion(first_order=True)
    with torch.inference_mode(): assert _cut_node(eng.trace(m, x, R, C)).name == 'pool2'
    net = torchvision.models.resnet18(num_classes=10).eval(); x = torch.rand(1, 3, 224, 224)
    R, C = window_covers(x.shape, 16, 8)
    with torch.inference_mode(): assert _cut_node(eng.trace(net, x, R, C)).name == 'layer3_0_relu_1'   # a residual block's output


def test_first_order_without_a_boundary_warns_and_is_exact():
    seed_everything(8)
    m = nn.Sequential(nn.Conv2d(1, 3, 3, padding=1, padding_mode='reflect'), nn.ReLU(), nn.Flatten(), nn.Linear(3 * 8 * 8, 4)).eval()
    x = torch.rand(2, 1, 8, 8)
    with pytest.warns(UserWarning, match='first_order found no block boundary'):
        b = causal_effect_map(m, x, 1, 2, 2, engine=IncrementalOcclusion(first_order=True, warn=False))
    assert (causal_effect_map(m, x, 1, 2, 2) - b).abs().max() < 1e-6


def test_first_order_needs_one_value_per_image():
    from causal_nb.cem import window_covers
    seed_everything(9)
    m = SmallCNN().eval(); x = torch.rand(1, 1, 28, 28)
    R, C = window_covers(x.shape, 7, 7)
    with pytest.raises(ValueError, match='first_order needs one readout value per image'):
        IncrementalOcclusion(first_order=True)(m, x, R, C, torch.zeros_like(x), lambda logits, i: logits[:, :2])


def test_images_in_groups_under_a_small_budget():
    seed_everything(10)
    m = SmallCNN().eval(); x = torch.rand(5, 1, 28, 28); t = torch.tensor([1, 2, 3, 4, 5])
    a = causal_effect_map(m, x, t, 6, 3)
    b = causal_effect_map(m, x, t, 6, 3, engine=IncrementalOcclusion(), max_bytes=300_000)     # a group of one or two images
    assert (a - b).abs().max() < 1e-6


@pytest.mark.parametrize('arch', ['densenet121', 'mobilenet_v2'])
def test_torchvision_densenet_and_mobilenet_exact(arch):
    "Channel concatenation (DenseNet, the paper's CheXNet) and depthwise convs (MobileNet) stay exact, without a warning."
    seed_everything(11)
    m = getattr(torchvision.models, arch)(num_classes=5).eval(); x = torch.rand(1, 3, 64, 64)
    with warnings.catch_warnings():
        warnings.simplefilter('error')
        b = incremental(m, x, 1, 8, 8)
    assert (causal_effect_map(m, x, 1, 8, 8) - b).abs().max() < 1e-6
    plan = IncrementalOcclusion().plan(m, x, 8, 8)
    assert (plan['step'] == 'window').sum() >= 5
