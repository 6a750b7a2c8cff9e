"""The explorers of chapter 10, headless: controls set from code fire the same callbacks a front end does; what they
show must be the chapters' own numbers, bad input must be refused by name, and the model must come back unchanged."""
import io

import ipywidgets as W
import numpy as np
import pytest
import torch
import torchvision
from PIL import Image
from torch import nn

from causal_nb.autoencoder import ConceptAutoencoder, insert_autoencoder
from causal_nb.cem import GapCNN, causal_effect_map, grad_cam
from causal_nb.core import Node, model_state
from causal_nb.counterfactuals import AttributeDecoder, counterfactual, shape_attributes
from causal_nb.data import causal_shapes, load_data
from causal_nb.filters import ablate_filters, filter_importance
from causal_nb.interventions import NetworkSCM, PixelMask, Scale, SetTo, ZeroOut, effect
from causal_nb.models import SmallCNN, trained_model
from causal_nb.interventions import expected_ce
from causal_nb.widgets import (CEMExplorer, CounterfactualExplorer, DoseResponseExplorer, Explorer, FilterExplorer, InterventionExplorer,
                               _model_on, _tidy, dashboard, image_png, probability_bars)


@pytest.fixture(scope='module')
def fm():
    return trained_model('small-cnn', 'fashion-mnist', quick=True, progress_bar=False).model


@pytest.fixture(scope='module')
def sample():
    return load_data('fashion-mnist', train=False).subset(48, seed=3)


def snapshot(m):
    return (model_state(m), {k: v.clone() for k, v in m.state_dict().items()},
            sum(len(x._forward_hooks) + len(x._forward_pre_hooks) for x in m.modules()))


def unchanged(m, snap):
    st, sd, hooks = snap
    now = model_state(m)
    return (now.training == st.training and now.requires_grad == st.requires_grad and
            all(torch.equal(v, m.state_dict()[k]) for k, v in sd.items()) and
            sum(len(x._forward_hooks) + len(x._forward_pre_hooks) for x in m.modules()) == hooks)


def png_size(b):
    with Image.open(io.BytesIO(b)) as im: return im.size


def test_pictures_and_bars():
    assert png_size(image_png(torch.rand(3, 10, 20), size=40)) == (40, 20)
    assert png_size(image_png(torch.rand(10, 10), 'magma', size=30)) == (30, 30)
    with pytest.raises(ValueError, match=r'mask must have the image.s shape'):
        image_png(torch.rand(1, 5, 5), mask=torch.zeros(4, 4, dtype=torch.bool))
    with pytest.raises(ValueError, match='cmap needs a map'): image_png(torch.rand(3, 5, 5), 'magma')
    html = probability_bars({'a': [.25, .75]}, ['x', 'y'])
    assert '0.250' in html and '0.750' in html


