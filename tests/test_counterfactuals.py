"""Generative counterfactuals: flips on Fashion-MNIST, Eq. 2 exactly, the λ bisection, the path, prototypes and criticisms,
attribute mode, bias discovery with a planted attribute, the DCGAN and its cache, errors, and the user's model untouched."""
import contextlib, time, warnings

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from causal_nb.core import check_images, check_number, evaluating, model_state
from causal_nb.counterfactuals import (ATTRIBUTE_GROUPS, DCGAN, VAE, attribute_counterfactual,
                                       bias_discovery, compare_with_pgd, counterfactual, criticism, prototype,
                                       shape_attributes, trained_generator)
from causal_nb.counterfactuals import CounterfactualResult, _latent, _per_query
from causal_nb.data import causal_shapes, fashion_mnist
from causal_nb.models import trained_model


@pytest.fixture(scope='module')
def clf():
    return trained_model('small-cnn', 'fashion-mnist', quick=True, progress_bar=False).model.eval()


@pytest.fixture(scope='module')
def vae():
    return trained_generator('vae')


@pytest.fixture(scope='module')
def dcgan():
    return trained_generator('dcgan', n=4000, epochs=3)      # the chapter's quick DCGAN (shared cache)


@pytest.fixture(scope='module')
def queries():
    "32 Fashion-MNIST test images and a random other class for each."
    t = fashion_mnist(train=False).subset(32, seed=7)
    g = torch.Generator().manual_seed(0)
    return t.images, (t.labels + torch.randint(1, 10, (32,), generator=g)) % 10


@pytest.fixture(scope='module')
def res(clf, vae, queries):
    q, t = queries
    return counterfactual(clf, vae, q, t)


def test_flips_to_the_target_on_fashion_mnist(res, queries, clf):
    q, t = queries
    assert res.success.float().mean() >= .95, res.summary()
    with torch.no_grad(): pred = clf(res.images).argmax(1)
    assert (pred[res.success] == t[res.success]).all()
    s = res.summary()
    assert s['n'] == 32 and s['steps_per_query'] == 240 and np.isfinite(s['median_l1']) and s['median_l1'] > 0


def test_flips_through_the_dcgan(clf, dcgan, queries):
    q, t = queries
    r = counterfactual(clf, dcgan, q, t)
    assert r.success.float().mean() >= .9, r.summary()


def test_the_path(clf, vae, queries):
    q, t = queries
    r = counterfactual(clf, vae, q[:6], t[:6], steps=20, rounds=2, record_every=5)
    assert r.path_images.shape == (5, 6, 1, 28, 28)                     # steps 0, 5, 10, 15, 20
    assert r.path_probs.shape == r.path_dist.shape == (5, 6) and r.path_class_probs.shape == (5, 6, 10)
    assert torch.allclose(r.path_images[-1], r.images)                  # keep='last': the path ends at the answer
    assert torch.allclose(r.path_class_probs.gather(2, t[:6].view(1, 6, 1).expand(5, 6, 1))[..., 0], r.path_probs)
    assert torch.allclose(r.path_dist, (r.path_images - q[:6]).flatten(2).abs().sum(2), atol=1e-3)   # |I - G(z')|_1
    with torch.no_grad(): assert torch.allclose(r.path_images[0], vae(vae.encode(q[:6])), atol=1e-6)
    r2 = counterfactual(clf, vae, q[:6], t[:6], steps=20, rounds=1, record_every=1, p=2)
    assert r2.path_images.shape[0] == 21
    assert torch.allclose(r2.path_dist, (r2.path_images - q[:6]).flatten(2).norm(dim=2), atol=1e-4)


