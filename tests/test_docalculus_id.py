"""Identification, the rules of do-calculus and counterfactuals, checked against the truth (y0: test_docalculus_y0.py).

- ID: back-door and front-door estimands equal their textbook formulas; bad input and positivity failures are refused.
- The three rules: whenever a rule says it applies, its two sides are equal on a random model of the graph.
- Counterfactuals: the twin network and abduction-action-prediction equal brute-force enumeration of the exogenous
  states; PN, PS, PNS lie within the Tian-Pearl bounds, and equal the point values under monotonicity.
"""
import itertools

import numpy as np
import pytest

from causal_nb.docalculus import (ADMG, SCM, CausalGraph, NotIdentifiable, abduction_action_prediction, bow, causation_bounds,
                                  counterfactual, identify, is_monotone, kidney_stones, probabilities_of_causation, query,
                                  random_latent_network, rule1, rule2, rule3, smoking_tar_cancer)

TOL = 1e-9


def model_of(G: ADMG, seed: int, n_states: int = 2):
    "A random model of an ADMG: one latent root per bidirected edge, strictly positive random tables."
    rng = np.random.default_rng(seed)
    parents = {v: list(G.dag.predecessors(v)) for v in G.order}
    lat = []
    for i, (a, b) in enumerate(G.bidirected):
        u = f"L{i}"; lat.append(u); parents[a].append(u); parents[b].append(u)
    names = lat + list(G.order)
    cpts = {v: rng.dirichlet(np.ones(n_states), size=tuple([n_states] * len(parents.get(v, [])))) for v in names}
    return CausalGraph({v: n_states for v in names}, parents, cpts), lat


def assert_estimand_is_true(e, g, y, x, z=()):
    "e.evaluate equals the model's P(y | do(x), z) for every value of x and z."
    for xs in itertools.product(*(g.states[v] for v in x)):
        for zs in itertools.product(*(g.states[v] for v in z)):
            do, ev = dict(zip(x, xs)), dict(zip(z, zs))
            truth = query(g, list(y), do=do, evidence=ev or None).probs.numpy()
            got = e.evaluate(g, do, ev or None).probs.numpy()
            np.testing.assert_allclose(got, truth, atol=TOL, rtol=0, err_msg=f"{e} at do={do}, z={ev}")


# ------------------------------------------------------------------ back-door and front-door as special cases

def test_front_door_estimand_is_the_front_door_formula():
    g, lat = smoking_tar_cancer()
    obs = query(g, ['X', 'M', 'Y'])
    e = identify(g, 'Y', 'X', latent=lat)
    for x in g.states['X']:
        by_hand = sum(obs.probs[:, m].sum(-1)[g.states['X'].index(x)] / obs.probs[g.states['X'].index(x)].sum()
                      * sum(obs.probs[x2, m] / obs.probs[x2, m].sum() * obs.probs[x2].sum() for x2 in range(2))
                      for m in range(2))
        np.testing.assert_allclose(e.evaluate(obs, {'X': x}).probs.numpy(), by_hand.numpy(), atol=1e-12)


def test_back_door_estimand_equals_adjust():
    from causal_nb.docalculus import adjust
    ks = kidney_stones()
    e = identify(ks, 'Y', 'X')
    for x in ks.states['X']:
        np.testing.assert_allclose(e.evaluate(ks, {'X': x}).probs.numpy(), adjust(ks, 'X', x, 'Y', 'Z').probs.numpy(), atol=1e-12)


# ------------------------------------------------------------------ the three rules, checked numerically

def sides(g, rule, Y, X, Z, W, zs, ws, xs):
    "The two sides of the rule's equality on model g, at the given states."
    do_x, z, w = dict(zip(X, xs)), dict(zip(Z, zs)), dict(zip(W, ws))
    q = lambda do, ev: query(g, list(Y), do=do or None, evidence=ev or None).probs.numpy()
    if rule == 1: return q(do_x, {**z, **w}), q(do_x, w)
    if rule == 2: return q({**do_x, **z}, w), q(do_x, {**z, **w})
    return q({**do_x, **z}, w), q(do_x, w)


