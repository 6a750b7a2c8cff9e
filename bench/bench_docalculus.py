"""Exact do-queries on a 20-variable binary network: causal_nb's `query` against pgmpy's `CausalInference.query`;
and identification (the ID algorithm) on random 20-variable graphs with latent confounders: causal_nb's `identify`
against y0's `identify_outcomes`.

Both do-query engines answer the same queries P(Y | do(X = x)) (asserted equal within 1e-9); the time is the median over
repeats of answering the whole batch. pgmpy's model and CausalInference object are built once, outside the timed region.
For ID, both libraries get the same graphs and queries (a treatment that is an ancestor of the outcome); they must agree
on which queries are identifiable, and each of our estimands' value on the model must equal the true P(Y | do(X)) within 1e-9
(checked once, outside the timed region); the time is the median over repeats of identifying the whole batch, graphs
converted to each library's type beforehand. Everything runs on the CPU, so `--device` accepts `cpu` only.

    python bench/bench_docalculus.py [--repeats 7] [--queries 40] [--vars 20] [--id-graphs 10] [--id-queries 6]

Writes bench/results/docalculus.json and prints a markdown table.
Heavy imports live inside the functions: importing this module (render.py does, for `markdown`) does nothing.
"""
from __future__ import annotations
import argparse, math, statistics, time
from pathlib import Path

import _common as C

NAME = 'docalculus'
DEVICES = ('cpu',)
COMMAND = 'python bench/bench_docalculus.py'


def make_queries(g, k, seed):
    "k (X, x, Y) with Y not an ancestor of X (pgmpy refuses those)."
    import networkx as nx, numpy as np
    rng = np.random.default_rng(seed)
    qs = []
    while len(qs) < k:
        X, Y = (str(v) for v in rng.choice(list(g.variables), 2, replace=False))
        if Y not in nx.ancestors(g.dag, X): qs.append((X, int(rng.integers(0, 2)), Y))
    return qs


def timed(fn, repeats):
    fn()  # warm-up
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def measure(n_vars: int, max_parents: int, n_queries: int, repeats: int, seed: int) -> dict:
    import warnings
    import numpy as np, torch
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        import pgmpy
        from pgmpy.inference import CausalInference
    from causal_nb.docalculus import query, random_network, to_pgmpy
    torch.set_num_threads(1)
    g = random_network(n_vars, max_parents, 2, seed=seed)
    qs = make_queries(g, n_queries, seed)
    ci = CausalInference(to_pgmpy(g))
    ours_fn = lambda: [query(g, Y, do={X: x}).probs for X, x, Y in qs]
    pg_fn = lambda: [ci.query([Y], do={X: x}, show_progress=False).values for X, x, Y in qs]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')      # pgmpy's own deprecation chatter
        ours, theirs = ours_fn(), pg_fn()
        for (X, x, Y), o, t in zip(qs, ours, theirs):
            assert np.abs(o.numpy() - t).max() < 1e-9, (X, x, Y, o, t)
        t_ours, t_pg = timed(ours_fn, repeats), timed(pg_fn, repeats)
    n = len(qs)
    env = C.environment('cpu')
    return {'benchmark': 'docalculus_do_queries', 'network': f'random DAG, {n_vars} binary variables, ≤{max_parents} parents',
            'variables': n_vars, 'edges': len(g.edges), 'queries': n, 'repeats': repeats,
            'max_abs_diff': max(float(np.abs(o.numpy() - t).max()) for o, t in zip(ours, theirs)),
            'ours_ms_per_query': 1e3 * t_ours / n, 'pgmpy_ms_per_query': 1e3 * t_pg / n, 'speedup_vs_pgmpy': t_pg / t_ours,
            'torch': torch.__version__, 'pgmpy': pgmpy.__version__, 'python': env['python'], 'cpu': env['cpu'],
            'cpus': env['cpus'], 'torch_threads': torch.get_num_threads(), 'load_average': env['load_average']}


