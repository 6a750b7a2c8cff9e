"""Causal tracing over every channel of a layer: causal_nb's `causal_trace` (clean and corrupted runs once, every
restoration a suffix pass, stacked into batches) against a full forward per restoration with a hook (the obvious loop)
and against nnsight (a dev extra) doing the same per-restoration patch, plus the floor.

All answers are asserted equal (max |difference| ≤ 1e-6 on P(target)). The floor is the suffix alone (the layers above
the traced one) run once on (channels × images) rows with the prefix values already computed. Medians over repeats.

    python bench/bench_patching.py [--repeats 5] [--images 8]
    python bench/bench_patching.py --device cuda

Writes bench/results/patching.json (CPU) or patching-cuda.json.
Heavy imports live inside the functions: importing this module (render.py does, for `markdown`) does nothing.
"""
from __future__ import annotations
import argparse, statistics
from pathlib import Path

import _common as C

NAME = 'patching'
DEVICES = ('cpu', 'cuda')
COMMAND = 'python bench/bench_patching.py [--device cuda]'
TARGET = 5.0            # issue #21: causal tracing over all channels of a layer ≥ 5× faster than one forward per restoration


def capture(model, x, layer):
    import torch
    from causal_nb.core import get_module
    got = {}
    h = get_module(model, layer).register_forward_hook(lambda m, i, o: got.__setitem__('a', o))
    try:
        with torch.inference_mode(): model(x)
    finally: h.remove()
    return got['a']


def naive(model, x, xc, layer, target):
    "One full forward of the corrupted images per restored channel, a hook putting the clean channel back."
    import torch
    from causal_nb.core import intervene
    clean = capture(model, x, layer)
    out = []
    with torch.inference_mode():
        for c in range(clean.shape[1]):
            def put(o, c=c): o = o.clone(); o[:, c] = clean[:, c]; return o
            with intervene(model, {layer: put}): out.append(torch.softmax(model(xc), 1).gather(1, target.view(-1, 1))[:, 0])
    return torch.stack(out)


def _module(nm, layer):
    for part in layer.split('.'): nm = nm[int(part)] if part.isdigit() else getattr(nm, part)
    return nm


def nnsight_trace(nm, x, xc, layer, target):
    "nnsight: save the clean layer output, then one trace per restored channel writing it into the corrupted run."
    import torch
    with nm.trace(x):
        clean = _module(nm, layer).output.save()
    out = []
    for c in range(clean.shape[1]):
        with nm.trace(xc):
            _module(nm, layer).output[:, c] = clean[:, c]
            logits = nm.output.save()
        out.append(torch.softmax(logits, 1).gather(1, target.view(-1, 1))[:, 0])
    return torch.stack(out)


def floor(scm, xc, layer, m):
    import torch
    s = scm.split(layer)
    vals = scm.observe(xc, layer)
    rep = [v.repeat(m, *([1] * (v.ndim - 1))) for v in vals]
    def run():
        with torch.inference_mode(): s.suffix(rep, None)
    return run


def interleaved(fns: dict, repeats: int, device='cpu') -> dict:
    "Median seconds of each function, the repeats interleaved (a, b, c, a, b, c, …) so that load on a shared machine hits all alike."
    times = {k: [] for k in fns}
    for _ in range(repeats):
        for k, fn in fns.items(): times[k].append(C.timed(fn, device))
    return {k: statistics.median(v) for k, v in times.items()}


def trace_layer(model, x, layer, repeats, with_nnsight):
    import copy
    from causal_nb.core import get_module
    from causal_nb.interventions import NetworkSCM, PixelMask
    from causal_nb.patching import causal_trace
    dev = x.device
    scm = NetworkSCM(model)
    corrupt = PixelMask(.3, seed=0)
    target = scm.probs(x).argmax(1)
    # every way pays for the corruption: it is part of a trace
    fns = {'ours': lambda: causal_trace(scm, x, corrupt, layers=[layer], target=target, progress_bar=False).restored[layer],
           'naive': lambda: naive(model, x, corrupt(model, x), layer, target)}
    ref = fns['naive']()
    diff = float((fns['ours']().to(dev) - ref).abs().max())
    row = {'layer': layer, 'module': type(get_module(model, layer)).__name__, 'channels': int(ref.shape[0]),
           'mode': scm.mode(layer)}
    if with_nnsight:
        from nnsight import NNsight
        nm = NNsight(copy.deepcopy(model))      # nnsight wraps the module it is given: a copy keeps ours untouched
        fns['nnsight'] = lambda: nnsight_trace(nm, x, corrupt(model, x), layer, target)
        diff = max(diff, float((fns['nnsight']() - ref).abs().max()))
    assert diff <= 1e-6, (layer, diff)
    fns['floor'] = floor(scm, corrupt(model, x), layer, row['channels'])
    fns['floor']()
    t = interleaved(fns, repeats, dev)
    t_nn = t.get('nnsight')
    return {**row, 'max_abs_diff': diff, 'ours_s': t['ours'], 'naive_s': t['naive'], 'nnsight_s': t_nn, 'floor_s': t['floor'],
            'speedup_vs_naive': t['naive'] / t['ours'], 'speedup_vs_nnsight': None if t_nn is None else t_nn / t['ours'],
            'ours_over_floor': t['ours'] / t['floor']}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(ap, DEVICES)
    ap.add_argument('--repeats', type=int, default=5)
    ap.add_argument('--images', type=int, default=8)
    ap.add_argument('--out', type=Path, default=None, help='results file (default: bench/results/patching[-cuda].json)')
    a = ap.parse_args(argv)
    device = C.check_device(ap, a.device, DEVICES)
    import warnings
    import torch, torchvision
    from causal_nb.core import seed_everything
    from causal_nb.models import SmallCNN, LeNet5
    warnings.simplefilter('ignore')
    torch.set_num_threads(1)
    seed_everything(0)
    try:
        import nnsight; nn_version = nnsight.__version__
    except ImportError: nn_version = None
    cases = [('SmallCNN 28×28', SmallCNN(), (1, 28), ('conv1', 'conv2', 'fc1')),
             ('LeNet5 28×28', LeNet5(), (1, 28), ('conv1', 'conv2', 'fc1')),
             ('ResNet18 32×32', torchvision.models.resnet18(num_classes=10), (3, 32),
              ('conv1', 'layer1.1.conv2', 'layer2.1.conv2', 'layer3.1.conv2'))]
    rows = []
    for name, model, (ch, size), layers in cases:
        model = model.eval().to(device)
        x = torch.rand(a.images, ch, size, size).to(device)
        for layer in layers:
            rows.append({'model': name, **trace_layer(model, x, layer, a.repeats, nn_version is not None)})
            print(rows[-1], flush=True)
    env = C.environment(device)
    res = {'benchmark': 'causal_trace_layer', 'images': a.images, 'repeats': a.repeats, 'corruption': 'PixelMask(0.3)',
           'nnsight': nn_version, 'rows': rows, 'env': env}
    print('written to', C.write_result(a.out or C.result_file(NAME, env['device']), res))