def test_the_objective_is_eq2(clf, vae, queries):
    "Adam's first step is -lr·sign(∇), so one step reveals the gradient's sign: that of λ·CE(C(G(z)), t) + |I - G(z)|_1."
    q, t = queries[0][:8], queries[1][:8]
    lam = torch.tensor([.1, 1., 10., 100., .5, 3., 30., 300.])
    r = counterfactual(clf, vae, q, t, lam=lam, steps=1, rounds=1, lr=1e-3)
    z = r.z0.clone().requires_grad_(True)
    loss = (lam * F.cross_entropy(clf(vae(z)), t, reduction='none') + (vae(z) - q).flatten(1).abs().sum(1)).sum()
    g, = torch.autograd.grad(loss, z)
    big = g.abs() > 1e-4
    assert big.sum() > 40 and torch.allclose((r.z - r.z0)[big], -1e-3 * g.sign()[big], atol=2e-5)


def test_bisection_gives_the_smallest_lambda_that_flips(clf, vae, queries, res):
    q, t = queries
    ok = res.success & (res.lam_fail > 0)
    assert ok.sum() >= 16
    again = counterfactual(clf, vae, q, t, lam=res.lam, lr=res.lr, rounds=1)
    below = counterfactual(clf, vae, q, t, lam=torch.where(ok, res.lam_fail, res.lam), lr=res.lr, rounds=1)
    assert again.success[res.success].all()                 # the returned λ flips
    assert not below.success[ok].any()                      # the next smaller λ tried does not
    assert (res.lam_fail[ok] < res.lam[ok]).all()
    assert (res.lam[ok] / res.lam_fail[ok]).max() <= 10 + 1e-4         # bracketed within a factor of 10
    one = counterfactual(clf, vae, q, t, rounds=1, grow=1.0)            # no search: one round at the starting λ
    both = res.success & one.success
    assert (res.l1[both] <= one.l1[both] + 1e-3).all() and res.success.sum() > one.success.sum()


def test_prototype_raises_confidence(clf, vae, queries):
    q = queries[0][:12]
    with torch.no_grad(): p0 = clf(q).softmax(1)
    pred = p0.argmax(1)
    pro = prototype(clf, vae, q, min_prob=.99)
    assert (pro.target == pred).all() and pro.success.float().mean() >= .6, pro.summary()
    own, own0 = pro.probs.gather(1, pred[:, None])[:, 0], p0.gather(1, pred[:, None])[:, 0]
    unsure = own0 < .99                                     # the queries the model was not yet 99% sure of
    assert unsure.sum() >= 6 and (own[unsure] > own0[unsure]).all(), (own0, own)
    assert (own[pro.success] >= .99).all() and (pro.probs.argmax(1)[pro.success] == pred[pro.success]).all()


def test_criticism_targets_another_class(clf, vae, queries):
    q = queries[0][:12]
    with torch.no_grad(): p0 = clf(q).softmax(1)
    pred = p0.argmax(1)
    cri = criticism(clf, vae, q)
    assert (cri.target != pred).all()
    assert (cri.target == p0.scatter(1, pred[:, None], -1.).argmax(1)).all()      # the runner-up
    assert cri.success.float().mean() >= .9 and (cri.probs.argmax(1)[cri.success] != pred[cri.success]).all()
    with pytest.raises(ValueError, match='target equals the current prediction'): criticism(clf, vae, q, target=pred)


@pytest.fixture(scope='module')
def decoder():
    return trained_generator('attributes')


def test_attribute_mode_holds_fixed_attributes(decoder):
    from causal_nb.counterfactuals import shapes_classifier
    qs = causal_shapes(16, spurious=0., seed=11)
    a = shape_attributes(qs)
    model = shapes_classifier(1.0)
    r = attribute_counterfactual(model, decoder, a, (qs.labels + 1) % 3, fixed=('x', 'y', 'texture'), steps=40, rounds=2)
    held = ATTRIBUTE_GROUPS['x'] + ATTRIBUTE_GROUPS['y'] + ATTRIBUTE_GROUPS['texture']
    assert torch.equal(r.z[:, held], a[:, held])
    assert (r.z - a).abs().sum() > 0 and r.success.any()
    with pytest.raises(ValueError, match='fixed names unknown attributes'):
        attribute_counterfactual(model, decoder, a, 0, fixed=('colour',))