def test_intervention_explorer_shows_chapter_6(fm, sample):
    snap = snapshot(fm.train())                           # a model left in training mode must stay there
    ex = InterventionExplorer(fm, sample, device='cpu')
    assert ex.model is fm and ex.state['error'] is None and ex.state['cache'] == 'prefix-cache'
    scm = NetworkSCM(fm)
    views = {k: v.value for k, v in ex.views.items()}
    s = ex.set(image=4, layer='conv2', node=11, intervention='set value', value=1.5)
    x = sample.images[4:5]
    assert s['index'] == 4 and s['layer'] == 'conv2' and s['node'] == 11
    torch.testing.assert_close(torch.tensor(s['probs_after']), scm.do(x, {Node('conv2', 11): SetTo(1.5)})[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.tensor(s['effect']), effect(scm, x, {Node('conv2', 11): SetTo(1.5)})[0], atol=1e-5, rtol=0)
    assert ex.views['input'].value != views['input'] and ex.views['node_after'].value != views['node_after']
    assert abs(s['node_mean_after'] - 1.5) < 1e-5
    html = ex.probs.value
    ex.controls['value'].value = -1.                      # a slider moved by hand: the callback redraws
    assert ex.state['value'] == -1. and ex.probs.value != html
    assert abs(ex.state['node_mean_after'] + 1.) < 1e-5
    s = ex.set(intervention='scale', value=0.)
    torch.testing.assert_close(torch.tensor(s['probs_after']), scm.do(x, {Node('conv2', 11): Scale(0.)})[0], atol=1e-5, rtol=0)
    s = ex.set(context='pixel mask', fraction=.5, intervention='zero-out')
    xm = PixelMask(.5, seed=0)(fm, x, offset=4)
    torch.testing.assert_close(torch.tensor(s['effect']), effect(scm, xm, {Node('conv2', 11): ZeroOut()})[0], atol=1e-5, rtol=0)
    for attack in ('fgsm', 'bim', 'pgd', 'jsma'):
        s = ex.set(context='attack', attack=attack, eps=.15)
        assert s['error'] is None, s['error']
        assert ex._pert_box.layout.display is None
    s = ex.set(context='none', layer='fc2', node=3)       # the output layer: one unit set to zero
    assert s['error'] is None and ex.controls['node'].max == 9
    s = ex.set(filter=2)                                  # images of class 2 only
    assert sample.labels[s['index']] == 2 and ex.controls['image'].max == int((sample.labels == 2).sum()) - 1
    assert unchanged(fm, snap)
    fm.eval()


def test_explorers_refuse_bad_input_by_name(fm, sample):
    ex = InterventionExplorer(fm, sample, device='cpu')
    with pytest.raises(ValueError, match=r"unknown control\(s\) \['colour'\]"): ex.set(colour=1)
    with pytest.raises(ValueError, match=r'node must lie in \[0, 31\], got 32'): ex.set(node=32)
    with pytest.raises(TypeError, match='node must be an integer, got float'): ex.set(node=2.5)
    with pytest.raises(ValueError, match=r"intervention must be one of \['zero-out', 'set value', 'scale', 'patch'\]"):
        ex.set(intervention='clamp')
    with pytest.raises(ValueError, match='eps must lie in'): ex.set(eps=-1.)
    with pytest.raises(TypeError, match='data must be an ImageSet'): InterventionExplorer(fm, 'images')
    with pytest.raises(ValueError, match='data has 48 images but 3 labels'): InterventionExplorer(fm, (sample.images, sample.labels[:3]))
    with pytest.raises(ValueError, match='data has values in'): InterventionExplorer(fm, sample.images * 3)
    with pytest.raises(TypeError, match='model must be a torch.nn.Module'): InterventionExplorer(lambda x: x, sample)
    with pytest.raises(ValueError, match="head must be one of"): InterventionExplorer(fm, sample, head='linear')
    with pytest.raises(ValueError, match='device'): InterventionExplorer(fm, sample, device='tpu')
    with pytest.raises(TypeError, match='detector must be True, None or a fitted CEDetector'): CEMExplorer(fm, sample, detector=1)
    with pytest.raises(ValueError, match='n_fit must be an integer'): CEMExplorer(fm, sample, n_fit=2)
    with pytest.raises(ValueError, match='n_images must be a positive integer'): FilterExplorer(fm, sample, n_images=0)
    with pytest.raises(ValueError, match=r'attributes must be a \(48, D\) tensor'):
        CounterfactualExplorer(fm, sample, AttributeDecoder(28), attributes=torch.zeros(3, 10))
    with pytest.raises(ValueError, match=r'generator makes images shaped \(1, 32, 32\)'):
        CounterfactualExplorer(fm, sample, AttributeDecoder(32), attributes=torch.zeros(48, 10))


def test_errors_show_in_the_widget_and_it_recovers(fm, sample):
    ex = InterventionExplorer(fm, sample.images[:4], device='cpu')     # no labels: no misclassified filter
    assert 'misclassified' not in [v for _, v in ex.controls['filter'].options]
    no = [k for k in range(10) if not (ex.p_data.argmax(1) == k).any()][0]     # without labels, a class means predicted as it
    s = ex.set(filter=no)
    assert 'no image matches the filter' in s['error'] and 'no image matches the filter' in ex.message.value
    s = ex.set(filter='all')
    assert s['error'] is None and ex.message.value == ''


def test_models_with_skips_and_concepts(sample):
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=10).eval()
    x = torch.rand(6, 3, 32, 32)
    ex = InterventionExplorer(net, x, device='cpu', size=64)
    s = ex.set(layer='layer2.0.conv1', node=7, image=2)
    assert s['cache'] == 'prefix-cache' and s['error'] is None
    torch.testing.assert_close(torch.tensor(s['probs_after']), NetworkSCM(net).do(x[2:3], {Node('layer2.0.conv1', 7): ZeroOut()})[0],
                               atol=1e-5, rtol=0)
    small = SmallCNN().eval()
    aem = insert_autoencoder(small, 'pool1', ConceptAutoencoder(32, 4, hidden=8))
    cx = InterventionExplorer(aem, sample, device='cpu')
    names = [v for _, v in cx.controls['layer'].options]
    assert 'pool1_ae.concepts' in names and not any('encoder' in n or 'decoder' in n for n in names)
    s = cx.set(layer='pool1_ae.concepts', node=3)
    assert s['error'] is None and cx.controls['node'].max == 3