def bound(row: dict) -> float:
    "The speed-up if ours cost only what it cannot avoid: the layers below, run on clean and corrupted images, plus the floor."
    full = row['naive_s'] / (row['channels'] + 1)       # the loop is one clean capture plus one forward per channel
    prefix = max(full - row['floor_s'] / row['channels'], 0.)   # a full forward less the suffix's share of one world
    return row['naive_s'] / (2 * prefix + row['floor_s'])


def _run(file: str, r: dict) -> str:
    env = r['env']
    head = f"### {C.machine(env)}, `{file}`"
    setting = (f"{C.plural(r['images'], 'random image')} corrupted by {r['corruption']}, P(clean prediction) traced over "
               f"every channel of each layer, medians of {C.plural(r['repeats'], 'run')}; max |difference| between the "
               f"answers: {max(x['max_abs_diff'] for x in r['rows']):.1g}.")
    has_nn = any(x.get('nnsight_s') for x in r['rows'])
    rows = [[x['model'], x['layer'], x['channels'], C.seconds(x['ours_s']), C.seconds(x['naive_s']),
             C.times(x['speedup_vs_naive']), C.times(bound(x))] + ([C.times(x['speedup_vs_nnsight'])] if has_nn else [])
            + [C.num(x['ours_over_floor'])] for x in r['rows']]
    tab = C.table(['model', 'layer', 'restorations', 'ours', 'one forward per restoration', 'speed-up', 'bound']
                  + (['vs nnsight'] if has_nn else []) + ['ours / floor'], rows)
    convs = [x for x in r['rows'] if x['module'] == 'Conv2d']
    can = [x for x in convs if bound(x) >= TARGET]
    good = [x for x in can if x['speedup_vs_naive'] >= TARGET]
    lines = [f"Target (issue #21): causal tracing over all channels of a layer ≥ {TARGET:g}× faster than one forward per "
             f"restoration. On the conv layers whose bound allows it ({len(can)} of {len(convs)}): "
             f"{C.verdict(bool(can) and len(good) == len(can))} ({len(good)} of {len(can)}"
             + (f", {C.span([x['speedup_vs_naive'] for x in can])}" if can else '') + ")."]
    short = [x for x in convs if bound(x) < TARGET]
    if short:
        lines.append("- The bound is the speed-up if our run cost only what it cannot avoid — the layers below the traced one "
                     "on the clean and on the corrupted images (each a full forward less the suffix's share) plus the floor; "
                     "below 5× it rules the target out: " + C.listing(f"{x['model'].split()[0]} {x['layer']} ({x['channels']} "
                     f"channels, bound {C.times(bound(x))})" for x in short) + ". Few restorations, or a suffix that is almost the whole "
                     "network (a first conv layer), leave nothing to save.")
    if has_nn:
        nn_ok = all(x['speedup_vs_nnsight'] >= 1 for x in r['rows'] if x.get('speedup_vs_nnsight'))
        lines.append(f"- Against nnsight {r['nnsight']} (one trace per restoration): ≥ 1.0× on every layer "
                     f"{C.verdict(nn_ok)} ({C.span([x['speedup_vs_nnsight'] for x in r['rows'] if x.get('speedup_vs_nnsight')])}).")
    return C.section(head, setting, tab, '\n'.join(lines), C.notes(r))


def markdown(results: Path) -> str:
    "The BENCHMARKS.md section: each layer's speed-up over one forward per restoration and over nnsight, beside its floor."
    head = '## Causal tracing: restorations as suffix passes vs one forward per restoration vs nnsight (issue #21)'
    runs = C.recorded_runs(NAME, DEVICES, results)
    if not runs: return C.section(head, C.not_measured(COMMAND, 'patching.json'))
    intro = (f"`{COMMAND}`. `causal_trace` restores each channel of a layer to its clean value in the corrupted run and "
             "records P(clean prediction): the clean run (one hooked forward) and the corrupted prefix run once, the "
             "restorations run as suffix passes stacked into batches. The obvious loop: a full forward of the corrupted "
             "images per channel with a hook writing the clean channel back. nnsight: the same patch written in its "
             "tracing API, one trace per channel. Every way pays for the corruption; the repeats are interleaved. "
             "Floor = the layers above the traced one alone, on (channels × images) "
             "rows. Random weights.")
    return C.section(head, intro, *(_run(f, r) for f, r in runs))


if __name__ == '__main__':
    main()
