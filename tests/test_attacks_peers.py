"""Peer agreement and properties for `causal_nb.attacks`.

- With random start off, `fgsm` / `bim` / `pgd` (L∞ and L2) equal torchattacks 3.3.0's FGSM / BIM / PGD / PGDL2
  (max abs difference <= 1e-6) on two architectures, untargeted and targeted, plain and `Normalized`.
- JSMA's success rate and mean L0 are at least as good as Adversarial Robustness Toolbox's `SaliencyMapMethod`
  with equal theta, gamma on the same 100 images and the same targets.
- Hypothesis: for any images in bounds, the output stays in bounds and within eps (L∞) of the input.
- Success records count only images the model got right: misclassified images are neither successes nor
  (when an attack leaves them untouched, as JSMA does) attacked images; PGD's seeded start is per image.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

torchattacks = pytest.importorskip('torchattacks')
from hypothesis import HealthCheck, given, settings, strategies as st

from causal_nb.attacks import bim, fgsm, jsma, pgd
from causal_nb.core import Normalized, seed_everything

try:  # the models chapter's architectures, when that chapter exists
    from causal_nb.models import LeNet5, SmallCNN
    ARCHS = {'small_cnn': lambda: SmallCNN(n_classes=10, in_channels=1), 'lenet5': lambda: LeNet5(n_classes=10, in_channels=1)}
except ImportError:
    def _small_cnn():
        return nn.Sequential(nn.Conv2d(1, 16, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(16, 32, 3, padding=1),
                             nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(32 * 7 * 7, 64), nn.ReLU(), nn.Linear(64, 10))
    def _lenet5():
        return nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2), nn.Conv2d(6, 16, 5), nn.Tanh(),
                             nn.AvgPool2d(2), nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.Tanh(), nn.Linear(120, 84),
                             nn.Tanh(), nn.Linear(84, 10))
    ARCHS = {'small_cnn': _small_cnn, 'lenet5': _lenet5}


def _train(model, x, y, epochs, lr=3e-3, seed=0):
    g = seed_everything(seed); opt = torch.optim.Adam(model.parameters(), lr=lr)
    for _ in range(epochs):
        for idx in torch.randperm(len(x), generator=g).split(64):
            opt.zero_grad(); F.cross_entropy(model(x[idx]), y[idx]).backward(); opt.step()
    return model.eval()


@pytest.fixture(scope='session')
def digits28():
    "scikit-learn's digits, upsampled to 28×28 so the MNIST architectures apply."
    from sklearn.datasets import load_digits
    d = load_digits()
    x = F.interpolate(torch.tensor(d.images, dtype=torch.float32).unsqueeze(1) / 16, size=28, mode='bilinear')
    return x.clamp(0, 1), torch.tensor(d.target)


@pytest.fixture(scope='session')
def models(digits28):
    "Both architectures, trained for one epoch on 1,200 digits (a few seconds)."
    x, y = digits28
    torch.manual_seed(0)
    return {name: _train(make(), x[:1200], y[:1200], epochs=1) for name, make in ARCHS.items()}


def _max_diff(a, b): return float((a - b).abs().max())


@pytest.mark.parametrize('arch', list(ARCHS))
@pytest.mark.parametrize('targeted', [False, True])
def test_linf_attacks_equal_torchattacks(models, digits28, arch, targeted):
    model = models[arch]
    x, y = digits28[0][1200:1232], digits28[1][1200:1232]
    target = (y + 3) % 10 if targeted else None

    def peer(atk):
        if targeted: atk.set_mode_targeted_by_function(lambda inputs, labels: (labels + 3) % 10)
        return atk(x, y)
    ours_fgsm = fgsm(model, x, y, eps=0.1, target=target)[0]
    ours_bim = bim(model, x, y, eps=0.3, alpha=0.03, steps=10, target=target)[0]
    ours_pgd = pgd(model, x, y, eps=0.3, alpha=0.03, steps=10, random_start=False, target=target)[0]
    assert _max_diff(ours_fgsm, peer(torchattacks.FGSM(model, eps=0.1))) <= 1e-6
    assert _max_diff(ours_bim, peer(torchattacks.BIM(model, eps=0.3, alpha=0.03, steps=10))) <= 1e-6
    assert _max_diff(ours_pgd, peer(torchattacks.PGD(model, eps=0.3, alpha=0.03, steps=10, random_start=False))) <= 1e-6


@pytest.mark.parametrize('arch', list(ARCHS))
def test_pgd_l2_equals_torchattacks(models, digits28, arch):
    model = models[arch]
    x, y = digits28[0][1200:1232], digits28[1][1200:1232]
    ours = pgd(model, x, y, eps=2.0, alpha=0.3, steps=10, norm='l2', random_start=False)[0]
    theirs = torchattacks.PGDL2(model, eps=2.0, alpha=0.3, steps=10, random_start=False)(x, y)
    assert _max_diff(ours, theirs) <= 1e-6


def test_normalized_model_equals_torchattacks(models, digits28):
    "A `Normalized` model is attacked in image space, like torchattacks attacks a model that normalises itself."
    model = Normalized(models['small_cnn'], 0.1307, 0.3081)
    x, y = digits28[0][1200:1232], digits28[1][1200:1232]
    ours = pgd(model, x, y, eps=0.3, alpha=0.03, steps=5, random_start=False)[0]
    assert _max_diff(ours, torchattacks.PGD(model, eps=0.3, alpha=0.03, steps=5, random_start=False)(x, y)) <= 1e-6


@pytest.fixture(scope='session')
def jsma_vs_art(models, digits28):
    "Our JSMA and ART's SaliencyMapMethod on the same 100 images, with the same targets, theta and gamma."
    pytest.importorskip('art')
    from art.attacks.evasion import SaliencyMapMethod
    from art.estimators.classification import PyTorchClassifier
    model = models['lenet5']
    x = digits28[0][1200:1300]
    with torch.no_grad(): pred = model(x).argmax(1)
    g = torch.Generator().manual_seed(0)
    target = (pred + torch.randint(1, 10, pred.shape, generator=g)) % 10   # a random other class, as ART picks
    theta, gamma = 1.0, 0.1
    clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=(1, 28, 28), nb_classes=10,
                            clip_values=(0., 1.))
    art_adv = torch.from_numpy(SaliencyMapMethod(clf, theta=theta, gamma=gamma, batch_size=100, verbose=False)
                               .generate(x.numpy(), y=F.one_hot(target, 10).numpy()))
    ours_adv, res = jsma(model, x, target=target, theta=theta, gamma=gamma)
    with torch.no_grad():
        art_success = (model(art_adv).argmax(1) == target)
    art_l0 = ((art_adv - x).flatten(1) != 0).sum(1).float()
    return res, art_success, art_l0


def test_jsma_at_least_as_good_as_art(jsma_vs_art):
    res, art_success, art_l0 = jsma_vs_art
    print(f"ours: success {res.success_rate:.3f}, mean L0 {res.l0.float().mean():.2f}; "
          f"ART: success {art_success.float().mean():.3f}, mean L0 {art_l0.mean():.2f}")
    assert res.success_rate >= float(art_success.float().mean())
    assert float(res.l0.float().mean()) <= float(art_l0.mean())
    both = res.success & art_success   # on images both attacks fool, ours changes no more values on average
    assert float(res.l0[both].float().mean()) <= float(art_l0[both].mean())


@pytest.mark.parametrize('attack', ['fgsm', 'bim', 'pgd', 'jsma'])
def test_success_counts_only_correct_images(models, digits28, attack):
    "Every attack: success = correct before and changed prediction after; the rate is over the correct images."
    from causal_nb.attacks import ATTACKS
    model = models['lenet5']; x, y = digits28[0][1300:1400], digits28[1][1300:1400]
    with torch.no_grad(): wrong = model(x).argmax(1) != y
    assert 0 < int(wrong.sum()) < 100                       # a briefly trained model gets some wrong
    kw = {'seed': 0} if attack == 'pgd' else {}
    adv, r = ATTACKS[attack](model, x, y, **kw)
    with torch.no_grad(): after = model(adv).argmax(1)
    assert torch.equal(r.correct, ~wrong) and torch.equal(r.reached, after != y)
    assert torch.equal(r.success, ~wrong & (after != y)) and not r.success[wrong].any()
    assert r.success_rate == float(r.success.sum()) / int((~wrong).sum())
    assert r.summary()['n_correct'] == int((~wrong).sum())
    assert torch.equal(r.unchanged, ((adv - x).flatten(1) == 0).all(1)) and not r.attacked[wrong | r.unchanged].any()
    if attack == 'jsma':                                    # JSMA hands misclassified images back untouched
        assert r.unchanged[wrong].all() and r.summary()['n_unchanged'] >= int(wrong.sum())


def test_pgd_start_is_per_image(models, digits28):
    "PGD's seeded random start depends on the image's index, not on the batch: any batch size, any slice."
    model = models['small_cnn']; x, y = digits28[0][:40], digits28[1][:40]
    whole = pgd(model, x, y, eps=.3, steps=1, alpha=1e-9, seed=5)[0]      # a tiny step: the output is ~ the start
    for bs in (1, 7):
        assert torch.equal(pgd(model, x, y, eps=.3, steps=1, alpha=1e-9, seed=5, batch_size=bs)[0], whole)
    part = pgd(model, x[13:20], y[13:20], eps=.3, steps=1, alpha=1e-9, seed=5, index=torch.arange(13, 20))[0]
    assert torch.equal(part, whole[13:20])


# Properties: any images in bounds, any budget -> output in bounds and within eps.
_net = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 5))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), n=st.integers(1, 5), eps=st.floats(0, 2, allow_nan=False),
       lo=st.floats(-3, 3, allow_nan=False), width=st.floats(0.01, 5, allow_nan=False),
       attack=st.sampled_from(['fgsm', 'bim', 'pgd', 'pgd_rand']), targeted=st.booleans(), steps=st.integers(1, 4))
def test_output_in_bounds_and_within_eps(seed, n, eps, lo, width, attack, targeted, steps):
    lo, hi = float(np.float32(lo)), float(np.float32(lo + width))   # bounds a float32 image can hold exactly
    g = torch.Generator().manual_seed(seed)
    x = lo + torch.rand(n, 2, 6, 6, generator=g) * width
    x[0, 0, 0, 0] = lo; x[-1, -1, -1, -1] = hi                      # values on both bounds
    y = torch.randint(0, 5, (n,), generator=g)
    kw = dict(bounds=(lo, hi), target=(y + 1) % 5 if targeted else None)
    if attack == 'fgsm': adv, res = fgsm(_net, x, y, eps=eps, **kw)
    elif attack == 'bim': adv, res = bim(_net, x, y, eps=eps, steps=steps, **kw)
    else: adv, res = pgd(_net, x, y, eps=eps, steps=steps, random_start=attack == 'pgd_rand', seed=seed, **kw)
    assert float(adv.min()) >= lo and float(adv.max()) <= hi
    assert float((adv - x).abs().max()) <= eps + 1e-6 * max(1., abs(lo), abs(hi))
    assert torch.equal(res.linf, (adv - x).flatten(1).abs().amax(1))


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), theta=st.sampled_from([1.0, 0.3, -0.5, -1.0]), gamma=st.floats(0.05, 1.0))
def test_jsma_in_bounds_and_direction(seed, theta, gamma):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(3, 2, 6, 6, generator=g)
    adv, res = jsma(_net, x, theta=theta, gamma=gamma)
    assert float(adv.min()) >= 0 and float(adv.max()) <= 1
    assert bool((adv >= x).all()) if theta > 0 else bool((adv <= x).all())
    assert bool((res.l0 <= gamma * x[0].numel() + 2).all())   # the budget is checked after each pair


@pytest.mark.parametrize('attack', ['fgsm', 'bim', 'pgd', 'jsma'])
@pytest.mark.parametrize('targeted', [False, True])
def test_record_reads_the_clean_prediction_off_the_first_pass(models, digits28, attack, targeted):
    "The record's clean prediction comes from the attack's first forward pass, not a pass of its own: the same masks as "
    "separate forward passes give, in chunks too, for softmax and sigmoid heads."
    from causal_nb.attacks import ATTACKS
    model = models['small_cnn'].eval(); x, y = digits28[0][1300:1360], digits28[1][1300:1360]   # (an earlier test may leave it training)
    kw = {'random_start': False} if attack == 'pgd' else {}
    t = (y + 1) % 10 if targeted else None
    adv, r = ATTACKS[attack](model, x, y, target=t, batch_size=16, **kw)
    run = lambda a: torch.cat([model(c) for c in a.split(16)])   # the old path: separate passes, in the same chunks
    with torch.no_grad(): clean, after = run(x).argmax(1), run(adv).argmax(1)
    aim = t if targeted else y
    assert torch.equal(r.correct, clean != aim if targeted else clean == aim)
    assert torch.equal(r.reached, after == aim if targeted else after != aim) and torch.equal(r.success, r.correct & r.reached)
    if attack != 'jsma':                                  # sigmoid head: multi-hot labels, the prediction is logits > 0
        yh = F.one_hot(y, 10).float()
        adv, r = ATTACKS[attack](model, x, yh, head='sigmoid', batch_size=16, **kw)
        with torch.no_grad(): clean, after = (run(x) > 0).float(), (run(adv) > 0).float()
        assert torch.equal(r.correct, (clean == yh).all(1)) and torch.equal(r.reached, (after != yh).any(1))
