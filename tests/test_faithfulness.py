"""Peer tests for chapter 07b: every map against pytorch-grad-cam / Captum within 1e-5, ROAD's imputation against
pytorch-grad-cam, deletion against Quantus's PixelFlipping, localisation scores against Quantus within 1e-6; bad input."""
import copy, warnings
import numpy as np
import pytest
import torch
from torch import nn

from causal_nb.cem import GapCNN, pointing_game, map_auroc
from causal_nb.core import model_state, get_module
from causal_nb.faithfulness import _generator
from causal_nb.faithfulness import (MAPS, METRICS, attribution, available_maps, cascading_randomisation, map_scores,
                                    noisy_linear_imputation, perturbation_curve, pixel_ranks, relevance_mass, relevance_rank, road,
                                    score_table, smooth_grad)

warnings.filterwarnings('ignore')


@pytest.fixture(scope='module')
def setup():
    torch.manual_seed(0)
    net = GapCNN(10).eval()
    x = torch.rand(5, 1, 28, 28, generator=torch.Generator().manual_seed(1))
    y = torch.tensor([1, 3, 5, 7, 9])
    return net, x, y


@pytest.mark.parametrize('peer,name,layer', [('AblationCAM', 'Ablation-CAM', 'relu3'), ('ScoreCAM', 'Score-CAM', 'conv3'),
                                             ('GradCAMPlusPlus', 'Grad-CAM++', 'conv3'), ('HiResCAM', 'HiResCAM', 'conv3'),
                                             ('GradCAM', 'Grad-CAM', 'conv3')])
def test_cams_equal_pytorch_grad_cam(setup, peer, name, layer):
    import pytorch_grad_cam
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget
    net, x, y = setup
    state = model_state(net)
    other = copy.deepcopy(net)                       # the peer leaves its hooks on the model it is given
    ref = torch.from_numpy(getattr(pytorch_grad_cam, peer)(other, [get_module(other, layer)])(
        x, targets=[ClassifierOutputTarget(int(c)) for c in y]))
    ours = attribution(name, net, x, y, layer=layer, normalize=True)
    assert (ours - ref).abs().max() < 1e-5
    assert model_state(net) == state


def test_interventional_cams_chunking(setup):
    net, x, y = setup
    for name in ('Ablation-CAM', 'Score-CAM'):
        a = attribution(name, net, x, y); b = attribution(name, net, x, y, max_batch=7)
        assert (a - b).abs().max() < 1e-6


def test_gradient_maps_equal_captum(setup):
    from captum.attr import Saliency, IntegratedGradients, NoiseTunnel
    net, x, y = setup
    prob = nn.Sequential(net, nn.Softmax(1))
    assert (attribution('Saliency', net, x, y) - Saliency(prob).attribute(x, target=y)[:, 0]).abs().max() < 1e-5
    ours = attribution('IntegratedGradients', net, x, y, n_steps=20, baseline=.1)
    ref = IntegratedGradients(prob).attribute(x, target=y, n_steps=20, baselines=.1)[:, 0]
    assert (ours - ref).abs().max() < 1e-5
    sg = smooth_grad(net, x, y, samples=6, stdev=.2, seed=4)
    for i in range(len(x)):
        torch.manual_seed(_generator(4, i).initial_seed())
        r = NoiseTunnel(Saliency(prob)).attribute(x[i:i + 1], nt_type='smoothgrad', nt_samples=6, stdevs=.2, abs=False, target=int(y[i]))
        assert (sg[i] - r[0, 0]).abs().max() < 1e-5
    # per-image seeds: an image's map does not depend on the others in the call
    assert (smooth_grad(net, x[:1], y[:1], samples=6, stdev=.2, seed=4) - sg[:1]).abs().max() < 1e-6