def test_every_licensed_rule_is_an_equality_on_a_random_model():
    rules = {1: rule1, 2: rule2, 3: rule3}
    applied = {1: 0, 2: 0, 3: 0}
    refused = 0
    for seed in range(12):
        g, lat = random_latent_network(5, n_latent=2, max_parents=2, seed=300 + seed)
        G = ADMG.from_graph(g, lat)
        rng = np.random.default_rng(seed)
        for _ in range(25):
            vs = list(rng.permutation(G.order))
            k = rng.integers(0, 2, size=2)
            Y, Z = vs[:1], vs[1:2]
            X, W = vs[2:2 + k[0]], vs[2 + k[0]:2 + k[0] + k[1]]
            for r, fn in rules.items():
                c = fn(G, Y, X, Z, W)
                if not c: refused += 1; continue
                applied[r] += 1
                for states in itertools.product(*([range(2)] * (len(Z) + len(W) + len(X)))):
                    zs, ws, xs = states[:len(Z)], states[len(Z):len(Z) + len(W)], states[len(Z) + len(W):]
                    try: a, b = sides(g, r, Y, X, Z, W, zs, ws, xs)
                    except ValueError: continue   # evidence of probability 0 under an intervention: nothing to compare
                    np.testing.assert_allclose(a, b, atol=1e-10, err_msg=str(c))
    assert min(applied.values()) >= 10 and refused >= 10, (applied, refused)


def test_rules_refuse_bad_sets():
    G = ADMG([('X', 'Y')], [('X', 'Y')])
    with pytest.raises(ValueError, match='y and z must be disjoint'): rule1(G, 'Y', [], 'Y')
    with pytest.raises(ValueError, match="unknown variable 'Q'"): rule3(G, 'Y', [], 'Q')
    with pytest.raises(ValueError, match='z is empty'): rule2(G, 'Y', 'X', [])


def test_identify_bad_input():
    G = ADMG([('X', 'M'), ('M', 'Y')], [('X', 'Y')])
    with pytest.raises(ValueError, match=r"contains the treatment \['X'\]"): identify(G, 'Y', 'X', z='X')
    with pytest.raises(ValueError, match="unknown variable 'W'"): identify(G, 'W', 'X')
    with pytest.raises(ValueError, match='cycle'): ADMG([('A', 'B'), ('B', 'A')])
    with pytest.raises(TypeError, match='graph must be an ADMG or a CausalGraph'): identify('G', 'Y', 'X')
    with pytest.raises(NotIdentifiable, match=r"Hedge: F = \{X, Y\}, F' = \{Y\}"):
        identify(bow(), 'Y', 'X').evaluate(kidney_stones(), {'X': 'A'})


def test_positivity_failure_is_refused():
    G = ADMG([('Z', 'X'), ('Z', 'Y'), ('X', 'Y')])
    g = CausalGraph({'Z': 2, 'X': 2, 'Y': 2}, {'X': ['Z'], 'Y': ['X', 'Z']},
                    {'Z': [.5, .5], 'X': [[1., 0.], [.5, .5]], 'Y': [[[.5, .5]] * 2] * 2})   # X = 1 never happens with Z = 0
    with pytest.raises(ValueError, match='positivity fails'):
        identify(G, 'Y', 'X').evaluate(g, {'X': 1})


# ------------------------------------------------------------------ counterfactuals against brute force

def random_scm(seed):
    "Three binary endogenous variables X → M → Y, X → Y, and exogenous U's shared between them."
    rng = np.random.default_rng(seed)
    ex = {u: rng.dirichlet(np.ones(k)) for u, k in (('Ua', 3), ('Ub', 2), ('Uc', 3))}
    eqs = {'X': (['Ua'], rng.integers(0, 2, size=(3,))),
           'M': (['X', 'Ub', 'Ua'], rng.integers(0, 2, size=(2, 2, 3))),
           'Y': (['X', 'M', 'Uc', 'Ub'], rng.integers(0, 2, size=(2, 2, 3, 2)))}
    return SCM(ex, {'X': 2, 'M': 2, 'Y': 2}, eqs)


