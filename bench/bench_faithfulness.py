"""Speed of causal_nb.faithfulness's deletion curve, ROAD and cascading randomisation next to the same metrics in
Quantus, measured side by side in one run.

- 100 images of 28×28, the paper's small CNN (random weights, seeded), Grad-CAM maps (our `grad_cam`; both libraries
  score the same maps).
- Deletion: `perturbation_curve(steps=28)` vs Quantus `PixelFlipping(features_in_step=28)` (28 steps of 28 pixels,
  baseline 0); the curves are compared in every run.
- ROAD: `road` (10–90 %, MoRF *and* LeRF, noise 0.01) vs Quantus `ROAD` (10–90 %, most relevant first only): ours
  does twice the model work, and the ratio is reported as measured.
- Sanity: `cascading_randomisation` of a 5-layer CNN (3 conv + 2 linear) with Saliency maps vs Quantus `MPRT`
  (top-down, the same Saliency function as its `explain_func`), 100 images.
- The floor: the plain forward passes the deletion curve needs (images × steps, in batches of 512).

    OMP_NUM_THREADS=1 python bench/bench_faithfulness.py     # CPU, about a minute on 2 cores

Writes bench/results/faithfulness.json and prints a markdown table. Heavy imports live inside the functions.
"""
from __future__ import annotations
import argparse, statistics
from pathlib import Path

import _common as C

NAME = 'faithfulness'
DEVICES = ('cpu',)
COMMAND = 'OMP_NUM_THREADS=1 python bench/bench_faithfulness.py'


def five_layer():
    from torch import nn
    return nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 16, 3, padding=1), nn.ReLU(),
                         nn.MaxPool2d(2), nn.Conv2d(16, 16, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(16 * 49, 64), nn.ReLU(),
                         nn.Linear(64, 10)).eval()


def med(fn, repeats, device='cpu'):
    fn()                                                                     # warm-up
    return statistics.median(C.timed(fn, device) for _ in range(repeats))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(ap, DEVICES)
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--out', type=Path, default=None)
    a = ap.parse_args(argv)
    device = C.check_device(ap, a.device, DEVICES)
    import warnings; warnings.filterwarnings('ignore')
    import numpy as np, torch, quantus
    from causal_nb.core import seed_everything
    from causal_nb.models import SmallCNN
    from causal_nb.cem import grad_cam
    from causal_nb.faithfulness import perturbation_curve, road, cascading_randomisation, saliency
    seed_everything(0)
    net = SmallCNN().eval()
    x = torch.rand(100, 1, 28, 28); x[..., 0, 0] = 0                        # Quantus's 'black' is the image minimum: make it 0
    with torch.no_grad(): y = net(x).argmax(1)
    maps = grad_cam(net, x, y) + torch.linspace(0, 1e-6, 784).view(28, 28)  # no ties, so both sorts agree
    xs, ys, am = x.numpy(), y.numpy(), maps[:, None].numpy()
    rows = []

    ours = lambda: perturbation_curve(net, x, maps, y, steps=28)
    pf = quantus.PixelFlipping(features_in_step=28, perturb_baseline='black', abs=False, normalise=False, disable_warnings=True)
    theirs = lambda: pf(model=net, x_batch=xs, y_batch=ys, a_batch=am, softmax=True, channel_first=True, batch_size=100)
    diff = float(np.abs(np.asarray(theirs()) - ours().probs[:, 1:]).max())
    xb = x.repeat(6, 1, 1, 1)[:512]
    def floor_batch():
        with torch.inference_mode(): net(xb)
    t_floor = med(floor_batch, a.repeats) * 100 * 29 / 512
    rows.append({'case': 'deletion curve, 100 images, 28 steps', 'ours_s': med(ours, a.repeats), 'quantus_s': med(theirs, a.repeats),
                 'floor_s': t_floor, 'max_abs_diff': diff, 'quantus_metric': 'PixelFlipping'})

    fr = [.1, .2, .3, .4, .5, .6, .7, .8, .9]
    ours = lambda: road(net, x, maps, y, fractions=fr)
    qr = quantus.ROAD(percentages=[10, 20, 30, 40, 50, 60, 70, 80, 90], abs=False, normalise=False, disable_warnings=True)
    theirs = lambda: qr(model=net, x_batch=xs, y_batch=ys, a_batch=am, softmax=True, channel_first=True, batch_size=100)
    rows.append({'case': 'ROAD, 100 images, 9 shares', 'ours_s': med(ours, max(1, a.repeats - 2)),
                 'quantus_s': med(theirs, max(1, a.repeats - 2)), 'floor_s': None, 'max_abs_diff': None,
                 'quantus_metric': 'ROAD', 'note': 'ours: MoRF and LeRF; Quantus: MoRF only'})

    five = five_layer()
    def explain(model, inputs, targets, **kw):
        return saliency(model, torch.as_tensor(inputs), torch.as_tensor(targets)).numpy()[:, None]
    with torch.no_grad(): y5 = five(x).argmax(1)
    ours = lambda: cascading_randomisation(five, x, 'Saliency', y5)
    mprt = quantus.MPRT(layer_order='top_down', disable_warnings=True, return_average_correlation=False)
    theirs = lambda: mprt(model=five, x_batch=xs, y_batch=y5.numpy(), a_batch=None, explain_func=explain, softmax=False,
                          channel_first=True, batch_size=100)
    rows.append({'case': 'cascading randomisation, 5-layer CNN, 100 images', 'ours_s': med(ours, a.repeats),
                 'quantus_s': med(theirs, a.repeats), 'floor_s': None, 'max_abs_diff': None, 'quantus_metric': 'MPRT'})
    for r in rows:
        r['ratio_ours_vs_quantus'] = r['ours_s'] / r['quantus_s']
        r['ratio_ours_vs_floor'] = r['ours_s'] / r['floor_s'] if r['floor_s'] else None
    env = C.environment(device)
    out = a.out or C.result_file(NAME, env['device'])
    res = {'device': env['device'], 'quantus': quantus.__version__, 'env': env, 'repeats': a.repeats, 'cases': rows}
    C.write_result(out, res)
    print(C.table(['case', 'ours', 'Quantus', 'ours / Quantus', 'ours / floor'],
                  [[r['case'], C.seconds(r['ours_s']), C.seconds(r['quantus_s']), C.num(r['ratio_ours_vs_quantus']),
                    C.num(r['ratio_ours_vs_floor'])] for r in rows]))
    print(f'\nwritten to {out}')


