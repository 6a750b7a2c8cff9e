"""Generative counterfactuals (Liu et al., Eq. 2 with a λ bisection) on Fashion-MNIST, next to targeted PGD, in one run.

- Queries: `--queries` Fashion-MNIST test images (a seeded subset), each asked to become a random *other* class.
- Classifier: chapter 2's quick small CNN (cached). Generators: the chapter's 10-D VAE (its encoder gives the starting
  latent) and the 10-D DCGAN (`--dcgan-n` images, `--dcgan-epochs` epochs; the starting latent by inversion).
- Figures per route: flip rate to the target, median L1 change |I - I'|_1 of the flipped ones, gradient steps and
  wall time per counterfactual, and realism: the VAE's mean reconstruction error (distance to the data manifold;
  real test images give the baseline).
- The pixel-space route answers the same queries: targeted PGD (L∞ ε = 0.3, 20 steps) from causal_nb.attacks.

    OMP_NUM_THREADS=1 python bench/bench_counterfactuals.py            # CPU, about 10 minutes on 2 cores
    python bench/bench_counterfactuals.py --device cuda                 # on the GPU

Writes bench/results/counterfactuals.json (CPU) or counterfactuals-cuda.json and prints a markdown table.
Heavy imports live inside the functions: importing this module (render.py does, for `markdown`) does nothing.
"""
from __future__ import annotations
import argparse, statistics, time
from pathlib import Path

import _common as C

NAME = 'counterfactuals'
DEVICES = ('cpu', 'cuda')
COMMAND = 'OMP_NUM_THREADS=1 python bench/bench_counterfactuals.py [--device cuda]'
TARGET_FLIP = 0.95     # issue #8


