"""Speed and memory of causal_nb.cem.causal_effect_map next to Captum's Occlusion, measured side by side in one run.

- The same map (−CEM on probabilities == Occlusion on probabilities; checked in every run) at 28×28 (the paper's small
  CNN, random weights) and at 224×224 (torchvision ResNet18, random weights), with the same number of masked images
  per forward pass for both (`max_batch` for ours, `perturbations_per_eval` × images for Captum).
- The floor: (number of masked images) × (one plain forward of a batch of that size) / (batch size).
- Peak resident memory (ru_maxrss of a fresh subprocess) of a 224×224 ResNet18 CEM with ≥ 3,000 windows under a
  1 GiB chunk budget, against a 2 GiB limit.

Writes bench/results/cem.json and prints a markdown table.

    OMP_NUM_THREADS=1 python bench/bench_cem.py            # CPU, a few minutes on 2 cores
"""
from __future__ import annotations
import argparse, json, platform, resource, statistics, subprocess, sys, time
from pathlib import Path

import torch
from torch import nn

from causal_nb.cem import causal_effect_map, window_covers
from causal_nb.core import seed_everything
from causal_nb.models import SmallCNN


def _timed(fn):
    t = time.perf_counter(); fn(); return time.perf_counter() - t


def case(name, model, x, t, window, stride, batch, repeats):
    from captum.attr import Occlusion
    n = len(x); c = x.shape[1]
    R, C = window_covers(x.shape, window, stride)
    n_masked = len(R) * len(C) * n
    prob = nn.Sequential(model, nn.Softmax(1)).eval()
    ppe = max(1, batch // n)
    ours = lambda: causal_effect_map(model, x, t, window, stride, max_batch=batch, max_bytes=2**31)  # chunk = batch exactly
    theirs = lambda: Occlusion(prob).attribute(x, sliding_window_shapes=(c, window, window), strides=(c, stride, stride),
                                                baselines=0., target=t, perturbations_per_eval=ppe)
    xb = x.repeat((batch + n - 1) // n, 1, 1, 1)[:batch]
    def floor():
        with torch.inference_mode(): model(xb)
    with torch.inference_mode():
        diff = float((ours() * c + theirs().sum(1)).abs().max())     # Captum sums the window's value over channels
    floor(); ours(); theirs()
    times = {'ours': [], 'captum': [], 'floor_batch': []}
    for _ in range(repeats):
        times['ours'].append(_timed(ours)); times['captum'].append(_timed(theirs)); times['floor_batch'].append(_timed(floor))
    med = {k: statistics.median(v) for k, v in times.items()}
    floor_s = med['floor_batch'] * n_masked / batch
    return {'case': name, 'images': n, 'windows': len(R) * len(C), 'masked_images': n_masked, 'batch': batch,
            'ours_s': med['ours'], 'captum_s': med['captum'], 'floor_s': floor_s,
            'ratio_ours_vs_captum': med['ours'] / med['captum'], 'ratio_ours_vs_floor': med['ours'] / floor_s,
            'ours_masked_images_per_s': n_masked / med['ours'], 'max_abs_diff_vs_captum': diff}


MEM_CHILD = r"""
import resource, sys, time, torch, torchvision
from causal_nb.cem import causal_effect_map, window_covers
torch.manual_seed(0)
m = torchvision.models.resnet18(num_classes=10).eval()
x = torch.rand(1, 3, 224, 224)
R, C = window_covers(x.shape, 8, 4)
t = time.perf_counter()
cem = causal_effect_map(m, x, 0, 8, 4, max_bytes=int(sys.argv[1]))
print(len(R) * len(C), time.perf_counter() - t, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, bool(torch.isfinite(cem).all()))
"""


def memory_case(budget: int) -> dict:
    out = subprocess.run([sys.executable, '-c', MEM_CHILD, str(budget)], capture_output=True, text=True, check=True)
    windows, secs, peak, finite = out.stdout.split()
    return {'case': 'memory 224×224 ResNet18', 'windows': int(windows), 'seconds': float(secs), 'chunk_budget_bytes': budget,
            'peak_rss_bytes': int(peak), 'peak_rss_gib': int(peak) / 2**30, 'under_2gib': int(peak) < 2 * 2**30,
            'finite': finite == 'True'}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--skip-memory', action='store_true')
    a = ap.parse_args()
    import torchvision
    seed_everything(0)
    rows = []
    small = SmallCNN().eval()
    x28 = torch.rand(8, 1, 28, 28); t28 = torch.arange(8) % 10
    rows.append(case('28×28 SmallCNN, window 4 stride 2', small, x28, t28, 4, 2, 512, a.repeats))
    r18 = torchvision.models.resnet18(num_classes=10).eval()
    x224 = torch.rand(1, 3, 224, 224)
    rows.append(case('224×224 ResNet18, window 56 stride 28', r18, x224, torch.tensor([3]), 56, 28, 16, max(1, a.repeats - 2)))
    out = Path(__file__).parent / 'results' / 'cem.json'
    old = json.loads(out.read_text()).get('memory') if out.exists() else None
    mem = old if a.skip_memory else memory_case(2**30)      # --skip-memory keeps the last measured memory case
    res = {'device': 'cpu', 'torch': torch.__version__, 'threads': torch.get_num_threads(), 'platform': platform.platform(),
           'cases': rows, 'memory': mem}
    out.parent.mkdir(exist_ok=True); out.write_text(json.dumps(res, indent=1))
    print('| case | masked images | batch | ours (s) | Captum (s) | floor (s) | ours/Captum | ours/floor | max diff |')
    print('|---|---|---|---|---|---|---|---|---|')
    for r in rows:
        print(f"| {r['case']} | {r['masked_images']} | {r['batch']} | {r['ours_s']:.3f} | {r['captum_s']:.3f} | {r['floor_s']:.3f} | "
              f"{r['ratio_ours_vs_captum']:.2f} | {r['ratio_ours_vs_floor']:.2f} | {r['max_abs_diff_vs_captum']:.1e} |")
    if mem: print(f"\nmemory: {mem['windows']} windows, {mem['seconds']:.0f} s, peak RSS {mem['peak_rss_gib']:.2f} GiB (chunk budget 1 GiB)")


if __name__ == '__main__':
    main()