def solve_units(scm, u, do=None):
    "The endogenous values of one unit u (a dict of exogenous states), under `do`, by plain Python."
    do, v = do or {}, dict(u)
    for name in scm.order:
        v[name] = do[name] if name in do else int(scm.tables[name][tuple(v[p] for p in scm.parents[name])])
    return v


def brute(scm, event):
    "P(event(unit)) by enumerating every exogenous state."
    us = list(scm.exogenous)
    total = 0.
    for combo in itertools.product(*(range(len(scm.exogenous[u])) for u in us)):
        p = float(np.prod([float(scm.exogenous[u][i]) for u, i in zip(us, combo)]))
        if event(dict(zip(us, combo))): total += p
    return total


@pytest.mark.parametrize('seed', range(8))
def test_counterfactuals_equal_brute_force(seed):
    scm = random_scm(seed)
    for x_obs, y_obs, x_cf in itertools.product(range(2), range(2), range(2)):
        ev = {'X': x_obs, 'Y': y_obs}
        fact = lambda u: (w := solve_units(scm, u))['X'] == x_obs and w['Y'] == y_obs
        p_e = brute(scm, fact)
        if p_e == 0:
            with pytest.raises(ValueError): counterfactual(scm, 'Y', {'X': x_cf}, ev)
            continue
        want = [brute(scm, lambda u: fact(u) and solve_units(scm, u, {'X': x_cf})['Y'] == y) / p_e for y in range(2)]
        np.testing.assert_allclose(counterfactual(scm, 'Y', {'X': x_cf}, ev).probs.numpy(), want, atol=1e-12)
        np.testing.assert_allclose(abduction_action_prediction(scm, 'Y', {'X': x_cf}, ev)[1].probs.numpy(), want, atol=1e-12)
        m_want = [brute(scm, lambda u: fact(u) and solve_units(scm, u, {'X': x_cf})['M'] == m) / p_e for m in range(2)]
        np.testing.assert_allclose(counterfactual(scm, 'M', {'X': x_cf}, ev).probs.numpy(), m_want, atol=1e-12)


@pytest.mark.parametrize('seed', range(8))
def test_probabilities_of_causation_equal_brute_force_and_lie_in_the_bounds(seed):
    scm = random_scm(seed)
    Y = lambda u, do=None: solve_units(scm, u, do)['Y']
    X = lambda u: solve_units(scm, u)['X']
    p_xy, p_x_y_ = brute(scm, lambda u: X(u) == 1 and Y(u) == 1), brute(scm, lambda u: X(u) == 0 and Y(u) == 0)
    want = {'PNS': brute(scm, lambda u: Y(u, {'X': 1}) == 1 and Y(u, {'X': 0}) == 0)}
    if p_xy > 0: want['PN'] = brute(scm, lambda u: X(u) == 1 and Y(u) == 1 and Y(u, {'X': 0}) == 0) / p_xy
    if p_x_y_ > 0: want['PS'] = brute(scm, lambda u: X(u) == 0 and Y(u) == 0 and Y(u, {'X': 1}) == 1) / p_x_y_
    got = probabilities_of_causation(scm, 'X', 'Y')
    for k in want: assert abs(got[k] - want[k]) < 1e-12, (k, got, want)
    for k in {'PN', 'PS'} - set(want): assert np.isnan(got[k])   # undefined: the evidence never happens
    cg = scm.causal_graph()
    b = causation_bounds(query(cg, ['X', 'Y']), query(cg, 'Y', do={'X': 1})[1], query(cg, 'Y', do={'X': 0})[1])
    for k in want: assert b.loc[k, 'lower'] - 1e-12 <= got[k] <= b.loc[k, 'upper'] + 1e-12, (k, got[k], b)
    mono = brute(scm, lambda u: Y(u, {'X': 0}) == 1 and Y(u, {'X': 1}) == 0) == 0
    assert is_monotone(scm, 'X', 'Y') == mono
    if mono:
        for k in want: assert abs(b.loc[k, 'monotone'] - got[k]) < 1e-12