def _route(name, classifier, generator, vae, q, t, steps, rounds, z0=None, invert_s=0.0) -> dict:
    "One generative route: the counterfactuals of all queries and their figures (time includes inverting the queries)."
    from causal_nb.counterfactuals import counterfactual
    r = counterfactual(classifier, generator, q, t, steps=steps, rounds=rounds, z0=z0)
    s = r.summary()
    ok = r.success
    return {'route': name, 'n': len(q), 'flip_rate': s['success_rate'], 'flipped': int(ok.sum()),
            'median_l1': float(r.l1[ok].median()) if ok.any() else None, 'median_l1_all': float(r.l1.median()),
            'steps_per_query': r.steps, 'rounds': rounds, 'steps_per_round': steps,
            'seconds': r.seconds + invert_s, 'ms_per_query': 1000 * (r.seconds + invert_s) / len(q),
            'inversion_ms_per_query': 1000 * invert_s / len(q),
            'recon_error': float(vae.reconstruction_error(r.images).mean()),
            'median_lambda': float(r.lam[ok].median()) if ok.any() else None,
            'bracketed': int(((r.lam_fail > 0) & ok).sum())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(ap, DEVICES)
    ap.add_argument('--queries', type=int, default=200, help='Fashion-MNIST test images to explain')
    ap.add_argument('--steps', type=int, default=60, help='Adam steps per round')
    ap.add_argument('--rounds', type=int, default=4, help='λ bisection rounds')
    ap.add_argument('--dcgan-n', type=int, default=10_000, help='training images of the DCGAN')
    ap.add_argument('--dcgan-epochs', type=int, default=5, help='training epochs of the DCGAN')
    ap.add_argument('--out', type=Path, default=None, help='results file (default: bench/results/counterfactuals[-cuda].json)')
    a = ap.parse_args(argv)
    device = C.check_device(ap, a.device, DEVICES)
    import torch
    from causal_nb.attacks import pgd
    from causal_nb.counterfactuals import trained_generator
    from causal_nb.data import fashion_mnist
    from causal_nb.models import trained_model
    clf = trained_model('small-cnn', 'fashion-mnist', quick=True, progress_bar=False).model.eval().to(device)
    vae = trained_generator('vae').to(device)
    t0 = time.perf_counter()
    dcgan = trained_generator('dcgan', n=a.dcgan_n, epochs=a.dcgan_epochs).to(device)
    dcgan_s = time.perf_counter() - t0
    data = fashion_mnist(train=False).subset(a.queries, seed=1)
    g = torch.Generator().manual_seed(0)
    q = data.images.to(device)
    t = ((data.labels + torch.randint(1, 10, (a.queries,), generator=g)) % 10).to(device)
    with torch.no_grad(): acc = float((clf(q).argmax(1) == data.labels.to(device)).float().mean())
    rows = [_route('generative, VAE latent (encoder)', clf, vae, vae, q, t, a.steps, a.rounds)]
    C.sync(device); t1 = time.perf_counter(); z0 = dcgan.encode(q); C.sync(device); inv = time.perf_counter() - t1
    rows.append(_route('generative, DCGAN latent (inversion)', clf, dcgan, vae, q, t, a.steps, a.rounds, z0=z0, invert_s=inv))
    times = []
    for _ in range(3):
        C.sync(device); t2 = time.perf_counter(); adv = pgd(clf, q, eps=.3, steps=20, target=t, seed=0)[0]; C.sync(device)
        times.append(time.perf_counter() - t2)
    with torch.no_grad(): hit = clf(adv).argmax(1) == t
    l1 = (adv - q).flatten(1).abs().sum(1)
    rows.append({'route': 'pixel space, targeted PGD (L∞ ε=0.3, 20 steps)', 'n': len(q), 'flip_rate': float(hit.float().mean()),
                 'flipped': int(hit.sum()), 'median_l1': float(l1[hit].median()) if hit.any() else None,
                 'median_l1_all': float(l1.median()), 'steps_per_query': 20, 'rounds': 1, 'steps_per_round': 20,
                 'seconds': statistics.median(times), 'ms_per_query': 1000 * statistics.median(times) / len(q),
                 'inversion_ms_per_query': 0.0, 'recon_error': float(vae.reconstruction_error(adv).mean()),
                 'median_lambda': None, 'bracketed': None})
    real = float(vae.reconstruction_error(q).mean())
    env = C.environment(device)
    out = a.out or C.result_file(NAME, env['device'])
    res = {'device': env['device'], 'env': env, 'queries': a.queries, 'classifier_accuracy_on_queries': acc,
           'real_recon_error': real, 'dcgan': {'n': a.dcgan_n, 'epochs': a.dcgan_epochs, 'load_or_train_s': dcgan_s},
           'settings': {'steps': a.steps, 'rounds': a.rounds, 'lam': 10.0, 'lr': 0.2, 'grow': 2.0, 'keep': 'last', 'p': 1},
           'routes': rows}
    C.write_result(out, res)
    print(_table(res))
    print(f'\nwritten to {out}')


def _table(r: dict) -> str:
    rows = [[x['route'], C.pct(x['flip_rate'], 1), C.num(x['median_l1']), C.num(x['recon_error'], ''),
             x['steps_per_query'], C.seconds(x['ms_per_query'] / 1000)] for x in r['routes']]
    rows.append(['real test images (no change)', '—', '0', C.num(r['real_recon_error']), '—', '—'])
    return C.table(['route', 'flip rate to target', 'median L1 change (flipped)', 'realism: VAE recon. error', 'steps / query',
                    'time / counterfactual'], rows)


def _run(file: str, r: dict) -> str:
    env = r['env']
    s = r['settings']
    head = f"### {C.machine(env)}, `{file}`"
    setting = (f"{C.plural(r['queries'], 'query', 'queries')} (Fashion-MNIST test images, each asked to become a random other class); "
               f"the quick small CNN is right on {C.pct(r['classifier_accuracy_on_queries'], 1)} of them. Eq. 2 with p = {s['p']}, "
               f"{s['rounds']} λ-bisection rounds of {s['steps']} Adam steps from λ = {s['lam']:g}, step {s['lr']:g} (×{s['grow']:g} "
               f"per round for queries not yet flipped). The DCGAN was trained on {r['dcgan']['n']:,} images for "
               f"{r['dcgan']['epochs']} epochs; its time per counterfactual includes inverting the query (100 Adam steps).")
    gen = [x for x in r['routes'] if x['route'].startswith('generative')]
    verdict = ' '.join(f"{x['route'].split(', ')[1]}: flip rate {C.pct(x['flip_rate'], 1)} — target ≥ {C.pct(TARGET_FLIP, 0)} "
                       f"{C.verdict(x['flip_rate'] >= TARGET_FLIP)}." for x in gen)
    pgd_row = r['routes'][-1]
    realism = (f"Realism: real test images have a VAE reconstruction error of {C.num(r['real_recon_error'])}; the DCGAN's "
               f"counterfactuals {C.num(gen[-1]['recon_error'])} and PGD's {C.num(pgd_row['recon_error'])}. The VAE's own "
               "counterfactuals are VAE outputs, so their low error says only that they lie on that VAE's manifold; the DCGAN's "
               "are the independent check. "
               + (f"PGD's examples are further from the manifold than the real images they came from "
                  f"({C.times(pgd_row['recon_error'] / r['real_recon_error'])} their error): a change spread over every pixel."
                  if pgd_row['recon_error'] > r['real_recon_error'] else
                  "PGD's examples are no further from the manifold than real images here."))
    return C.section(head, setting, _table(r), verdict, realism, C.notes(r))


def markdown(results: Path) -> str:
    "The BENCHMARKS.md section: flip rate, median L1, steps and time per counterfactual, realism, generative vs PGD."
    head = '## Generative counterfactuals vs targeted PGD (issue #8)'
    runs = C.recorded_runs(NAME, DEVICES, results)
    if not runs: return C.section(head, C.not_measured(COMMAND, 'counterfactuals.json'))
    intro = (f"`{COMMAND}`. Counterfactuals by `causal_nb.counterfactuals.counterfactual` (minimal change through a 10-D "
             "generator latent that makes the classifier predict the target) and the same queries answered in pixel space "
             "by `causal_nb.attacks.pgd` (targeted). Time per counterfactual covers all rounds of the λ search, batched over "
             "the queries.")
    missing = '' if any((r.get('env') or {}).get('device') == 'cuda' for _, r in runs) else \
        'No GPU run recorded yet: `python bench/bench_counterfactuals.py --device cuda` writes `counterfactuals-cuda.json`.'
    return C.section(head, intro, *(_run(f, r) for f, r in runs), missing)


if __name__ == '__main__':
    main()
