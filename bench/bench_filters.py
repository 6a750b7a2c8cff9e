"""Filter importance for every filter of a layer, and the pruning study of chapter 09.

1. Speed: the counterfactual importance of all filters of a layer — do(filter = 0) for each, the Effect on the
   prediction — with causal_nb's batched, prefix-cached sweep (`filter_importance`, NetworkSCM underneath: the layers
   below the filter run once, the layers above once per filter in batches), against the obvious loop (a hook zeroes one
   filter, the whole model runs, once per filter) and against the floor (the layers above the cut alone, run once on
   (filters + 1) × images rows with the cached values given). Both give the same importances (asserted within 1e-5).
   Random weights: speed does not depend on training. Medians over repeats.
2. Pruning: the small CNN, LeNet5 and a ResNet20 trained on Fashion-MNIST (cached); each layer's filters ranked by
   counterfactual importance (on 512 training images), by the filter SCM's prediction and by weight magnitude; accuracy
   on 2,000 test images as the top-k are removed, against random orders (mean ± sd over seeds); areas under the curves.

    python bench/bench_filters.py [--device cpu|cuda] [--repeats 3] [--images 32] [--skip-pruning]

Writes bench/results/filters[-cuda].json. Heavy imports live inside the functions: importing this module does nothing.
"""
from __future__ import annotations
import argparse, statistics
from pathlib import Path

import _common as C

NAME = 'filters'
DEVICES = ('cpu', 'cuda')
COMMAND = 'python bench/bench_filters.py'
SPEED_CASES = [('SmallCNN 28×28', 'small-cnn', 'conv1'), ('SmallCNN 28×28', 'small-cnn', 'conv2'),
               ('LeNet5 28×28', 'lenet5', 'conv2'), ('ResNet20 28×28', 'resnet20', 'layer1.0.conv1'),
               ('ResNet20 28×28', 'resnet20', 'layer2.1.conv2'), ('ResNet20 28×28', 'resnet20', 'layer3.2.conv2')]
PRUNE_CASES = [('small CNN', 'small-cnn', 'conv2'), ('LeNet5', 'lenet5', 'conv2'), ('ResNet20', 'resnet20', 'layer3.2.conv2')]


def build(arch: str, seed: int = 0):
    import torch
    from causal_nb.filters import SmallResNet
    from causal_nb.models import LeNet5, SmallCNN
    torch.manual_seed(seed)
    return {'small-cnn': SmallCNN, 'lenet5': LeNet5, 'resnet20': lambda: SmallResNet(20)}[arch]()


def speed(device: str, repeats: int, n_images: int) -> list[dict]:
    import torch
    from causal_nb.core import intervene
    from causal_nb.filters import filter_importance
    from causal_nb.interventions import NetworkSCM
    rows = []
    x = torch.rand(n_images, 1, 28, 28, generator=torch.Generator().manual_seed(0)).to(device)
    for label, arch, layer in SPEED_CASES:
        model = build(arch).to(device).eval()
        C_out = dict(model.named_modules())[layer].out_channels

        def ours():
            return filter_importance(model, layer, x, 'counterfactual', n_images=None)['importance'].to_numpy()

        def naive():
            with torch.inference_mode():
                p = model(x).softmax(1); pred = p.argmax(1); out = []
                for j in range(C_out):
                    with intervene(model, {layer: lambda o, j=j: o.index_fill(1, torch.tensor([j], device=o.device), 0.)}):
                        out.append(float((model(x).softmax(1) - p).gather(1, pred[:, None]).abs().mean()))
            return out

        net = NetworkSCM(model); split = net.split(layer); vals = net.observe(x, layer)
        rep = [v.repeat(C_out + 1, *([1] * (v.ndim - 1))) for v in vals]

        def floor():
            with torch.inference_mode(): split.suffix(rep, None)

        a, b = ours(), naive()
        diff = float(abs(a - torch.tensor(b).numpy()).max())
        assert diff < 1e-5, (label, layer, diff)
        t = {k: [] for k in ('ours', 'naive', 'floor')}
        for fn in (ours, naive, floor): fn()                   # warm-up
        for _ in range(repeats):
            for k, fn in (('ours', ours), ('naive', naive), ('floor', floor)): t[k].append(C.timed(fn, device))
        med = {k: statistics.median(v) for k, v in t.items()}
        rows.append({'model': label, 'layer': layer, 'filters': C_out, 'images': n_images, 'mode': split.mode,
                     'max_abs_diff': diff, 'ours_s': med['ours'], 'naive_s': med['naive'], 'floor_s': med['floor'],
                     'speedup_vs_naive': med['naive'] / med['ours'], 'ours_over_floor': med['ours'] / med['floor']})
        print(f"{label} {layer}: ours {med['ours']:.3f}s naive {med['naive']:.3f}s floor {med['floor']:.3f}s", flush=True)
    return rows