def measure_id(n_vars: int, n_latent: int, max_parents: int, n_graphs: int, per_graph: int, repeats: int, seed: int) -> dict:
    "ID on random graphs with latent confounders: causal_nb's identify against y0's identify_outcomes."
    import numpy as np
    from causal_nb.docalculus import ADMG, identify, query, random_latent_network
    from y0.algorithm.identify import identify_outcomes
    from y0.graph import NxMixedGraph
    from y0.dsl import Variable
    import importlib.metadata as md
    cases = []
    for k in range(n_graphs):
        g, lat = random_latent_network(n_vars, n_latent=n_latent, max_parents=max_parents, seed=seed + k)
        G = ADMG.from_graph(g, lat)
        yg = NxMixedGraph.from_str_edges(directed=G.directed, undirected=G.bidirected, nodes=list(G.order))
        rng = np.random.default_rng(seed + k)
        comp = {v: c for c in G.c_components() for v in c}
        pairs = [(y, x) for y in G.order for x in sorted(G.ancestors([y])) if x != y]
        confounded = [(y, x) for y, x in pairs if x in comp[y]]   # half the queries: a treatment confounded with Y
        for j in range(per_graph):
            pool = confounded if j % 2 and confounded else pairs
            y, x = pool[int(rng.integers(len(pool)))]
            cases.append((g, G, yg, y, x))
    ours_fn = lambda: [identify(G, y, x) for _, G, _, y, x in cases]
    y0_fn = lambda: [identify_outcomes(yg, Variable(x), Variable(y)) for _, _, yg, y, x in cases]
    ours, theirs = ours_fn(), y0_fn()
    worst = 0.
    for (g, G, _, y, x), o, t in zip(cases, ours, theirs):
        assert o.identifiable == (t is not None), (G, y, x, str(o), t)
        if o.identifiable:
            for xv in g.states[x]:
                worst = max(worst, float((o.evaluate(g, {x: xv}).probs - query(g, y, do={x: xv}).probs).abs().max()))
    assert worst < 1e-9, worst
    t_ours, t_y0 = timed(ours_fn, repeats), timed(y0_fn, repeats)
    n = len(cases)
    return {'benchmark': 'docalculus_identify', 'graphs': f'{n_graphs} random graphs, {n_vars} observed binary variables, '
            f'{n_latent} latent confounders, ≤{max_parents} observed parents', 'variables': n_vars, 'queries': n,
            'identifiable': int(sum(o.identifiable for o in ours)), 'repeats': repeats, 'max_abs_diff_vs_truth': worst,
            'ours_ms_per_query': 1e3 * t_ours / n, 'y0_ms_per_query': 1e3 * t_y0 / n, 'speedup_vs_y0': t_y0 / t_ours,
            'y0': md.version('y0')}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(p, DEVICES)
    p.add_argument('--vars', type=int, default=20)
    p.add_argument('--max-parents', type=int, default=4)
    p.add_argument('--queries', type=int, default=40)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--id-graphs', type=int, default=10, help='random graphs with latents for the ID comparison')
    p.add_argument('--id-queries', type=int, default=6, help='queries per graph for the ID comparison')
    p.add_argument('--id-latent', type=int, default=8, help='latent confounders per graph')
    p.add_argument('--out', type=Path, default=None, help='results file (default: bench/results/docalculus.json)')
    a = p.parse_args(argv)
    C.check_device(p, a.device, DEVICES, 'both libraries answer exact queries with CPU tables')
    res = measure(a.vars, a.max_parents, a.queries, a.repeats, a.seed)
    try: import y0  # noqa: F401  (the peer of the ID comparison, a dev extra)
    except ImportError: print('y0 is not installed (pip install y0): the ID comparison is skipped')
    else: res['id'] = measure_id(a.vars, a.id_latent, 3, a.id_graphs, a.id_queries, a.repeats, a.seed)
    out = C.write_result(a.out or C.result_file(NAME), res)
    r = res.get('id', {'ours_ms_per_query': math.nan, 'y0_ms_per_query': math.nan, 'speedup_vs_y0': math.nan, 'queries': 0})
    print(C.table(['benchmark', 'causal_nb (ms/query)', 'peer (ms/query)', 'peer / causal_nb'],
                  [[f"exact P(Y \\| do(X)) on {a.vars}-variable binary network ({res['queries']} queries, median of {a.repeats}), pgmpy",
                    f"{res['ours_ms_per_query']:.3f}", f"{res['pgmpy_ms_per_query']:.3f}", C.times(res['speedup_vs_pgmpy'])],
                   [f"ID on {a.vars}-variable graphs with latents ({r['queries']} queries, median of {a.repeats}), y0",
                    f"{r['ours_ms_per_query']:.3f}", f"{r['y0_ms_per_query']:.3f}", C.times(r['speedup_vs_y0'])]]))
    print(f'\nwritten to {out}')