def test_sigmoid_head_and_multilabel_data():
    data = causal_shapes(40, seed=2, multilabel=True)
    torch.manual_seed(0)
    net = SmallCNN(len(data.classes), 1, data.images.shape[-1]).eval()
    ex = InterventionExplorer(net, data, head='sigmoid', device='cpu')
    s = ex.set(filter='misclassified')
    assert s['error'] is None or 'no image matches' in s['error']
    s = ex.set(filter='all', layer='conv1', node=1)
    p = NetworkSCM(net, head='sigmoid').do(data.images[:1], {Node('conv1', 1): ZeroOut()})[0]
    torch.testing.assert_close(torch.tensor(s['probs_after']), p, atol=1e-5, rtol=0)


def test_no_eps_slider_for_jsma(fm, sample):
    ex = InterventionExplorer(fm, sample, device='cpu')
    ex.set(context='attack', attack='fgsm')
    assert ex.controls['eps'].layout.display is None
    ex.set(attack='jsma')                                  # JSMA changes a number of pixels, not an ε-ball: no ε to offer
    assert ex.controls['eps'].layout.display == 'none'


def test_cem_explorer(fm, sample):
    snap = snapshot(fm)
    cx = CEMExplorer(fm, sample, device='cpu', n_fit=8)
    assert cx.detector is not None and cx.state['error'] is None and len(cx.state['scores']) == 2
    s = cx.set(image=7, window=6, stride=3, target=1)
    x = sample.images[7:8]
    torch.testing.assert_close(cx.maps()[0], causal_effect_map(fm, x, 1, 6, 3)[0], atol=1e-6, rtol=0)
    lo, hi = s['scale']
    assert lo == -hi and hi == pytest.approx(float(cx.maps().abs().max()))        # one signed scale for both maps
    cx.controls['window'].value = 2
    assert cx.controls['stride'].max == 2 and cx.state['stride'] == 2
    s = cx.set(method='Grad-CAM')
    assert cx.controls['window'].disabled and s['error'] is None
    torch.testing.assert_close(cx.maps()[0], grad_cam(fm, x, 1)[0], atol=1e-5, rtol=0)
    s = cx.set(method='CAM')
    assert 'global average pooling' in s['error'] and 'Choose Grad-CAM' in s['error']
    # the app's readers write no code
    assert not any(code in s['error'] for code in ('grad_cam(', 'nn.Linear', 'F.', '(model')), s['error']
    s = cx.set(method='CEM', attack='none')
    assert s['error'] is None and len(s['predicted']) == 1 and cx._attacked_boxes[0].layout.display == 'none'
    with pytest.raises(ValueError, match='detector is not fitted'):
        from causal_nb.cem import CEDetector
        CEMExplorer(fm, sample, detector=CEDetector(fm))
    none = CEMExplorer(GapCNN(), sample, detector=None, device='cpu')
    assert none.set(method='CAM')['error'] is None and none.state['scores'] is None
    assert unchanged(fm, snap)


