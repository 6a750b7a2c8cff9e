"""The extension points: an attack registered in chapter 05, a map registered in chapter 07 and a kind of context registered
in chapter 06 show up, with no other edit, in the contexts of the Expected-CE tables, the robustness curve, the attacks
report, the detection sets, compare_maps, the faithfulness registry and the explorers; unregistering leaves every registry
as it was."""
import pytest
import torch

from causal_nb import attacks as A
from causal_nb import cem as C
from causal_nb.cem import GapCNN
from causal_nb.core import ReportContext, model_state
from causal_nb.data import ImageSet
import causal_nb.faithfulness, causal_nb.widgets   # noqa: F401  (they register maps on import: import them before any snapshot)


def toy_attack(model, x, y=None, eps=.3, *, target=None, head='softmax', bounds=(0., 1.), batch_size=None, evaluate=True):
    "Half an FGSM step: a stand-in for any new L∞ attack."
    return A.fgsm(model, x, y, eps / 2, target=target, head=head, bounds=bounds, batch_size=batch_size, evaluate=evaluate)


class Brighten:
    "A stand-in for any new kind of input context: every pixel raised by `amount`, clipped to [0, 1]."
    name = 'Bright'
    def __init__(self, amount): self.amount = amount
    def __call__(self, model, x, y=None, offset=0): return (x + self.amount).clamp(0, 1)


def toy_map(model, x, target=None, bounds=(0., 1.)):
    "Brightness: a stand-in for any new map (call shape (model, x, target, **settings) -> (N, H, W))."
    return x.mean(1)


@pytest.fixture(scope='module')
def setting():
    torch.manual_seed(0)
    model = GapCNN(3).eval()
    x = torch.rand(8, 1, 16, 16)
    y = model(x).argmax(1)
    return model, ImageSet(x, y, ['a', 'b', 'c'], name='toy')


@pytest.fixture
def toys():
    from causal_nb import interventions as I
    attacks, maps, contexts = dict(A.ATTACKS), dict(C.MAPS), dict(I.CONTEXTS)
    A.register_attack('toy', toy_attack)
    C.register_map('Toy', toy_map, compare=True)
    I.register_context('brighten', Brighten, 'amount', low=0., high=.5, step=.05, default=.1)
    try: yield
    finally:
        A.ATTACKS.pop('toy'); C.MAPS.pop('Toy'); I.CONTEXTS.pop('brighten')
        assert A.ATTACKS == attacks and C.MAPS == maps and I.CONTEXTS == contexts   # the registries are as they were


def test_new_attack_reaches_every_consumer(toys, setting):
    from causal_nb.interventions import NetworkSCM, expected_ce_table, paper_contexts
    model, data = setting
    x, y = data.images, data.labels
    assert [a.name for a in A.default_attacks()][-1] == 'TOY'
    ctx = paper_contexts(steps=2)
    assert list(ctx) == ['Z0', 'PWM', 'FGSM', 'BIM', 'PGD', 'JSMA', 'TOY']
    torch.testing.assert_close(ctx['TOY'](model, x, y), toy_attack(model, x, y, .3)[0])
    from causal_nb.core import Node
    table = expected_ce_table(NetworkSCM(model), [Node('conv3', 0)], {k: ctx[k] for k in ('Z0', 'TOY')}, data, progress_bar=False)
    assert list(table.columns)[-1] == 'TOY'
    curve = A.robustness_curve(model, x, y, eps=(0., .1), steps=2)
    assert list(curve.columns) == ['FGSM', 'BIM', 'PGD', 'TOY']
    sets = C.attack_sets(model, x, y, eps=(.3,))                   # chapter 07's detection tables
    assert list(sets) == ['FGSM ε=0.3', 'BIM ε=0.3', 'PGD ε=0.3', 'TOY ε=0.3', 'JSMA']
    sec = A.report_section(ReportContext(train=data, test=data, model=model, quick=True))
    assert 'TOY' in sec.numbers['attacks'] and 'TOY' in sec.numbers['robustness']


def test_new_map_reaches_every_consumer(toys, setting):
    from causal_nb.faithfulness import MAPS, attribution, available_maps
    model, data = setting
    x, y = data.images[:2], data.labels[:2]
    assert MAPS is C.MAPS                                          # one registry, not a copy per chapter
    maps = C.compare_maps(model, x, y, window=4, stride=4)
    assert list(maps) == ['CEM', 'CAM', 'Grad-CAM', 'Toy']
    torch.testing.assert_close(maps['Toy'], x.mean(1))
    assert 'Toy' in available_maps(model)
    torch.testing.assert_close(attribution('Toy', model, x, y, window=4, layer='conv3'), x.mean(1))


def test_explorers_offer_registered_attacks_and_maps(toys, setting):
    from causal_nb.widgets import CEMExplorer, InterventionExplorer
    model, data = setting
    before = model_state(model)
    ex = InterventionExplorer(model, data, device='cpu')
    assert 'toy' in ex.controls['attack'].options
    s = ex.set(context='attack', attack='toy', eps=.2)
    assert s['error'] is None and ex.controls['eps'].layout.display is None and 'TOY ε=0.2' in ex.captions['input'].value
    assert ex.controls['context'].options == ('none', 'pixel mask', 'brighten', 'attack')
    s = ex.set(context='brighten', amount=.3)                      # a registered context, with its own slider
    assert s['error'] is None and ex.controls['amount'].layout.display is None and ex.controls['fraction'].layout.display == 'none'
    assert 'brighten amount=0.3' in ex.captions['input'].value
    torch.testing.assert_close(ex._xc.cpu(), (data.images[s['index']:s['index'] + 1] + .3).clamp(0, 1))
    cx = CEMExplorer(model, data, detector=None, device='cpu')
    assert 'Toy' in cx.controls['method'].options and 'toy' in cx.controls['attack'].options
    s = cx.set(method='Toy', attack='toy', eps=.2)
    assert s['error'] is None and cx.controls['window'].disabled
    torch.testing.assert_close(cx.maps()[0], data.images[0].mean(0))
    s = cx.set(attack='jsma')
    assert s['error'] is None and cx.controls['eps'].layout.display == 'none'
    with pytest.raises(ValueError, match=r"methods must name registered maps among .*got \['LIME'\]"):
        CEMExplorer(model, data, detector=None, device='cpu', methods=['LIME'])
    after = model_state(model)
    assert after.training == before.training and after.requires_grad == before.requires_grad


def test_registration_is_checked():
    with pytest.raises(ValueError, match='lower-case'): A.register_attack('Toy', toy_attack)
    with pytest.raises(ValueError, match="norm must be 'linf', 'l2' or None"): A.register_attack('toy', toy_attack, norm='l1')
    with pytest.raises(TypeError, match='fn must be'): C.register_map('Toy', 3)
    with pytest.raises(ValueError, match='needs must be among'): C.register_map('Toy', toy_map, needs=('superpixels',))
    assert 'toy' not in A.ATTACKS and 'Toy' not in C.MAPS