def test_road_imputer_equals_pytorch_grad_cam():
    from pytorch_grad_cam.metrics.road import NoisyLinearImputer
    x = torch.rand(3, 2, 12, 10, generator=torch.Generator().manual_seed(0))
    rem = torch.rand(3, 12, 10, generator=torch.Generator().manual_seed(1)) < .5
    ref = torch.stack([NoisyLinearImputer(noise=0)(x[i], (~rem[i]).float()) for i in range(3)])
    assert (noisy_linear_imputation(x, rem, noise=0) - ref).abs().max() < 1e-5


def test_deletion_equals_quantus_pixel_flipping(setup):
    import quantus
    net, x, y = setup
    x = x.clone(); x[..., 0, 0] = 0                  # Quantus's 'black' baseline is the image minimum
    m = attribution('Grad-CAM', net, x, y) + torch.linspace(0, 1e-6, 784).view(28, 28)
    q = np.asarray(quantus.PixelFlipping(features_in_step=56, perturb_baseline='black', abs=False, normalise=False, disable_warnings=True)(
        model=net, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=m[:, None].numpy(), softmax=True, channel_first=True))
    ours = perturbation_curve(net, x, m, y, steps=14)
    assert np.abs(q - ours.probs[:, 1:]).max() < 1e-5
    assert np.allclose(perturbation_curve(net, x, m, y, steps=14, max_batch=4).probs, ours.probs, atol=1e-6)


def test_localisation_equals_quantus(setup):
    import quantus
    net, x, y = setup
    masks = torch.zeros(5, 28, 28, dtype=torch.bool); masks[:, 4:14, 6:20] = True; masks[2, 20:, 20:] = True
    for name in ('Saliency', 'Grad-CAM', 'Score-CAM'):
        m = attribution(name, net, x, y)
        args = dict(model=net, x_batch=x.numpy(), y_batch=y.numpy(), a_batch=m[:, None].numpy(),
                    s_batch=masks[:, None].numpy().astype(float))
        kw = dict(abs=False, normalise=False, disable_warnings=True)
        for qm, ours in [(quantus.PointingGame, pointing_game(m, masks).double()),
                         (quantus.RelevanceMassAccuracy, relevance_mass(m, masks)),
                         (quantus.RelevanceRankAccuracy, relevance_rank(m, masks)), (quantus.AUC, map_auroc(m, masks))]:
            assert np.abs(np.asarray(qm(**kw)(**args), float) - ours.numpy()).max() < 1e-6, (name, qm.__name__)


def test_pixel_ranks_and_curves_by_hand():
    m = torch.tensor([[[0., 3.], [3., 1.]]])
    assert pixel_ranks(m).tolist() == [[3, 0, 1, 2]]               # ties broken by position
    class Sum(nn.Module):
        def forward(self, x): return torch.stack([x.flatten(1).sum(1), torch.zeros(len(x))], 1)
    x = torch.full((1, 1, 2, 2), .5)
    c = perturbation_curve(Sum(), x, m, 0, steps=4)
    want = torch.softmax(torch.stack([torch.tensor([2., 1.5, 1., .5, 0.]), torch.zeros(5)], 1), 1)[:, 0]
    assert np.allclose(c.probs[0], want.numpy(), atol=1e-6)
    assert np.isclose(c.auc[0], np.trapezoid(want.numpy(), [0, .25, .5, .75, 1]))


def test_randomisation_and_random_baseline(setup):
    net, x, y = setup
    state = model_state(net)
    r = cascading_randomisation(net, x, 'Grad-CAM', y)
    assert r.layers == ['fc', 'conv3', 'conv2', 'conv1'] and r.spearman.shape == (5, 4)
    assert np.allclose(cascading_randomisation(net, x, 'Random', y).spearman, 1)
    assert np.allclose(cascading_randomisation(net, x, 'Grad-CAM', y).spearman, r.spearman, equal_nan=True)   # seeded
    assert model_state(net) == state