def test_monotone_models_give_point_values():
    n = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        p = rng.dirichlet(np.ones(2), size=3)
        # Y := (X and U1) or U2 is monotone in X; X := Ux or U2 makes X and Y confounded
        scm = SCM({'U1': p[0], 'U2': p[1], 'Ux': p[2]}, {'X': 2, 'Y': 2},
                  {'X': (['Ux', 'U2'], lambda ux, u2: int(ux or u2)), 'Y': (['X', 'U1', 'U2'], lambda x, u1, u2: int((x and u1) or u2))})
        assert is_monotone(scm, 'X', 'Y')
        cg = scm.causal_graph()
        b = causation_bounds(query(cg, ['X', 'Y']), query(cg, 'Y', do={'X': 1})[1], query(cg, 'Y', do={'X': 0})[1])
        got = probabilities_of_causation(scm, 'X', 'Y')
        for k in ('PNS', 'PN', 'PS'): assert abs(b.loc[k, 'monotone'] - got[k]) < 1e-12, (seed, k)
        n += 1
    assert n == 40


def test_scm_bad_input():
    with pytest.raises(ValueError, match='must be probabilities'): SCM({'U': [.5, .6]}, {'X': 2}, {'X': (['U'], lambda u: u)})
    with pytest.raises(ValueError, match="no equation for \\['Y'\\]"): SCM({'U': [.5, .5]}, {'X': 2, 'Y': 2}, {'X': (['U'], lambda u: u)})
    with pytest.raises(ValueError, match='table must hold state indices'): SCM({'U': [.5, .5]}, {'X': 2}, {'X': (['U'], np.array([0, 2]))})
    scm = random_scm(0)
    with pytest.raises(ValueError, match="the two states of 'X' compared must differ"): probabilities_of_causation(scm, 'X', 'Y', x=1, x_=1)


# ------------------------------------------------------------------ estimation from samples, printing

def test_empirical_estimate_converges_and_bad_data_is_named():
    from causal_nb.docalculus import empirical_distribution, estimation_curve
    g, lat = smoking_tar_cancer()
    c = estimation_curve(g, lat, 'Y', 'X', 'yes', 'yes', sizes=(500, 200_000), seed=1)
    assert c['abs_error'].iloc[-1] < 0.01 and (c['truth'] == query(g, 'Y', do={'X': 'yes'})['yes']).all()
    with pytest.raises(NotIdentifiable, match='Hedge'): estimation_curve(g, ['U', 'M'], 'Y', 'X', 'yes', 'yes', sizes=(100,))
    with pytest.raises(ValueError, match="data has no column for variable 'Q'"): empirical_distribution({'X': ['no']}, {'Q': 2})
    with pytest.raises(ValueError, match=r"data\['X'\] holds values \['maybe'\]"):
        empirical_distribution({'X': ['no', 'maybe']}, {'X': ['no', 'yes']})
    d = empirical_distribution({'X': ['no', 'yes', 'yes', 'yes']}, {'X': ['no', 'yes']})
    np.testing.assert_allclose(d.probs.numpy(), [.25, .75])


def test_outcomes_keep_the_callers_order():
    g, lat = random_latent_network(7, n_latent=3, max_parents=2, seed=1003)
    G = ADMG.from_graph(g, lat)
    late, early = G.order[-1], G.order[0]
    e = identify(G, [late, early], [G.order[2]])
    assert e.y == (late, early)
    for xv in (0, 1):
        d = e.evaluate(g, {G.order[2]: xv})
        assert d.variables == (late, early)
        np.testing.assert_allclose(d.probs.numpy(), query(g, [late, early], do={G.order[2]: xv}).probs.numpy(), atol=1e-12)


def test_estimand_prints_and_traces():
    g, lat = smoking_tar_cancer()
    e = identify(g, 'Y', 'X', latent=lat)
    assert e._repr_latex_().startswith('$P(Y \\mid do(X)) = \\sum_{M}')
    lines = e.derivation().split('\n')
    assert [ln.strip().split(':')[0] for ln in lines] == ['line 4', 'line 2', 'line 6', 'line 7', 'line 2', 'line 1']
    h = identify(bow(), 'Y', 'X')
    assert h.trace == ('line 5: FAIL: G is one c-component {X, Y} and so is G without {X}: a hedge',)