def test_bias_discovery_names_the_planted_attribute(decoder):
    b = bias_discovery(decoder, n_queries=40, steps=60, rounds=3, fixed=('x', 'y'))
    sp, cl = b['rates']['spurious'], b['rates']['clean']
    assert sp['success_rate'] >= .9 and cl['success_rate'] >= .9, b['rates']
    assert sp['texture_in_top2'] >= .8, b['rates']                      # with the spurious correlation: texture is named
    assert cl['texture_in_top2'] < .8 and sp['texture_in_top2'] - cl['texture_in_top2'] >= .25, b['rates']   # without: it is not


def test_compare_with_pgd_holds_finite_numbers(clf, vae, queries, res):
    q, t = queries
    cmp = compare_with_pgd(clf, vae, q, t, res, steps=5)
    assert np.isfinite(cmp.to_numpy(dtype=float)).all(), cmp
    assert cmp.loc['real images (unchanged)', 'success'] == float((clf(q).argmax(1) == t).float().mean())
    with pytest.raises(TypeError, match="result 'x' must be a CounterfactualResult"): compare_with_pgd(clf, vae, q, t, {'x': 1})


def test_dcgan_inversion(dcgan, queries):
    q = queries[0][:8]
    before = model_state(dcgan)
    z_enc, z_inv = dcgan.encode(q, steps=0), dcgan.encode(q, steps=60)
    assert z_inv.shape == (8, 10) and not z_inv.requires_grad
    with torch.no_grad(): e_enc, e_inv = [(dcgan(z) - q).abs().flatten(1).sum(1) for z in (z_enc, z_inv)]
    assert (e_inv < e_enc).all()
    assert model_state(dcgan) == before


def test_dcgan_cache_is_atomic_and_safe(tmp_path, monkeypatch):
    monkeypatch.setenv('CAUSAL_NB_CACHE', str(tmp_path))
    data = fashion_mnist(train=False).subset(128, seed=1)
    g1 = trained_generator('dcgan', data=data, epochs=1)
    files = list((tmp_path / 'generators').glob('dcgan-*.pt'))
    assert len(files) == 1 and not [f for f in (tmp_path / 'generators').iterdir() if '.tmp' in f.name]
    assert isinstance(g1, DCGAN) and not g1.training
    loads = []
    real = torch.load
    monkeypatch.setattr(torch, 'load', lambda *a, **k: loads.append(k.get('weights_only')) or real(*a, **k))
    g2 = trained_generator('dcgan', data=data, epochs=1)
    assert loads == [True]
    assert all(torch.equal(v, g2.state_dict()[k]) for k, v in g1.state_dict().items())
    files[0].write_bytes(b'not a torch file')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        g3 = trained_generator('dcgan', data=data, epochs=1)
    assert any('unreadable generator cache' in str(x.message) for x in w)
    assert all(torch.equal(v, g3.state_dict()[k]) for k, v in g1.state_dict().items())     # retrained, same seed


