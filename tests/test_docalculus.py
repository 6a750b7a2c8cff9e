"Bad inputs and properties of the do-calculus engine."
import networkx as nx
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from causal_nb.docalculus import (CausalGraph, adjust, augment, backdoor_set, do, effect, effect_table, expected_effect,
                                  fit_cpts, is_backdoor_set, kidney_stones, query, random_network, sample, three_conditions)


# ---- bad input -----------------------------------------------------------------------------------------------------
def test_cycle():
    with pytest.raises(ValueError, match='cycle'):
        CausalGraph({'A': 2, 'B': 2, 'C': 2}, {'B': ['A'], 'C': ['B'], 'A': ['C']}, None)


@pytest.mark.parametrize('call,msg', [
    (lambda g: query(g, 'Q'), "unknown variable 'Q'"),
    (lambda g: query(g, 'Y', do={'Q': 0}), "unknown variable 'Q'"),
    (lambda g: query(g, 'Y', evidence={'Z': 5}), r"evidence\['Z'\] = 5 is not a state"),
    (lambda g: query(g, 'Y', do={'X': 'on'}), r"do\['X'\] = 'on' is not a state"),
    (lambda g: query(g, 'Y', do={'X': 1}, evidence={'X': 1}), 'both do and evidence'),
    (lambda g: query(g, []), 'targets is empty'),
    (lambda g: query(g, ['Y', 'Y']), 'twice'),
    (lambda g: query(g, 3), 'variable name'),
    (lambda g: query(g, 'Y', do=[('X', 1)]), 'must be a dict'),
    (lambda g: effect(g, 'X', 1, 'Y', 1, evidence={'X': 0}), 'also in evidence'),
    (lambda g: is_backdoor_set(g, 'X', 'Y', ['X']), 'disjoint'),
    (lambda g: augment(g, 'nope'), "unknown variable 'nope'"),
])
def test_bad_queries(call, msg):
    with pytest.raises((ValueError, TypeError), match=msg): call(three_conditions()['III'])


def test_bad_cpts():
    with pytest.raises(ValueError, match='sum to 1'): CausalGraph({'A': 2}, None, {'A': [.5, .6]})
    with pytest.raises(ValueError, match='shape'): CausalGraph({'A': 3}, None, {'A': [.5, .5]})
    with pytest.raises(ValueError, match='≥ 0'): CausalGraph({'A': 2}, None, {'A': [float('nan'), 1.]})
    with pytest.raises(TypeError, match='variable names must be strings'): CausalGraph({1: 2}, None, None)
    with pytest.raises(TypeError, match="write \\['A'\\]"): CausalGraph({'A': 2, 'B': 2}, {'B': 'A'}, None)


def test_zero_probability_evidence():
    g = CausalGraph({'W': 2, 'X': 2, 'Y': 2}, {'Y': ['X']}, {'W': [.5, .5], 'X': [1., 0.], 'Y': [[1., 0.], [.5, .5]]})
    with pytest.raises(ValueError, match='probability 0'): query(g, 'Y', evidence={'X': 1})
    with pytest.raises(ValueError, match=r"probability 0 under do\(X=0\)"): query(g, 'W', do={'X': 0}, evidence={'Y': 1})
    assert query(g, 'W', do={'X': 1}, evidence={'Y': 1})[0] == .5   # fine where the intervention makes the evidence possible


def test_positivity():
    g = CausalGraph({'Z': 2, 'X': 2, 'Y': 2}, {'X': ['Z'], 'Y': ['X', 'Z']},
                    {'Z': [.5, .5], 'X': [[1., 0.], [.5, .5]], 'Y': [[[.5, .5]] * 2] * 2})
    with pytest.raises(ValueError, match='positivity fails'): adjust(g, 'X', 1, 'Y', ['Z'])


# ---- properties ----------------------------------------------------------------------------------------------------
nets = st.builds(random_network, n_vars=st.integers(2, 9), max_parents=st.integers(0, 3),
                 n_states=st.integers(2, 3), seed=st.integers(0, 10_000))


def _pick(g, data):
    X = data.draw(st.sampled_from(list(g.variables)))
    Y = data.draw(st.sampled_from([v for v in g.variables if v != X]))
    return X, Y


@settings(max_examples=40, deadline=None)
@given(nets, st.data())
def test_distributions_normalised(g, data):
    X, Y = _pick(g, data)
    for d in (query(g, Y), query(g, [X, Y]), query(g, Y, do={X: 0})):
        assert abs(float(d.probs.sum()) - 1) < 1e-12 and bool((d.probs >= 0).all())


@settings(max_examples=40, deadline=None)
@given(nets, st.data())
def test_augmented_route_equals_do_route(g, data):
    X, Y = _pick(g, data)
    a = augment(g, X)
    for i, x in enumerate(g.states[X]):
        torch.testing.assert_close(query(a, Y, evidence={f'F_{X}': f'do({x})'}).probs, query(g, Y, do={X: x}).probs, atol=1e-12, rtol=0)
    torch.testing.assert_close(query(a, Y, evidence={f'F_{X}': 'idle'}).probs, query(g, Y).probs, atol=1e-12, rtol=0)