def pruning(device: str, train_images: int, epochs: int, seeds: int) -> list[dict]:
    import time
    from causal_nb.data import fashion_mnist
    from causal_nb.filters import pruning_curves
    from causal_nb.models import evaluate, train
    tr, te = fashion_mnist(train=True), fashion_mnist(train=False)
    sub = tr.subset(train_images, seed=0)
    rank, held = tr.subset(512, seed=7), te.subset(2000, seed=8)
    rows = []
    for label, arch, layer in PRUNE_CASES:
        t0 = time.perf_counter()
        res = train(build(arch), sub, epochs=epochs, device=device, progress_bar=False)
        model = res.model.to(device).eval()
        t1 = time.perf_counter()
        curves = pruning_curves(model, layer, rank, held, seeds=seeds, methods=('counterfactual', 'magnitude', 'scm'))
        rows.append({'model': label, 'arch': arch, 'layer': layer, 'filters': curves.attrs['filters'],
                     'test_accuracy': evaluate(model, te, device=device).accuracy, 'train_seconds': res.seconds, 'cached': res.cached,
                     'study_seconds': time.perf_counter() - t1, 'auc': curves.attrs['auc'], 'random_auc_sd': curves.attrs['random_auc_sd'],
                     'seeds': seeds, 'curves': {c: [float(v) for v in curves[c]] for c in curves.columns},
                     'removed': [int(k) for k in curves.index]})
        print(f"{label}: AUC {curves.attrs['auc']} (train {t1 - t0:.0f}s)", flush=True)
    return rows


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(p, DEVICES)
    p.add_argument('--repeats', type=int, default=3)
    p.add_argument('--images', type=int, default=32, help='images per importance sweep (speed part)')
    p.add_argument('--train-images', type=int, default=20_000, help='Fashion-MNIST training images for the pruning models')
    p.add_argument('--epochs', type=int, default=3)
    p.add_argument('--seeds', type=int, default=10, help='random pruning orders')
    p.add_argument('--skip-pruning', action='store_true', help='keep the pruning figures already in the results file')
    p.add_argument('--out', type=Path, default=None, help='results file (default: bench/results/filters[-cuda].json)')
    a = p.parse_args(argv)
    device = C.check_device(p, a.device, DEVICES)
    import torch
    if device == 'cpu': torch.set_num_threads(1)
    out = a.out or C.result_file(NAME, device.split(':')[0])
    old = C.read_result(out) or {}
    res = {'benchmark': 'filters', 'env': C.environment(device), 'speed': speed(device, a.repeats, a.images),
           'pruning': old.get('pruning') if a.skip_pruning else pruning(device, a.train_images, a.epochs, a.seeds),
           'setting': {'train_images': a.train_images, 'epochs': a.epochs, 'rank_images': 512, 'eval_images': 2000}}
    if a.skip_pruning and 'setting' in old: res['setting'] = old['setting']
    C.write_result(out, res)
    print(f'written to {out}')