@pytest.mark.parametrize('kw,err,msg', [
    (dict(lam=0), ValueError, 'lam must be a positive'),
    (dict(lam=-1.), ValueError, 'lam must be a positive'),
    (dict(lam='big'), TypeError, 'lam must be a number'),
    (dict(lam=torch.tensor([1., 0.])), ValueError, 'lam must be'),
    (dict(lr=0), ValueError, 'lr must be a positive'),
    (dict(p=3), ValueError, 'p must be 1 or 2'),
    (dict(steps=0), ValueError, 'steps must be a positive integer'),
    (dict(rounds=1.5), TypeError, 'rounds must be an integer, got float 1.5'),
    (dict(rounds=0), ValueError, 'rounds must be a positive integer'),
    (dict(grow=.5), ValueError, r'grow must be a finite number ≥ 1 \(1: fixed step size\), got 0.5'),
    (dict(keep='best'), ValueError, "keep must be 'last' or 'closest'"),
    (dict(distance='cosine'), ValueError, "distance must be 'image' or 'latent'"),
    (dict(min_prob=1.5), ValueError, r'min_prob must be a number in \[0, 1\), got 1.5'),
    (dict(z0=torch.full((2, 10), float('nan'))), ValueError, 'z0 contains 20 NaN'),
    (dict(z0=torch.zeros(3, 10)), ValueError, r'z0 must be a \(2, D\) tensor'),
    (dict(target=10), ValueError, r'target must lie in \[0, 9\]'),
    (dict(target=torch.tensor([1, 2, 3])), ValueError, 'target must be one class or'),
    (dict(fixed=torch.zeros(3, dtype=torch.bool)), ValueError, 'fixed must be a'),
])
def test_bad_input_is_refused_by_name(clf, vae, queries, kw, err, msg):
    q = queries[0][:2]
    kw = {'target': 1, **kw}
    with pytest.raises(err, match=msg): counterfactual(clf, vae, q, **kw)


def test_bad_models_and_images(clf, vae, queries):
    q = queries[0][:2]
    with pytest.raises(ValueError, match='does not match the query/classifier input shape'):
        counterfactual(clf, VAE((1, 14, 14)), q, 1, z0=torch.zeros(2, 10))
    with pytest.raises(TypeError, match='classifier must be a torch.nn.Module'): counterfactual(lambda x: x, vae, q, 1)
    with pytest.raises(TypeError, match='generator must be callable'): counterfactual(clf, 3, q, 1)
    with pytest.raises(TypeError, match='has no encode method'): counterfactual(clf, lambda z: z, q, 1)
    with pytest.raises((TypeError, ValueError), match='query'): counterfactual(clf, vae, q.numpy(), 1)
    with pytest.raises(ValueError, match='query'): counterfactual(clf, vae, q * 3, 1)
    with pytest.raises(ValueError, match=r'min_prob must be a number in \(0, 1\), got 1.0'): prototype(clf, vae, q, min_prob=1.)
    with pytest.raises(ValueError, match='kind must be one of'): trained_generator('gan')
    with pytest.raises(ValueError, match='n must be an integer'): trained_generator('dcgan', n=0)
    shapes = causal_shapes(8, seed=0)          # checked before any training: batch_size=0 used to fall back to the default silently
    with pytest.raises(ValueError, match='batch_size must be a positive integer, got 0'):
        trained_generator('vae', data=shapes, batch_size=0, cache=False)
    with pytest.raises(TypeError, match='batch_size must be an integer, got float 32.0'):
        trained_generator('vae', data=shapes, batch_size=32., cache=False)
    with pytest.raises(TypeError, match="min_prob must be a number, got str 'x'"): counterfactual(clf, vae, q, 1, min_prob='x')
    with pytest.raises(TypeError, match='data must be an ImageSet'): trained_generator('dcgan', data=torch.zeros(3))
    with pytest.raises(ValueError, match='divisible by 4'): DCGAN((1, 30, 30))


def test_the_classifier_is_left_as_it_came(vae, dcgan, queries, decoder):
    q, t = queries[0][:4], queries[1][:4]
    model = trained_model('small-cnn', 'fashion-mnist', quick=True, progress_bar=False).model
    model.train(); model.conv1.weight.requires_grad_(False)                   # an unusual state, on purpose
    handle = model.conv2.register_forward_hook(lambda m, i, o: None)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    before, gen_before = model_state(model), model_state(dcgan)
    counterfactual(model, vae, q, t, steps=5, rounds=2)
    counterfactual(model, dcgan, q, t, steps=5, rounds=2)
    prototype(model, vae, q, steps=5, rounds=1); criticism(model, vae, q, steps=5, rounds=1)
    with pytest.raises(ValueError): counterfactual(model, vae, q, 99)             # an error inside the guard
    assert model_state(model) == before and model_state(dcgan) == gen_before
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in weights.items())
    assert all(p.grad is None for p in model.parameters())
    assert list(model.conv2._forward_hooks) == [handle.id]
    handle.remove()