def test_cem_explorer_incremental_equals_whole_images(fm, sample):
    "The explorer computes CEM with chapter 7a's incremental engine: the maps of the image and its FGSM copy equal whole masked images'."
    from causal_nb.occlusion import IncrementalOcclusion
    import causal_nb.widgets as wmod
    assert (isinstance(wmod._EXACT_OCCLUSION, IncrementalOcclusion) and wmod._EXACT_OCCLUSION.tau is None
            and not wmod._EXACT_OCCLUSION.first_order)
    snap = snapshot(fm)
    cx = CEMExplorer(fm, sample, detector=None, device='cpu')
    for image, window, stride in ((3, 4, 2), (11, 4, 3), (20, 5, 1)):
        s = cx.set(image=image, window=window, stride=stride, attack='fgsm', method='CEM', target=-1)
        assert s['error'] is None and len(cx._xs) == 2
        t = torch.full((2,), s['target'])
        whole = causal_effect_map(fm, cx._xs, t, window, stride)               # engine=None: every masked image through the whole model
        torch.testing.assert_close(cx.maps(), whole, atol=1e-6, rtol=0)
        assert float(whole.abs().max()) > 1e-4                                   # a map with something in it
    assert unchanged(fm, snap)


def test_counterfactual_explorer_latent(fm, sample):
    from causal_nb.counterfactuals import trained_generator
    vae = trained_generator('vae')
    snap, gsnap = snapshot(fm), snapshot(vae)
    kx = CounterfactualExplorer(fm, sample, vae, device='cpu', steps=20, rounds=2, record_every=4)
    s = kx.state
    assert s['error'] is None and s['path_length'] == 6 and s['step'] == 5
    assert kx.controls['step'].max == 5 and kx.play.max == 5
    s = kx.set(query=3, target=8)
    direct = counterfactual(fm, vae, sample.images[3:4], 8, steps=20, rounds=2, record_every=4)
    torch.testing.assert_close(torch.tensor(s['p_target_path']), direct.path_probs[:, 0], atol=2e-3, rtol=0)
    assert s['success'] == bool(direct.success[0])
    edited = kx.views['edited'].value
    s = kx.set(z0=1.25, z9=-2.)
    assert s['z'][0] == 1.25 and s['z'][9] == -2. and kx.views['edited'].value != edited
    torch.testing.assert_close(torch.tensor(s['probs_edited']), fm(vae(torch.tensor([s['z']]))).softmax(1)[0], atol=1e-5, rtol=0)
    s = kx.set_latent('query')                             # the sliders hold values on their step (0.01), so within half a step
    torch.testing.assert_close(torch.tensor(s['z']), kx.result.z0[0], atol=.005 + 1e-6, rtol=0)
    assert all(abs(v * 100 - round(v * 100)) < 1e-6 for v in s['z'])   # on the step: the browser has nothing to round and send back
    kx.reset_cf.click()                                    # the button does the same through its callback
    torch.testing.assert_close(torch.tensor(kx.state['z']), kx.result.z[0], atol=.005 + 1e-6, rtol=0)
    # a new query whose prediction is the current target would make a trivial 'found': the target moves to its runner-up
    t = kx.controls['target'].value
    q2 = next(i for i in range(len(sample.images)) if int(kx.p_data[i].argmax()) == t)
    s = kx.set(query=q2)
    assert s['target'] == int(kx.p_data[q2].topk(2).indices[1]) != t
    assert 'frame' in kx.captions['path'].value and 'Adam step' in kx.captions['path'].value
    # the change view measures the edit from the reconstruction G(z0), so the generator's blur is not shown as an edit:
    # at step 0 of the path (the reconstruction itself) there is no change at all
    s = kx.set(step=0)
    change = np.asarray(Image.open(io.BytesIO(kx.views['change'].value)).convert('RGB')).astype(int)
    assert np.abs(change - change[0, 0]).max() == 0, 'the change view is not blank at step 0'
    assert 'reconstruction' in kx.captions['change'].value and 'causal-nb-legend' in kx.captions['change'].value
    recon = vae(kx.result.z0)[0]
    assert abs(s['l1_from_reconstruction'] - float((kx.result.images[0] - recon).abs().sum())) < 1e-3
    assert unchanged(fm, snap) and unchanged(vae, gsnap)


