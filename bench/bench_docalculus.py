"""Exact do-queries on a 20-variable binary network: causal_nb's `query` against pgmpy's `CausalInference.query`.

Both answer the same queries P(Y | do(X = x)) (asserted equal within 1e-9); the time is the median over repeats of
answering the whole batch. pgmpy's model and CausalInference object are built once, outside the timed region.
Both run on the CPU (exact inference on small tables), so `--device` accepts `cpu` only.

    python bench/bench_docalculus.py [--repeats 7] [--queries 40] [--vars 20]

Writes bench/results/docalculus.json and prints a markdown table.
Heavy imports live inside the functions: importing this module (render.py does, for `markdown`) does nothing.
"""
from __future__ import annotations
import argparse, statistics, time
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


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(p, DEVICES)
    p.add_argument('--vars', type=int, default=20)
    p.add_argument('--max-parents', type=int, default=4)
    p.add_argument('--queries', type=int, default=40)
    p.add_argument('--repeats', type=int, default=7)
    p.add_argument('--seed', type=int, default=0)
    p.add_argument('--out', type=Path, default=None, help='results file (default: bench/results/docalculus.json)')
    a = p.parse_args(argv)
    C.check_device(p, a.device, DEVICES, 'both libraries answer exact queries with CPU tables')
    res = measure(a.vars, a.max_parents, a.queries, a.repeats, a.seed)
    out = C.write_result(a.out or C.result_file(NAME), res)
    print(C.table(['benchmark', 'causal_nb (ms/query)', 'pgmpy (ms/query)', 'pgmpy / causal_nb'],
                  [[f"exact P(Y \\| do(X)) on {a.vars}-variable binary network ({res['queries']} queries, median of {a.repeats})",
                    f"{res['ours_ms_per_query']:.3f}", f"{res['pgmpy_ms_per_query']:.3f}", C.times(res['speedup_vs_pgmpy'])]]))
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
    verdict = f"Target (at least as fast as pgmpy): {C.verdict(sp >= 1)}."
    return C.section(head, intro, tab, verdict, C.notes(r))


if __name__ == '__main__':
    main()