# ---- the split into steps changes no number -------------------------------------------------------------------------------
# `counterfactual` was one 100-line function; it is now a composition of _check_settings, _search_problem, _descend,
# _keep_better, _bracket and _next_round. The function as it was is copied below verbatim (tests only, not the package),
# and both must give bit-identical results on every path: keep='last' / 'closest', image / latent distance, fixed
# coordinates, min_prob, grow = 1, one round and several.
def _counterfactual_before_split(classifier: nn.Module,               # image classifier returning logits (N, K)
                                 generator: nn.Module,                # G(z) -> images shaped like `query`
                                 query: torch.Tensor,                 # (N, C, H, W) images to explain, in [0, 1]
                                 target: torch.Tensor | int,          # (N,) classes to move to, or one class for all
                                 lam: float | torch.Tensor = 10.0,    # starting λ (> 0; one, or one per query), the weight of the
                                                                      # classification loss
                                 p: int = 1,                          # norm of the distance, 1 or 2
                                 steps: int = 60,                     # Adam steps per round
                                 lr: float | torch.Tensor = 0.2,      # step size in latent space (one, or one per query)
                                 rounds: int = 4,                     # λ bisection rounds (1: no search, just λ)
                                 z0: torch.Tensor | None = None,      # starting latents; None: generator.encode(query)
                                 fixed: torch.Tensor | None = None,   # (D,) bool: latent coordinates held fixed
                                 distance: str = 'image',             # 'image': |query - G(z')|_p; 'latent': |z0 - z'|_p
                                 min_prob: float = 0.0,               # success also needs P(target) >= min_prob
                                 grow: float = 2.0,                   # a query that has not flipped yet takes steps this much larger
                                                                      # next round
                                 keep: str = 'last',                  # per round: 'last' (where Eq. 2's descent ended) or 'closest'
                                                                      # (the closest flip on the path)
                                 record_every: int = 10,              # keep every k-th step of the path (1: every step)
                                ) -> CounterfactualResult:
    "chapter 8's `counterfactual` before it was split into steps (commit 1bd9373), verbatim: kept here only to compare."
    if not isinstance(classifier, nn.Module): raise TypeError(f"classifier must be a torch.nn.Module, got {type(classifier).__name__}")
    if not callable(generator): raise TypeError(f"generator must be callable (an nn.Module G(z)), got {type(generator).__name__}")
    check_images(query, name='query')
    n, dev = query.shape[0], query.device
    lam0, step0 = _per_query('lam', lam, n, dev), _per_query('lr', lr, n, dev)
    check_number(grow, 'grow', 0, low_open=True)
    if grow < 1: raise ValueError(f"grow must be at least 1 (1: fixed step size), got {grow}")
    if keep not in ('last', 'closest'): raise ValueError(f"keep must be 'last' or 'closest', got {keep!r}")
    if p not in (1, 2): raise ValueError(f"p must be 1 or 2, got {p!r}")
    if distance not in ('image', 'latent'): raise ValueError(f"distance must be 'image' or 'latent', got {distance!r}")
    if not 0 <= min_prob < 1: raise ValueError(f"min_prob must lie in [0, 1), got {min_prob}")
    for name, v in (('steps', steps), ('rounds', rounds), ('record_every', record_every)):
        if isinstance(v, bool) or not isinstance(v, int) or v < 1: raise ValueError(f"{name} must be a positive integer, got {v!r}")
    z0 = _latent(generator, query, z0)
    gen_state = model_state(generator) if isinstance(generator, nn.Module) else None
    with evaluating(classifier), (evaluating(generator) if gen_state else contextlib.nullcontext()):
        with torch.no_grad(): out0 = generator(z0[:1])
        if tuple(out0.shape[1:]) != tuple(query.shape[1:]):
            raise ValueError(f"generator output shape {tuple(out0.shape[1:])} does not match the query/classifier input shape "
                             f"{tuple(query.shape[1:])}")
        with torch.no_grad(): k = classifier(query[:1]).shape[1]
        target = torch.as_tensor(target, dtype=torch.long, device=dev)
        if target.ndim == 0: target = target.expand(n).clone()
        if target.shape != (n,): raise ValueError(f"target must be one class or ({n},) classes, got shape {tuple(target.shape)}")
        if int(target.min()) < 0 or int(target.max()) >= k:
            raise ValueError(f"target must lie in [0, {k - 1}], got [{int(target.min())}, {int(target.max())}]")
        mask = torch.ones(z0.shape[1], device=dev)
        if fixed is not None:
            fixed = torch.as_tensor(fixed, dtype=torch.bool)
            if fixed.shape != (z0.shape[1],):
                raise ValueError(f"fixed must be a ({z0.shape[1]},) bool mask, got shape {tuple(fixed.shape)}")
            mask = (~fixed).float().to(dev)
        col = lambda t: t.view(-1, *([1] * (z0.ndim - 1)))
        def measure(z):                                         # G(z), logits, distance term, P(target), flipped?
            img = generator(z); logits = classifier(img)
            dist = ((img - query) if distance == 'image' else (z - z0)).flatten(1).norm(p=p, dim=1)
            with torch.no_grad():
                pr = logits.softmax(1); pt = pr.gather(1, target[:, None])[:, 0]
                ok = (pr.argmax(1) == target) & (pt >= min_prob)
            return img, logits, dist, pr, pt, ok
        t0 = time.perf_counter()
        lam_now, step = lam0.clone(), step0.clone()
        lo = torch.zeros(n, device=dev); hi = torch.full((n,), float('inf'), device=dev)
        best = None
        for r in range(rounds):
            u = torch.zeros_like(z0, requires_grad=True)           # z' = z0 + step·u: Adam moves u, each query at its own step size
            opt = torch.optim.Adam([u], lr=1.0)
            path = {'pi': [], 'pp': [], 'pd': [], 'pc': []}
            rz = z0.clone(); rd = torch.full((n,), float('inf'), device=dev); rok = torch.zeros(n, dtype=torch.bool, device=dev)
            rpt = torch.full((n,), -1., device=dev); rstep = torch.zeros(n, dtype=torch.long, device=dev)
            for s in range(steps + 1):
                z = z0 + col(step) * u * mask
                img, logits, dist, pr, pt, ok = measure(z)
                # the kept iterate: the last, or the closest flip (else the most probable target)
                with torch.no_grad():
                    if keep == 'last': take = torch.full_like(ok, s == steps)
                    else: take = (ok & (~rok | (dist < rd))) | (~ok & ~rok & (pt > rpt))
                    rz = torch.where(col(take), z.detach(), rz); rd = torch.where(take, dist.detach(), rd)
                    rpt = torch.where(take, pt, rpt); rstep = torch.where(take, torch.full_like(rstep, s), rstep); rok = rok | ok
                if s % record_every == 0 or s == steps:
                    for key, v in zip(path, (img.detach(), pt, dist.detach(), pr)): path[key].append(v)
                if s == steps: break
                loss = (lam_now * F.cross_entropy(logits, target, reduction='none') + dist).sum()   # Eq. 2, per query
                opt.zero_grad(); loss.backward(); opt.step()
            with torch.no_grad():
                img, _, d, prob, _, ok = measure(rz)
                l1 = (img - query).flatten(1).abs().sum(1)
            cand = dict(z=rz, images=img, probs=prob, success=ok, lam=lam_now.clone(), l1=l1, d=d, lr=step.clone(), best_step=rstep,
                        **{k: torch.stack(v) for k, v in path.items()})
            if best is None: best = cand
            else:                                               # keep: success beats failure, then the smaller distance
                pt_new, pt_old = prob.gather(1, target[:, None])[:, 0], best['probs'].gather(1, target[:, None])[:, 0]
                take = (ok & ~best['success']) | (ok & best['success'] & (d < best['d'])) | (~ok & ~best['success'] & (pt_new > pt_old))
                for key, v in cand.items():
                    lead = key in path                          # path tensors have the step axis first
                    sel = take.view(*([1] if lead else []), -1, *([1] * (v.ndim - (2 if lead else 1))))
                    best[key] = torch.where(sel, v, best[key])
            hi = torch.where(ok, torch.minimum(hi, lam_now), hi); lo = torch.where(ok, lo, torch.maximum(lo, lam_now))
            if r == rounds - 1: break
            stuck = torch.isinf(hi)                             # never flipped: larger λ and larger steps, and forget the failures
            step = torch.where(stuck, step * grow, step)
            if grow > 1: lo = torch.where(stuck, torch.zeros_like(lo), lo)
            lam_now = torch.where(stuck, lam_now * 10, torch.where(lo == 0, hi / 10, (lo * hi).sqrt()))
        seconds = time.perf_counter() - t0
    return CounterfactualResult(z=best['z'], z0=z0, images=best['images'], probs=best['probs'], target=target, success=best['success'],
                                lam=best['lam'], l1=best['l1'], path_images=best['pi'], path_probs=best['pp'], path_dist=best['pd'],
                                steps=steps * rounds, seconds=seconds, lr=best['lr'], lam_fail=lo, best_step=best['best_step'],
                                path_class_probs=best['pc'])


