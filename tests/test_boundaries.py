"""Bad input at the public boundary gets a ValueError that names the argument the caller used: an empty batch to any
attack, labels out of range in filter ablation and in the explorers, images out of bounds passed as `data`; and the
plumbing every chapter shares (where a model lives, bootstrap intervals) behaves on the edge cases."""
import numpy as np
import pytest
import torch
from torch import nn

from causal_nb.attacks import bim, fgsm, jsma, pgd
from causal_nb.core import Node, bootstrap_ci, check_labels, model_device
from causal_nb.models import SmallCNN


@pytest.fixture(scope='module')
def net():
    torch.manual_seed(0)
    return SmallCNN().eval()


@pytest.fixture(scope='module')
def images():
    return torch.rand(8, 1, 28, 28, generator=torch.Generator().manual_seed(1))


BAD_LABELS = torch.tensor([0, 1, 2, 15, 0, 0, 0, 0])
RANGE = r'data must hold class indices in \[0, 9\] \(the model has 10 outputs\), got values in \[0, 15\]'


@pytest.mark.parametrize('attack', [fgsm, bim, pgd, jsma])
def test_empty_batch_to_any_attack(net, images, attack):
    with pytest.raises(ValueError, match=r'x is empty \(N = 0\)'): attack(net, images[:0], torch.zeros(0, dtype=torch.long))


def test_filter_ablation_refuses_labels_out_of_range(net, images):
    from causal_nb.filters import ablate_filters, pruning_curve
    with pytest.raises(ValueError, match=RANGE): ablate_filters(net, 'conv1', [0], (images, BAD_LABELS))
    with pytest.raises(ValueError, match=RANGE): pruning_curve(net, 'conv1', (images, BAD_LABELS), list(range(8)))
    ok = ablate_filters(net, 'conv1', [0], (images, BAD_LABELS.clamp(max=9)))
    assert ok.accuracy is not None and 0 <= ok.accuracy <= 1


def test_filters_and_tables_name_data_not_x(net, images):
    from causal_nb.filters import ablate_filters, filter_importance
    from causal_nb.interventions import NetworkSCM, expected_ce_table, idle
    bright = images * 2
    for call in (lambda: filter_importance(net, 'conv1', bright), lambda: ablate_filters(net, 'conv1', [0], bright),
                 lambda: expected_ce_table(NetworkSCM(net), [Node('conv1', 0)], {'Z0': idle}, bright, progress_bar=False)):
        with pytest.raises(ValueError, match=r'^data has values in .* outside bounds \(0, 1\)'): call()


def test_explorers_refuse_labels_out_of_range(net, images):
    from causal_nb.widgets import CEMExplorer, InterventionExplorer
    with pytest.raises(ValueError, match=RANGE): CEMExplorer(net, (images, BAD_LABELS), detector=None, device='cpu')
    with pytest.raises(ValueError, match=RANGE): InterventionExplorer(net, (images, BAD_LABELS), device='cpu')
    cx = CEMExplorer(net, (images, BAD_LABELS.clamp(max=9)), detector=None, device='cpu')
    with pytest.raises(ValueError, match=r'target must be one of \[-1, 0, 1, .*9\], got 12'): cx.set(target=12)   # no such class


def test_model_device_and_check_labels():
    assert model_device(nn.ReLU()) == torch.device('cpu')
    buffers_only = nn.BatchNorm2d(2, affine=False)
    assert model_device(buffers_only) == torch.device('cpu')
    with pytest.raises(TypeError, match='model must be a torch.nn.Module'): model_device(None)
    with pytest.raises(ValueError, match='target must have shape'): check_labels(torch.zeros(3, dtype=torch.long), 2, 4, name='target')


def test_bootstrap_ci_is_a_percentile_interval_of_the_mean():
    v = np.random.default_rng(0).exponential(size=(2, 300))
    lo, hi = bootstrap_ci(v, level=.9, n_boot=2000, seed=3)
    assert ((lo < v.mean(1)) & (v.mean(1) < hi)).all()
    half = 1.645 * v.std(1, ddof=1) / np.sqrt(300)
    np.testing.assert_allclose(hi - lo, 2 * half, rtol=.15)
    np.testing.assert_array_equal(bootstrap_ci(v, .9, 2000, 3)[1], hi)
    lo1, hi1 = bootstrap_ci(np.ones((2, 1)))
    assert np.isnan(lo1).all() and np.isnan(hi1).all()


# ---- scalar arguments: core's check_int / check_number at every entry point ----------------------------------------
def _scalar_calls():
    from causal_nb.core import chunk_size, seed_everything
    from causal_nb.data import causal_shapes
    from causal_nb.docalculus import fit_cpts
    from causal_nb.models import train
    shapes = causal_shapes(8, seed=0)
    return [  # (call, error, message): each of these was accepted silently or failed deep inside numpy / torch before
        (lambda: shapes.subset(20.5), TypeError, 'n must be an integer, got float 20.5'),                 # returned all 8
        (lambda: causal_shapes(8, size=20.5), TypeError, 'size must be an integer \\(pixels\\), got float 20.5'),
        (lambda: causal_shapes(8, spurious='a'), TypeError, "spurious must be a number \\(a probability\\), got str 'a'"),
        (lambda: shapes.split(True), TypeError, 'fraction must be a number, got bool True'),
        (lambda: train(SmallCNN(), shapes, epochs=1, lr='x'), TypeError, "lr must be a number, got str 'x'"),
        (lambda: chunk_size(10, 1, max_batch=2.5), TypeError, 'max_batch must be an integer, got float 2.5'),
        (lambda: seed_everything(1.), TypeError, 'seed must be an integer, got float 1.0'),
        (lambda: fit_cpts({'a': 2}, None, {'a': [0, 1]}, smoothing='x'), TypeError, "smoothing must be a number, got str 'x'"),
    ]


@pytest.mark.parametrize('i', range(8))
def test_scalar_arguments_are_refused_by_name(i):
    call, err, msg = _scalar_calls()[i]
    with pytest.raises(err, match=msg): call()
