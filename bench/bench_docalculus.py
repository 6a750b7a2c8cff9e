"""Exact do-queries on a 20-variable binary network: causal_nb's `query` against pgmpy's `CausalInference.query`.

Both answer the same queries P(Y | do(X = x)) (asserted equal within 1e-9); the time is the median over repeats of
answering the whole batch. pgmpy's model and CausalInference object are built once, outside the timed region.
Run: python bench/bench_docalculus.py [--repeats 7] [--queries 40]
"""
import argparse, json, os, platform, statistics, time, warnings
from pathlib import Path

import networkx as nx
import numpy as np
import torch

warnings.simplefilter('ignore')
import pgmpy
from pgmpy.inference import CausalInference

from causal_nb.docalculus import query, random_network, to_pgmpy


def make_queries(g, k, seed):
    "k (X, x, Y) with Y not an ancestor of X (pgmpy refuses those)."
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


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--vars', type=int, default=20)
    ap.add_argument('--max-parents', type=int, default=4)
    ap.add_argument('--queries', type=int, default=40)
    ap.add_argument('--repeats', type=int, default=7)
    ap.add_argument('--seed', type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(1)
    g = random_network(a.vars, a.max_parents, 2, seed=a.seed)
    qs = make_queries(g, a.queries, a.seed)
    ci = CausalInference(to_pgmpy(g))

    ours_fn = lambda: [query(g, Y, do={X: x}).probs for X, x, Y in qs]
    pg_fn = lambda: [ci.query([Y], do={X: x}, show_progress=False).values for X, x, Y in qs]
    ours, theirs = ours_fn(), pg_fn()
    for (X, x, Y), o, t in zip(qs, ours, theirs):
        assert np.abs(o.numpy() - t).max() < 1e-9, (X, x, Y, o, t)

    t_ours, t_pg = timed(ours_fn, a.repeats), timed(pg_fn, a.repeats)
    n = len(qs)
    res = {'benchmark': 'docalculus_do_queries', 'network': f'random DAG, {a.vars} binary variables, ≤{a.max_parents} parents',
           'edges': len(g.edges), 'queries': n, 'repeats': a.repeats, 'max_abs_diff': max(float(np.abs(o.numpy() - t).max()) for o, t in zip(ours, theirs)),
           'ours_ms_per_query': 1e3 * t_ours / n, 'pgmpy_ms_per_query': 1e3 * t_pg / n, 'speedup_vs_pgmpy': t_pg / t_ours,
           'torch': torch.__version__, 'pgmpy': pgmpy.__version__, 'python': platform.python_version(),
           'cpu': platform.processor() or platform.machine(), 'cpus': os.cpu_count(), 'torch_threads': torch.get_num_threads()}
    out = Path(__file__).parent / 'results' / 'docalculus.json'
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1) + '\n')
    print('| benchmark | causal_nb (ms/query) | pgmpy (ms/query) | pgmpy / causal_nb |')
    print('|---|---|---|---|')
    print(f"| exact P(Y \\| do(X)) on {a.vars}-variable binary network ({n} queries, median of {a.repeats}) "
          f"| {res['ours_ms_per_query']:.3f} | {res['pgmpy_ms_per_query']:.3f} | {res['speedup_vs_pgmpy']:.1f}× |")


if __name__ == '__main__':
    main()