_FIELDS = ('z', 'z0', 'images', 'probs', 'target', 'success', 'lam', 'l1', 'path_images', 'path_probs', 'path_dist',
           'lr', 'lam_fail', 'best_step', 'path_class_probs')


def _same(a, b):
    assert a.steps == b.steps
    for f in _FIELDS:
        x, y = getattr(a, f), getattr(b, f)
        assert x.dtype == y.dtype and x.shape == y.shape and torch.equal(x, y), f


@pytest.mark.parametrize('kw', [dict(), dict(keep='closest', rounds=3), dict(p=2, min_prob=.6, grow=1., rounds=3),
                                dict(distance='latent', fixed=torch.arange(10) < 4, lam=torch.linspace(.5, 20, 8), rounds=1),
                                dict(lr=torch.linspace(.05, .4, 8), record_every=3, rounds=2)])
def test_split_counterfactual_is_bit_identical(clf, vae, queries, kw):
    q, t = queries[0][:8], queries[1][:8]
    kw = {'steps': 20, **kw}
    _same(counterfactual(clf, vae, q, t, **kw), _counterfactual_before_split(clf, vae, q, t, **kw))


def test_split_counterfactual_is_bit_identical_on_a_toy():
    torch.manual_seed(0)
    gen = nn.Sequential(nn.Linear(2, 4), nn.Sigmoid(), nn.Unflatten(1, (1, 2, 2)))
    c = nn.Sequential(nn.Flatten(), nn.Linear(4, 3))
    q, z0 = torch.rand(5, 1, 2, 2), torch.randn(5, 2)
    for kw in (dict(), dict(keep='closest', grow=3.), dict(target=torch.tensor([0, 1, 2, 0, 1]), min_prob=.5)):
        kw = {'target': 2, 'steps': 15, 'rounds': 4, 'record_every': 4, **kw}
        _same(counterfactual(c, gen, q, z0=z0, **kw), _counterfactual_before_split(c, gen, q, z0=z0, **kw))