def markdown(results: Path) -> str:
    "The BENCHMARKS.md section: sweep speed against the loop and the floor, and the pruning AUCs with their verdicts."
    head = '## Filter importance and pruning curves (issue #9)'
    runs = [(d, C.read_result(C.result_file(NAME, d, results))) for d in DEVICES]
    runs = [(d, r) for d, r in runs if r is not None]
    if not runs: return C.section(head, C.not_measured(COMMAND, 'filters.json'))
    parts = [head, C.wrap(
        f"`{COMMAND} [--device cuda]` → `bench/results/filters.json`. **Speed**: the counterfactual importance of every filter of a "
        "layer (do(filter = 0), the mean change of the predicted class's probability) computed three ways that agree within 1e-5 — "
        "ours (`filter_importance`: chapter 6's prefix-cached sweep, the layers below the filter run once), the obvious loop (a hook "
        "zeroes one filter and the whole model runs, once per filter) and the floor (the layers above the cut alone, once on "
        "(filters + 1) × images rows, cached values given). Random weights, 28×28 inputs, medians of repeats.")]
    for d, r in runs:
        sp = r['speed']
        parts.append(f"{C.machine(r['env'])}, {C.plural(sp[0]['images'], 'image')} per sweep:")
        parts.append(C.table(['model', 'layer', 'filters', 'ours', 'one forward per filter', 'floor', 'ours vs loop', 'ours / floor'],
                             [[s['model'], f"`{s['layer']}`", s['filters'], C.seconds(s['ours_s']), C.seconds(s['naive_s']),
                               C.seconds(s['floor_s']), f"**{C.times(s['speedup_vs_naive'])}**", C.num(s['ours_over_floor'])] for s in sp]))
        fast = [s for s in sp if s['speedup_vs_naive'] >= 1]
        best, worst = max(sp, key=lambda s: s['speedup_vs_naive']), min(sp, key=lambda s: s['speedup_vs_naive'])
        parts.append(C.wrap(
            f"Prefix caching beats the loop in {len(fast)} of {len(sp)} layers: most at {best['model']} `{best['layer']}` "
            f"({C.times(best['speedup_vs_naive'])}), least at {worst['model']} `{worst['layer']}` ({C.times(worst['speedup_vs_naive'])}). "
            "It saves the layers below the filter, so it gains most where they cost more than the layers above it; "
            "the ratio to the floor is the price of copying the cached maps once per filter."))
    d, r = runs[0]
    pr = r.get('pruning')
    if pr:
        st = r.get('setting', {})
        parts.append(C.wrap(
            f"**Pruning** ({C.machine(r['env'])}): each model trained for {st.get('epochs', '?')} epochs on "
            f"{st.get('train_images', 0):,} Fashion-MNIST images (cached); importance measured on {st.get('rank_images', 512)} training "
            f"images; accuracy on {st.get('eval_images', 2000):,} test images after removing the top-k filters of the layer, k in 17 "
            "steps from none to all; random: the mean of several random orders. The area under the curve over the share removed "
            "(lower: accuracy falls faster) sums each ranking up. Target: the counterfactual ranking degrades accuracy faster "
            "than magnitude and random."))
        rows, met = [], []
        for p in pr:
            a = p['auc']
            ok = a['counterfactual'] < a['magnitude'] and a['counterfactual'] < a['random']
            met.append(ok)
            rows.append([p['model'], f"`{p['layer']}`", p['filters'], C.pct(p['test_accuracy']), f"**{a['counterfactual']:.3f}**",
                         f"{a['scm']:.3f}", f"{a['magnitude']:.3f}", f"{a['random']:.3f} ± {p['random_auc_sd']:.3f} ({p['seeds']} orders)",
                         C.verdict(ok)])
        parts.append(C.table(['model', 'layer', 'filters', 'test accuracy', 'AUC counterfactual', 'AUC filter SCM', 'AUC magnitude',
                              'AUC random', 'counterfactual fastest'], rows))
        scm_vs = [p['auc']['scm'] < p['auc']['magnitude'] for p in pr]
        parts.append(f"Target (counterfactual ranking degrades accuracy faster than magnitude and random): "
                     f"{C.verdict(all(met))} — in {sum(met)} of {len(met)} models. The filter SCM's predicted ranking beats "
                     f"magnitude in {sum(scm_vs)} of {len(scm_vs)}: an SCM over filter norms is a coarse abstraction of the network, "
                     "and its output equation explains only part of the variance.")
    parts.append(C.notes(r))
    return C.section(*[p for p in parts if p])


if __name__ == '__main__':
    main()