@settings(max_examples=40, deadline=None)
@given(nets, st.data())
def test_do_equals_brute_force_truncated_factorisation(g, data):
    "Against the full joint (only for small networks): P(v | do(x)) = Π_{i ≠ X} P(v_i | pa_i) with X = x."
    X, Y = _pick(g, data)
    h = do(g, {X: 1})
    letters = {v: chr(97 + i) for i, v in enumerate(g.variables)}
    ops = [h.cpts[v] for v in g.variables]
    spec = ','.join(''.join(letters[u] for u in h.parents[v] + (v,)) for v in g.variables) + '->' + letters[Y]
    torch.testing.assert_close(query(g, Y, do={X: 1}).probs, torch.einsum(spec, *ops), atol=1e-12, rtol=0)


@settings(max_examples=40, deadline=None)
@given(nets, st.data())
def test_backdoor_adjustment_equals_do(g, data):
    X, Y = _pick(g, data)
    Z = backdoor_set(g, X, Y)
    if Z is None or Y in nx.ancestors(g.dag, X): return
    assert is_backdoor_set(g, X, Y, sorted(Z))
    try: a = adjust(g, X, 0, Y, sorted(Z))
    except ValueError as e:
        assert 'positivity' in str(e); return
    torch.testing.assert_close(a.probs, query(g, Y, do={X: 0}).probs, atol=1e-10, rtol=0)


@settings(max_examples=30, deadline=None)
@given(nets, st.data())
def test_effect_of_a_root_averages_to_zero(g, data):
    "For a root X (no confounding) Σ_x P(x) · Effect(x) = 0 and P(y | do(x)) = P(y | x)."
    X, Y = _pick(g, data)
    if g.parents[X]: return
    assert abs(expected_effect(g, X, Y, g.states[Y][0], absolute=False)) < 1e-12
    t = effect_table(g, X, Y, g.states[Y][0])
    for x in g.states[X]:
        assert abs(t.loc[x].iloc[1] - query(g, Y, evidence={X: x}).probs[0]) < 1e-12


def test_effect_matches_definition_with_evidence():
    g = kidney_stones()
    for x in ('A', 'B'):
        e = effect(g, 'X', x, 'Y', 'yes', evidence={'Z': 'large'})
        ref = query(g, 'Y', do={'X': x}, evidence={'Z': 'large'})['yes'] - query(g, 'Y', evidence={'Z': 'large'})['yes']
        assert abs(e - ref) < 1e-12


def test_fit_recovers_tables_and_is_deterministic():
    g = kidney_stones()
    assert sample(g, 100, seed=3).equals(sample(g, 100, seed=3))
    f = fit_cpts(g.states, g.parents, sample(g, 50_000, seed=0))
    for v in g.states: torch.testing.assert_close(f.cpts[v], g.cpts[v], atol=0.02, rtol=0)


# ---- chapter 03's Eq. 2 and chapter 06's Eq. 2 on a network are one quantity --------------------------------------------
@pytest.mark.parametrize('seed', [0, 1, 2])
def test_expected_effect_equals_network_eq2(seed):
    """A random confounded discrete graph Z → X → Y ← Z (|Z| = 2, |X| = 3, |Y| = 3) as a network that reads z and x off
    two pixels and outputs log P(y | x, z); over a population with the graph's frequencies, `node_expected_effect`
    (chapter 06) equals `expected_effect` (chapter 03) for every class, signed and absolute."""
    from torch import nn
    from causal_nb.core import Node
    from causal_nb.interventions import NetworkSCM, node_expected_effect
    g = torch.Generator().manual_seed(seed)
    py = torch.rand((2, 3, 3), generator=g) + .05; py = py / py.sum(-1, keepdim=True)   # P(y | z, x): (z, x, y)
    counts = torch.randint(1, 6, (2, 3), generator=g)                             # images per (z, x): P(z, x) = counts / total
    total = int(counts.sum())
    pz = counts.sum(1).double() / total; px_z = counts.double() / counts.sum(1, keepdim=True)

    class Net(nn.Module):
        def __init__(self): super().__init__(); self.register_buffer('logp', py.log()); self.node = nn.Identity()
        def forward(self, img):
            z = img[:, 0, 0, 0].round().long(); xv = self.node(img[:, :, :, 1:2])
            return self.logp[z, (xv[:, 0, 0, 0] * 2).round().long()]

    pop = torch.tensor([[z, x / 2] for z in range(2) for x in range(3) for _ in range(int(counts[z, x]))]).view(-1, 1, 1, 2)
    graph = CausalGraph({'Z': [0, 1], 'X': [0, 1, 2], 'Y': [0, 1, 2]}, {'X': ['Z'], 'Y': ['X', 'Z']},
                        {'Z': pz.tolist(), 'X': px_z.tolist(), 'Y': py.permute(1, 0, 2).tolist()})
    scm = NetworkSCM(Net().eval())
    for absolute in (True, False):
        net = node_expected_effect(scm, Node('node', 0), pop, bins=[.25, .75], absolute=absolute, n_images=None)
        ref = np.array([expected_effect(graph, 'X', 'Y', k, absolute=absolute) for k in range(3)])
        np.testing.assert_allclose(net.to_numpy(), ref, atol=1e-6, rtol=0)