def markdown(results: Path) -> str:
    "The BENCHMARKS.md section: deletion, ROAD and cascading randomisation, ours vs Quantus (and the floor)."
    head = '## Faithfulness and sanity metrics vs Quantus (issue #20)'
    runs = C.recorded_runs(NAME, DEVICES, results)
    if not runs: return C.section(head, C.not_measured(COMMAND, 'faithfulness.json'))
    parts = [head, f"`{COMMAND}`. 100 images of 28×28 and the paper's small CNN (random weights); the same Grad-CAM maps "
                   "scored by both libraries. Deletion is compared point by point with Quantus's `PixelFlipping` in every "
                   "run; ROAD is ours with MoRF *and* LeRF against Quantus's MoRF only (ours does twice the model work); "
                   "the sanity check re-initialises a 5-layer CNN top down with Saliency maps, against Quantus's `MPRT` "
                   "given the same Saliency function. Floor: the plain forward passes the deletion curve needs."]
    for file, r in runs:
        cases = r['cases']
        diff = [c['max_abs_diff'] for c in cases if c.get('max_abs_diff') is not None]
        parts.append(f"### {C.machine(r.get('env') or {})}, `{file}`, Quantus {r.get('quantus', '')}")
        parts.append(C.table(['case', 'ours', 'Quantus', 'ours / Quantus', 'ours / floor'],
                             [[c['case'], C.seconds(c['ours_s']), C.seconds(c['quantus_s']), C.num(c['ratio_ours_vs_quantus']),
                               C.num(c['ratio_ours_vs_floor'])] for c in cases]))
        faster = [c['case'].split(',')[0] for c in cases if c['ratio_ours_vs_quantus'] < 1]
        slower = [c['case'].split(',')[0] for c in cases if c['ratio_ours_vs_quantus'] >= 1]
        parts.append((f"Faster than Quantus: {C.listing(faster)}. " if faster else '') +
                     (f"Not faster than Quantus: {C.listing(slower)}. " if slower else '') +
                     (f"Max |difference| between the deletion curves: {max(diff):.1g}. " if diff else '') +
                     f"Medians of {r.get('repeats', '?')} rounds (ROAD: {max(1, r.get('repeats', 3) - 2)}).")
        parts.append(C.notes(r))
    return C.section(*parts)


if __name__ == '__main__':
    main()
