"Patching from the outside: random masks, layers and sources against forward hooks; the model unchanged after errors."
import pytest
import torch
from hypothesis import given, settings, strategies as st

from causal_nb.core import Node, get_module, intervene, model_state
from causal_nb.interventions import NetworkSCM, PixelMask
from causal_nb.models import LeNet5, SmallCNN
from causal_nb.patching import (AddNoise, MeanAblate, Patch, Resample, causal_trace, interchange, path_patch,
                                patched_do, patched_sweep, patching_ce_table)

torch.manual_seed(0)
MODELS = {'small': SmallCNN().eval(), 'lenet': LeNet5().eval()}
LAYERS = {'small': ['conv1', 'conv2', 'fc1', 'fc2'], 'lenet': ['conv1', 'conv2', 'fc1', 'fc3']}


def capture(model, x, layer):
    got = {}
    h = get_module(model, layer).register_forward_hook(lambda m, i, o: got.__setitem__('a', o))
    with torch.no_grad(): model(x)
    h.remove()
    return got['a']


def hooked(model, base, new, layer, masks):
    out = []
    for m in masks:
        with torch.no_grad(), intervene(model, {layer: lambda o, m=m: torch.where(m, new, o)}):
            out.append(torch.softmax(model(base), 1))
    return torch.stack(out)


@settings(max_examples=12, deadline=None)
@given(name=st.sampled_from(sorted(MODELS)), li=st.integers(0, 3), n=st.integers(1, 4), m=st.integers(1, 5),
       paired=st.booleans(), seed=st.integers(0, 10_000))
def test_interchange_equals_hooks_for_random_masks(name, li, n, m, paired, seed):
    g = torch.Generator().manual_seed(seed)
    model, layer = MODELS[name], LAYERS[name][li]
    base, source = torch.rand(n, 1, 28, 28, generator=g), torch.rand(n if paired else 1, 1, 28, 28, generator=g)
    shape = capture(model, base[:1], layer).shape[1:]
    masks = torch.rand(m, *shape, generator=g) < torch.rand(m, *[1] * len(shape), generator=g)
    got = interchange(NetworkSCM(model), base, source, layer, masks)
    torch.testing.assert_close(got, hooked(model, base, capture(model, source, layer), layer, masks), atol=1e-6, rtol=0)


def test_random_interventions_do_not_depend_on_the_batch_size():
    model = MODELS['small']; scm = NetworkSCM(model)
    x, ref = torch.rand(7, 1, 28, 28), torch.rand(9, 1, 28, 28)
    nodes = [Node('conv2', i) for i in range(0, 64, 9)]
    for iv in (Resample(ref, seed=5), AddNoise(.3, seed=2)):
        whole = patched_sweep(scm, x, nodes, iv, offset=100)
        parts = torch.cat([patched_sweep(scm, x[i:i + 2], nodes, iv, offset=100 + i) for i in range(0, 7, 2)], 1)
        torch.testing.assert_close(whole, parts, atol=1e-6, rtol=0)
    t1 = patching_ce_table(scm, nodes[:3], {'Z0': lambda m, x, y: x}, x, Resample(ref, seed=5), batch_size=7, ci='normal')
    t3 = patching_ce_table(scm, nodes[:3], {'Z0': lambda m, x, y: x}, x, Resample(ref, seed=5), batch_size=3, ci='normal')
    torch.testing.assert_close(torch.tensor(t1.to_numpy()), torch.tensor(t3.to_numpy()), atol=1e-7, rtol=0)


BAD = [
    (lambda s, x: patched_sweep(s, x, [Node('conv2', 0)], Patch(torch.rand(3, 1, 28, 28))), 'source has 3 images and x has 4'),
    (lambda s, x: patched_sweep(s, x, [Node('conv2', 0)], Patch(torch.rand(4, 1, 20, 20))), 'source images have shape (1, 20, 20)'),
    (lambda s, x: patched_do(s, x, {Node('conv2', -65): Patch(x)}), 'node index -65 is out of range'),
    (lambda s, x: patched_do(s, x, {Node('conv9', 0): MeanAblate(x)}), "layer 'conv9' is not a module"),
    (lambda s, x: MeanAblate(x[:0]), 'reference is empty'),
    (lambda s, x: Resample([1, 2]), 'reference must be images'),
    (lambda s, x: causal_trace(s, x, PixelMask(.2), layers=['nope']), "layer 'nope' is not a module"),
    (lambda s, x: causal_trace(s, x, PixelMask(.2), over='pixels'), "over must be 'nodes' or 'positions'"),
    (lambda s, x: causal_trace(s, x, lambda m, x, y: x[:1]), 'must return images shaped'),
    (lambda s, x: path_patch(s, x, x, Node('fc1', 0), [Node('conv2', 1)]), 'receivers must be downstream'),
    (lambda s, x: path_patch(s, x, x, Node('conv1', 40), [Node('conv2', 1)]), 'node index 40 is out of range'),
    (lambda s, x: interchange(s, x, x, 'conv2', torch.ones(2, 3, dtype=torch.bool)), 'masks must have shape'),
    (lambda s, x: interchange(s, x * 5, x, 'conv2', torch.ones(1, 64, dtype=torch.bool)), 'outside bounds'),
]


@pytest.mark.parametrize('call,message', BAD, ids=[m for _, m in BAD])
def test_bad_input_is_refused_and_the_model_is_unchanged(call, message):
    model = SmallCNN().train()
    for p in list(model.parameters())[:2]: p.requires_grad_(False)
    before = model_state(model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises((ValueError, TypeError), match=None) as e:
        call(NetworkSCM(model), torch.rand(4, 1, 28, 28))
    assert message in str(e.value), str(e.value)
    assert model_state(model) == before
    assert all(torch.equal(weights[k], v) for k, v in model.state_dict().items())


def test_a_failing_receiver_run_removes_its_hooks():
    "An exception inside the path-patching forward pass (here: a layer that returns garbage) leaves no hook behind."
    model = SmallCNN().eval(); before = model_state(model)
    boom = model.fc1.register_forward_hook(lambda m, i, o: (_ for _ in ()).throw(RuntimeError('boom')))
    with pytest.raises(RuntimeError, match='boom'):
        path_patch(NetworkSCM(model), torch.rand(2, 1, 28, 28), torch.rand(2, 1, 28, 28), Node('conv1', 0), [Node('conv2', 1)])
    boom.remove()
    assert model_state(model) == before


def test_report_section_runs_from_the_module():
    "The report calls the module, not the notebook: its section must run on the module's own imports."
    from causal_nb.core import ReportContext
    from causal_nb.data import causal_shapes
    from causal_nb.patching import report_section
    data = causal_shapes(40, size=28, seed=0)
    model = SmallCNN(len(data.classes)).eval(); before = model_state(model)
    sec = report_section(ReportContext(train=None, test=data, model=model, quick=True))
    assert sec.title == 'Patching and causal tracing' and sum(p.startswith('<figure') for p in sec.parts) == 2
    assert sec.numbers['value'] in ('recovered', 'indirect_effect')
    assert model_state(model) == before