def markdown(results: Path) -> str:
    "The BENCHMARKS.md section: time per query both ways, the ratio and the verdict (at least as fast as pgmpy)."
    head = '## Exact do-queries: causal_nb vs pgmpy (issue #3)'
    r = C.read_result(C.result_file(NAME, 'cpu', results))
    if r is None: return C.section(head, C.not_measured(COMMAND, 'docalculus.json'))
    sp = r['speedup_vs_pgmpy']
    intro = (f"`{COMMAND}`: {C.plural(r['queries'], 'query', 'queries')} P(Y | do(X = x)) on a {r['network']} ({r['edges']} edges); both "
             f"libraries give the same answers (asserted within 1e-9; max |Δ| = {r['max_abs_diff']:.1e} in this run); "
             f"the time is the median of {C.plural(r['repeats'], 'repeat')} of the whole batch; "
             f"pgmpy's model and inference object are built outside the timed region.")
    tab = C.table([f"exact P(Y \\| do(X)), {r.get('variables', 20)} binary variables", 'causal_nb (ms/query)',
                   f"pgmpy {r['pgmpy']} (ms/query)", 'pgmpy / causal_nb'],
                  [[f"{C.machine(r)}, `docalculus.json`", f"{r['ours_ms_per_query']:.2f}", f"{r['pgmpy_ms_per_query']:.2f}",
                    f"**{C.times(sp)}** (causal_nb {'faster' if sp >= 1 else 'slower'})"]])
    verdict = (f"Target (at least as fast as pgmpy): {C.verdict(sp >= 1)}. Target of issue #22 (stay at least 10× as fast as "
               f"pgmpy while the chapter grows): {C.verdict(sp >= 10)}.")
    return C.section(head, intro, tab, verdict, id_markdown(r.get('id')), C.notes(r))


def id_markdown(r: dict | None) -> str:
    "The identification part: ID against y0 (issue #22)."
    head = '### Identification (ID algorithm): causal_nb vs y0 (issue #22)'
    if r is None: return C.section(head, C.not_measured(COMMAND, 'docalculus.json')).rstrip('\n')
    sp = r['speedup_vs_y0']
    intro = (f"Same run: {C.plural(r['queries'], 'query', 'queries')} P(Y | do(X)) on {r['graphs']} (X an ancestor of Y, "
             "for half the queries one joined to Y by bidirected edges); "
             f"{r['identifiable']} identifiable, the others not, and both libraries agree on which; every estimand of ours "
             f"evaluates to the true interventional distribution (max |Δ| = {r['max_abs_diff_vs_truth']:.1e}); the time is the "
             f"median of {C.plural(r['repeats'], 'repeat')} of identifying the whole batch (symbolic work only, no evaluation).")
    tab = C.table(['ID, random graphs with latents', 'causal_nb (ms/query)', f"y0 {r['y0']} (ms/query)", 'y0 / causal_nb'],
                  [[f"{r['variables']} observed variables", f"{r['ours_ms_per_query']:.2f}", f"{r['y0_ms_per_query']:.2f}",
                    f"**{C.times(sp)}** (causal_nb {'faster' if sp >= 1 else 'slower'})"]])
    return C.section(head, intro, tab, f"Target (at least as fast as y0): {C.verdict(sp >= 1)}.").rstrip('\n')


if __name__ == '__main__':
    main()