def test_counterfactual_explorer_attributes():
    shapes = causal_shapes(24, seed=5)
    torch.manual_seed(0)
    clf, dec = SmallCNN(3, 1, 32).eval(), AttributeDecoder(32).eval()
    a = shape_attributes(shapes)
    kx = CounterfactualExplorer(clf, shapes, dec, attributes=a, device='cpu', steps=10, rounds=1, record_every=5)
    assert kx.mode == 'attributes' and kx.state['error'] is None
    assert [n for n in kx.z_names] == ['shape0', 'shape1', 'shape2', 'size', 'x', 'y', 'intensity', 'texture0', 'texture1', 'texture2']
    s = kx.set(size=1.2, x=.1)
    z = torch.tensor([s['z']])
    assert s['z'][3] == 1.2 and s['z'][4] == pytest.approx(.1)
    torch.testing.assert_close(torch.tensor(s['probs_edited']), clf(dec(z)).softmax(1)[0], atol=1e-5, rtol=0)


def test_filter_explorer(fm, sample):
    snap = snapshot(fm)
    fx = FilterExplorer(fm, sample, n_images=40, shown=4, device='cpu')
    s = fx.state
    assert s['layer'] == 'conv2' and s['off'] == [] and s['accuracy'] == s['baseline'] and len(fx.toggles) == 64
    rank = filter_importance(fm, 'conv2', sample.images[:40], n_images=None)
    assert s['ranking'][:8] == rank['importance'].sort_values(ascending=False, kind='stable').index[:8].tolist()
    assert [int(t.description) for t in fx.grid.children] == s['ranking']                 # the toggles in rank order
    thumbs = fx.thumbs.value
    s = fx.set(top_k=16)
    ab = ablate_filters(fm, 'conv2', s['ranking'][:16], (sample.images[:40], sample.labels[:40]))
    assert sorted(s['off']) == sorted(s['ranking'][:16]) and s['accuracy'] == pytest.approx(ab.accuracy)
    assert s['changed'] == pytest.approx(float(ab.changed.float().mean())) and s['changed'] > 0
    assert all(fx.toggles[f].button_style == 'danger' for f in s['off'])
    assert fx.thumbs.value != thumbs or not ab.changed[:4].any()
    fx.toggles[s['ranking'][20]].value = True             # one more, by hand
    assert len(fx.state['off']) == 17
    s = fx.set(method='magnitude')
    assert s['ranking'] == rank_magnitude(fm) and len(s['off']) == 17
    s = fx.set(layer='conv1')
    assert s['off'] == [] and len(fx.toggles) == 32 and fx.controls['top_k'].max == 32
    with pytest.raises(TypeError, match='off must be a list of filter indices'): fx.set(off=3)
    with pytest.raises(ValueError, match=r"off must hold filter indices in \[0, 31\]"): fx.set(off=[1, 99])
    assert unchanged(fm, snap)