def test_scores_table_and_road(setup):
    net, x, y = setup
    masks = torch.zeros(5, 1, 28, 28, dtype=torch.bool); masks[..., 8:20, 8:20] = True
    sc, maps = map_scores(net, x, y, masks, methods=['Grad-CAM', 'Random'], steps=5, fractions=(.3, .6))
    tab = score_table(sc, n_boot=200)
    assert set(tab.index) == {'Grad-CAM', 'Random'}
    assert {c[0] for c in tab.columns} == set(METRICS) | {'sanity ρ'}
    lo, mean, hi = (tab[('AUROC', k)].astype(float) for k in ('lo', 'mean', 'hi'))
    assert ((lo <= mean) & (mean <= hi)).all()
    r = road(net, x, maps['Grad-CAM'], y, fractions=(.3, .6))
    assert np.allclose(r.score, sc[('Grad-CAM', 'ROAD LeRF−MoRF')])


def test_bad_input(setup):
    net, x, y = setup
    mlp = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    with pytest.raises(ValueError, match="needs a model with an nn.Conv2d layer"): attribution('Score-CAM', mlp, x)
    with pytest.raises(ValueError, match="global average pooling"): attribution('CAM', mlp, x)
    with pytest.raises(ValueError, match="method must be one of"): attribution('LRP', net, x)
    with pytest.raises(ValueError, match=r"maps has shape \(5, 28\); expected \(5, 28, 28\)"):
        perturbation_curve(net, x, torch.zeros(5, 28), y)
    with pytest.raises(ValueError, match="NaN or Inf"): road(net, x, torch.full((5, 28, 28), float('nan')), y)
    with pytest.raises(ValueError, match="metric 'AUROC' needs ground-truth masks"): map_scores(net, x, y, metrics=['AUROC'])
    with pytest.raises(ValueError, match="samples must be a positive integer"): smooth_grad(net, x, samples=0)
    with pytest.raises(ValueError, match="outside bounds"): attribution('Saliency', net, x * 3)
    assert 'CAM' not in available_maps(mlp) and 'Saliency' in available_maps(mlp)
    assert set(MAPS) >= {'CEM', 'Ablation-CAM', 'Score-CAM', 'Grad-CAM++', 'HiResCAM', 'Saliency', 'IntegratedGradients', 'SmoothGrad',
                         'Random'}


def test_effect_features_equal_network_scm_and_are_differentiable():
    from causal_nb.models import SmallCNN
    from causal_nb.core import Node
    from causal_nb.interventions import NetworkSCM, ZeroOut
    from causal_nb.faithfulness import effect_features, EffectDetector, FeatureDetector, adaptive_pgd
    torch.manual_seed(0)
    net = SmallCNN().eval(); x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(2))
    scm = NetworkSCM(net); p = scm.probs(x)
    eff, _ = scm.effects(x, [Node('fc1', i) for i in range(128)], ZeroOut(), progress_bar=False)
    assert (effect_features(net, x, 'fc1') - (p[None] * eff).sum(-1).T).abs().max() < 1e-6
    state = model_state(net)
    y = net(x).argmax(1).detach()
    det = EffectDetector(net).fit(x[:3], x[3:].flip(-1))
    assert det.layer == 'fc1'
    xa = adaptive_pgd(net, det, x, y, eps=.1, steps=3, alpha=.05)
    assert (xa - x).abs().max() <= .1 + 1e-6 and xa.min() >= 0 and xa.max() <= 1
    assert model_state(net) == state
    m = FeatureDetector(net).fit(x, y).score(x); k = FeatureDetector(net, 'knn', k=2).fit(x, y).score(x)
    assert m.shape == (6,) and np.isfinite(m).all() and k.shape == (6,)
    with pytest.raises(ValueError, match='has no nn.Linear layer'): FeatureDetector(nn.Sequential(nn.Conv2d(1, 2, 3))).fit(x, y)


def test_effect_features_of_every_class_and_the_detectors_built_on_them():
    from causal_nb.models import SmallCNN
    from causal_nb.core import Node
    from causal_nb.interventions import NetworkSCM, ZeroOut
    from causal_nb.faithfulness import effect_features, EffectDetector, FeatureDetector, adaptive_pgd
    torch.manual_seed(0)
    net = SmallCNN().eval(); x = torch.rand(6, 1, 28, 28, generator=torch.Generator().manual_seed(3))
    state = model_state(net)
    scm = NetworkSCM(net); p = scm.probs(x)
    eff, _ = scm.effects(x, [Node('conv2', i) for i in range(64)], ZeroOut(), progress_bar=False)    # (nodes, N, K)
    full = effect_features(net, x, 'conv2', readout='classes')
    assert full.shape == (6, 64 * 10)
    assert (full - eff.permute(1, 0, 2).flatten(1)).abs().max() < 1e-6                             # node-major, every class
    belief = (full.view(6, 64, 10) * p[:, None]).sum(-1)
    # the belief readout is its p-weighted sum
    assert (effect_features(net, x, 'conv2') - belief).abs().max() < 1e-6
    assert (effect_features(net, x, 'conv2', readout='classes', max_bytes=30_000) - full).abs().max() < 1e-6
    with pytest.raises(ValueError, match="readout must be 'belief' or 'classes', got 'top'"): effect_features(net, x, 'fc1', readout='top')
    with pytest.raises(ValueError, match="readout must be 'belief' or 'classes'"): EffectDetector(net, readout='top')
    y = net(x).argmax(1).detach()
    det = EffectDetector(net, readout='classes', C=.1).fit(x[:3], x[3:].flip(-1))
    assert det.w.shape == (128 * 10,) and det.score(x).shape == (6,)
    g = FeatureDetector(net).fit(x, y)
    lg = g.logit(x, grad=False).double().numpy()
    assert np.allclose(lg, (g.score(x) - float(g.mu)) / float(g.sd), atol=1e-5)                     # the standardised Mahalanobis score
    for d in (det, g):                                                                              # both can be attacked adaptively
        xa = adaptive_pgd(net, d, x, y, eps=.1, steps=2, alpha=.05)
        assert (xa - x).abs().max() <= .1 + 1e-6 and not torch.equal(xa, x)
    with pytest.raises(ValueError, match="logit is defined for kind='mahalanobis'"): FeatureDetector(net, 'knn').fit(x, y).logit(x)
    assert model_state(net) == state


def test_detection_report_without_torchattacks(monkeypatch):
    """A runtime install has no torchattacks (a dev extra): the report's detection table keeps every other column and says
    which unseen attacks are left out, instead of failing the whole report (found by timing the README's first command
    in a fresh clone)."""
    import sys
    from causal_nb.core import ReportContext, ReportSection
    from causal_nb.data import load_data
    from causal_nb.faithfulness import _detection_report
    from causal_nb.models import trained_model
    monkeypatch.setitem(sys.modules, 'torchattacks', None)          # `import torchattacks` now raises ImportError
    data = 'digits'
    model = trained_model('small-cnn', data, quick=True, progress_bar=False).model
    ctx = ReportContext(train=load_data(data, train=True), test=load_data(data, train=False), model=model, quick=True)
    sec = _detection_report(ReportSection('detection'), ctx)
    text = ' '.join(sec.parts)
    assert 'torchattacks, which is not installed here' in text, text[-600:]
    cols = list(sec.tables['detection_cross_attack_auroc'].columns)
    assert not any('unseen' in c for c in cols) and any('adaptive' in c for c in cols) and any('FGSM' in c for c in cols), cols


def test_gradient_maps_default_to_the_predicted_class(setup):
    # target=None (the documented default) means the predicted class; the targets were once computed under
    # inference_mode, and autograd refused to save them for the backward pass (RuntimeError)
    from causal_nb.faithfulness import integrated_gradients, saliency
    net, x, _ = setup
    pred = net(x).argmax(1)
    for fn in (saliency, integrated_gradients, smooth_grad):
        kw = {'seed': 0} if fn is smooth_grad else {}
        assert torch.equal(fn(net, x, **kw), fn(net, x, pred, **kw)), fn.__name__