def test_dose_response_explorer_is_chapter_6_over_a_sample(fm, sample):
    snap = snapshot(fm)
    dx = DoseResponseExplorer(fm, sample, n_images=40, points=5, device='cpu')
    assert dx.state['error'] is None and dx.state['n_images'] == 40 and png_size(dx.plot.value)[0] >= 600
    s = dx.set(layer='fc1', node=7, span=(-2., 2.), value=1., target=3)
    assert s['error'] is None and s['values'] == pytest.approx([-2., -1., 0., 1., 2.])
    scm, x, n = NetworkSCM(fm), sample.images[:40], Node('fc1', 7)
    p0 = scm.probs(x)
    ps = torch.stack([scm.do(x, {n: SetTo(v)}) for v in (-2., -1., 0., 1., 2.)])        # one value at a time, directly
    assert s['mean'] == pytest.approx(ps[..., 3].mean(1).tolist(), abs=1e-5)
    assert s['low'] == pytest.approx(torch.quantile(ps[..., 3], .1, dim=1).tolist(), abs=1e-5)
    assert s['expected_ce_curve'] == pytest.approx(((ps - p0) * p0).sum(-1).mean(1).tolist(), abs=1e-5)
    e = expected_ce(scm, n, x, intervention=SetTo(1.), progress_bar=False)
    assert s['expected_ce'] == pytest.approx(e.mean, abs=1e-7) and s['expected_ce_ci'] == pytest.approx((e.low, e.high), abs=1e-7)
    assert s['changed'] == pytest.approx(float((ps[3].argmax(1) != p0.argmax(1)).float().mean()))
    calls = []
    dx.scm.do_many, real = (lambda *a, **k: calls.append(1) or real(*a, **k)), dx.scm.do_many
    dx.set(target=-1); dx.set(value=-1.)                 # class and v redraw from the cached sweep
    assert calls == [] and dx.state['value'] == -1. and dx.state['error'] is None
    dx.set(node=8)                                       # a new node: a new sweep, its span and v from its observed values
    assert calls == [1] and dx.state['node'] == 8
    assert dx.state['values'][0] <= 0 <= dx.state['values'][-1]
    s = dx.set(images=9)                                 # one label's images
    assert s['n_images'] == int((sample.labels[:40] == 9).sum()) > 0
    s = dx.reset()
    assert (s['layer'], s['node'], s['images'], s['target'], s['error']) == ('conv1', 0, 'all', -1, None)
    with pytest.raises(ValueError, match='n_images must be an integer'): DoseResponseExplorer(fm, sample, n_images=1)
    with pytest.raises(ValueError, match=r'node must lie in \[0, 31\]'): dx.set(node=32)
    empty = DoseResponseExplorer(fm, (sample.images[:6], torch.zeros(6, dtype=torch.long)), device='cpu', points=3)
    s = empty.set(images=4)                              # no image with label 4: a message, and the explorer stays usable
    assert 'no image of the sample' in s['error'] and empty.set(images='all')['error'] is None
    assert unchanged(fm, snap)


def test_readable_on_a_projector(fm, sample):
    "No explorer text under 14 px, pictures that keep their size, 'Grad-CAM' not cut, the summary above the pictures."
    import re
    ex = InterventionExplorer(fm, sample, device='cpu')
    cx = CEMExplorer(fm, sample, detector=None, device='cpu')
    for e in (ex, cx):
        def html_of(w):
            out = [w.value] if isinstance(w, W.HTML) else []
            for c in getattr(w, 'children', ()): out += html_of(c)
            return out
        text = ' '.join(html_of(e.widget))
        sizes = [int(v) for v in re.findall(r'font-size:\s*(\d+)px', text)]
        assert sizes and min(sizes) >= 14, sizes
        assert '.causal-nb-image { flex: 0 0 auto; max-width: none; }' in text
        view = e.widget.children[-1]
        assert view.children[0] is e.summary                  # above the pictures, so it is in view at 1280×720
    assert int(cx.controls['method'].style.button_width.rstrip('px')) >= 100
    ex.set(layer='fc1', node=3)                           # 128 units on a 12 × 11 grid: 4 cells of padding
    from PIL import Image as I
    g = np.asarray(I.open(io.BytesIO(ex.views['node'].value)).convert('RGB'))
    step = g.shape[1] // 12
    assert tuple(g[-step // 2, -step // 2]) == (235, 235, 235) and 'grey: no unit' in ex.captions['node'].value


def test_tidy_numbers():
    assert _tidy(1.110223e-16) == '+0.0000' and _tidy(-0.01234) == '-0.0123' and _tidy(2e-5) == '+0.0000'


def rank_magnitude(m):
    w = m.conv2.weight.detach().abs().flatten(1).sum(1)
    return torch.sort(w, descending=True, stable=True).indices.tolist()


def test_dashboard_builds_tabs_lazily(fm, sample):
    tab = dashboard(fm, sample, device='cpu')
    assert isinstance(tab, W.Tab) and list(tab.explorers) == ['Interventions'] and tab.titles[1] == 'Causal effect maps'
    for i, title in enumerate(tab.titles):
        tab.selected_index = i
        assert title in tab.explorers and tab.explorers[title].state['error'] is None, (title, tab.explorers.get(title))
        assert tab.children[i].children[0] is tab.explorers[title].widget
    bad = dashboard(fm, sample, device='cpu', generator=nn.Linear(10, 784))
    bad.selected_index = 2                               # a failure to build is a message in the tab, not an exception
    assert 'Counterfactuals' not in bad.explorers and 'could not be built' in bad.children[2].children[0].value


def test_dashboard_says_what_it_builds_and_leaves_no_widget(fm, sample, monkeypatch):
    import causal_nb.widgets as wmod
    tab = dashboard(fm, sample, device='cpu', show=True)     # show: displayed first (here, outside a notebook, as text)
    assert 'opens when selected' in tab.children[1].children[0].value
    seen, real = {}, wmod.CEMExplorer
    def spy(*a, **k):                                        # what the tab shows while its explorer is being built
        seen['text'], seen['widgets'] = tab.children[1].children[0].value, list(tab.children[1].children)
        return real(*a, **{**k, 'detector': None})
    monkeypatch.setattr(wmod, 'CEMExplorer', spy)
    tab.selected_index = 1
    assert 'fitting the adversarial detector' in seen['text'] and 's so far' in seen['text']
    assert tab.children[1].children[0] is tab.explorers['Causal effect maps'].widget
    assert all(w.comm is None for w in seen['widgets'])        # the status line and the progress output are closed
    with pytest.raises(TypeError, match='show must be True or False'): dashboard(fm, sample, show='yes')


def test_dashboard_defaults():
    tab = dashboard()
    ex = tab.explorers['Interventions']
    assert ex.state['error'] is None and len(ex.x) == 200


def test_dashboard_by_data_set_name():
    "`causal-nb app --data digits` calls this: model, explorers and the counterfactual tab's VAE all on 8×8 digits."
    tab = dashboard(data='digits', n_images=50, device='cpu')
    ex = tab.explorers['Interventions']
    assert ex.state['error'] is None and tuple(ex.x.shape) == (50, 1, 8, 8)
    tab.selected_index = 2
    cf = tab.explorers['Counterfactuals']
    assert cf.state['error'] is None and tuple(cf.generator(torch.zeros(1, cf.generator.latent)).shape[1:]) == (1, 8, 8)
    with pytest.raises(ValueError, match='model is None but data is given as images'): dashboard(data=ex.x)


def test_display_and_device(fm, sample):
    ex = FilterExplorer(fm, sample, n_images=8, device='cpu')
    bundle = ex._repr_mimebundle_()
    assert 'application/vnd.jupyter.widget-view+json' in bundle
    assert _model_on(fm, torch.device('cpu')) is fm
    half = SmallCNN().double()
    assert _model_on(half, torch.device('cpu')) is half
    assert 'FilterExplorer(layer=' in repr(ex)
    assert isinstance(ex, Explorer) and ex.timings and all(t > 0 for t in ex.timings)
