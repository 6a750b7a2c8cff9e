"""Speed and memory of causal_nb.cem.causal_effect_map next to Captum's Occlusion, measured side by side in one run.

- The same map (−CEM on probabilities == Occlusion on probabilities; checked in every run) at 28×28 (the paper's small
  CNN, random weights) and at 224×224 (torchvision ResNet18, random weights), with the same number of masked images
  per forward pass for both (`max_batch` for ours, `perturbations_per_eval` × images for Captum).
- The floor: (number of masked images) × (one plain forward of a batch of that size) / (batch size).
- Peak resident memory (ru_maxrss of a fresh subprocess) of a 224×224 ResNet18 CEM with ≥ 3,000 windows under a
  1 GiB chunk budget, against a 2 GiB limit (CPU only).

    OMP_NUM_THREADS=1 python bench/bench_cem.py            # CPU, a few minutes on 2 cores
    python bench/bench_cem.py --device cuda                # the speed cases on the GPU (no memory case)

Writes bench/results/cem.json (CPU) or cem-cuda.json and prints a markdown table. `--skip-memory` keeps the memory
figure already in the results file.
Heavy imports live inside the functions: importing this module (render.py does, for `markdown`) does nothing.
"""
from __future__ import annotations
import argparse, platform, statistics, subprocess, sys
from pathlib import Path

import _common as C

NAME = 'cem'
DEVICES = ('cpu', 'cuda')
COMMAND = 'OMP_NUM_THREADS=1 python bench/bench_cem.py [--device cuda] [--skip-memory]'
TARGET_PEER, TARGET_FLOOR, TARGET_MEMORY = 1.0, 1.1, 2 * 2**30     # issue #7


def case(name, model, x, t, window, stride, batch, repeats, about: dict):
    import torch
    from torch import nn
    from captum.attr import Occlusion
    from causal_nb.cem import causal_effect_map, window_covers
    dev = x.device
    n = len(x); c = x.shape[1]
    R, C_ = window_covers(x.shape, window, stride)
    n_masked = len(R) * len(C_) * n
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
        times['ours'].append(C.timed(ours, dev)); times['captum'].append(C.timed(theirs, dev))
        times['floor_batch'].append(C.timed(floor, dev))
    med = {k: statistics.median(v) for k, v in times.items()}
    floor_s = med['floor_batch'] * n_masked / batch
    return {'case': name, **about, 'window': window, 'stride': stride, 'repeats': repeats, 'images': n,
            'windows': len(R) * len(C_), 'masked_images': n_masked, 'batch': batch,
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
    return {'case': 'memory 224×224 ResNet18', 'model': 'ResNet18 (random weights)', 'size': 224, 'window': 8, 'stride': 4,
            'windows': int(windows), 'seconds': float(secs), 'chunk_budget_bytes': budget,
            'peak_rss_bytes': int(peak), 'peak_rss_gib': int(peak) / 2**30, 'under_2gib': int(peak) < TARGET_MEMORY,
            'finite': finite == 'True'}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(ap, DEVICES)
    ap.add_argument('--repeats', type=int, default=3, help='timed rounds at 28×28 (224×224: two fewer, at least one)')
    ap.add_argument('--skip-memory', action='store_true', help='keep the memory figure already in the results file')
    ap.add_argument('--out', type=Path, default=None, help='results file (default: bench/results/cem[-cuda].json)')
    a = ap.parse_args(argv)
    device = C.check_device(ap, a.device, DEVICES)
    import torch, torchvision
    from causal_nb.core import seed_everything
    from causal_nb.models import SmallCNN
    seed_everything(0)
    rows = []
    small = SmallCNN().eval().to(device)
    x28 = torch.rand(8, 1, 28, 28).to(device); t28 = (torch.arange(8) % 10).to(device)
    rows.append(case('28×28 SmallCNN, window 4 stride 2', small, x28, t28, 4, 2, 512, a.repeats,
                     {'model': 'SmallCNN (random weights)', 'size': 28}))
    r18 = torchvision.models.resnet18(num_classes=10).eval().to(device)
    x224 = torch.rand(1, 3, 224, 224).to(device)
    rows.append(case('224×224 ResNet18, window 56 stride 28', r18, x224, torch.tensor([3]).to(device), 56, 28, 16,
                     max(1, a.repeats - 2), {'model': 'ResNet18 (random weights)', 'size': 224}))
    env = C.environment(device)
    out = a.out or C.result_file(NAME, env['device'])
    old = (C.read_result(out) or {}).get('memory')
    if env['device'] != 'cpu': mem = None; print('the memory case measures CPU resident memory: left out on', device)
    else: mem = old if a.skip_memory else memory_case(2**30)      # --skip-memory keeps the last measured memory case
    import captum
    res = {'device': env['device'], 'torch': torch.__version__, 'captum': captum.__version__, 'threads': torch.get_num_threads(),
           'platform': platform.platform(), 'env': env, 'cases': rows, 'memory': mem}
    C.write_result(out, res)
    print(C.table(['case', 'masked images', 'batch', 'ours (s)', 'Captum (s)', 'floor (s)', 'ours/Captum', 'ours/floor', 'max diff'],
                  [[r['case'], r['masked_images'], r['batch'], f"{r['ours_s']:.3f}", f"{r['captum_s']:.3f}", f"{r['floor_s']:.3f}",
                    f"{r['ratio_ours_vs_captum']:.2f}", f"{r['ratio_ours_vs_floor']:.2f}", f"{r['max_abs_diff_vs_captum']:.1e}"]
                   for r in rows]))
    if mem: print(f"\nmemory: {mem['windows']} windows, {mem['seconds']:.0f} s, peak RSS {mem['peak_rss_gib']:.2f} GiB "
                  "(chunk budget 1 GiB)")
    print(f'\nwritten to {out}')


def _run(file: str, r: dict) -> str:
    "One run (one device): the table, the verdicts, what limits the ratios, the memory figure."
    env = r.get('env') or {'device': r.get('device'), 'torch': r.get('torch'), 'torch_threads': r.get('threads')}
    cases = r['cases']
    head = f"### {C.machine(env)}, `{file}`"
    reps = sorted({c['repeats'] for c in cases if 'repeats' in c}, reverse=True)
    diffs = [c['max_abs_diff_vs_captum'] for c in cases]
    per_case = C.listing(f"{c.get('size', '?')}×{c.get('size', '?')}: {c['repeats']}" for c in cases if 'repeats' in c)
    setting = (f"Max |difference| between the two maps: {max(diffs):.1g} (checked in every run)."
               + (f" Medians of rounds ({per_case})." if reps else ''))
    def label(c):
        if 'model' not in c: return c['case']
        return (f"{c['size']}×{c['size']} {c['model']}, {c['images']} image{'s' if c['images'] != 1 else ''}, window "
                f"{c['window']} stride {c['stride']}")
    tab = C.table(['case', 'masked images', 'batch B', 'ours', 'Captum', 'floor', 'ours / Captum', 'ours / floor'],
                  [[label(c), f"{c['masked_images']:,}", c['batch'], C.seconds(c['ours_s']), C.seconds(c['captum_s']),
                    C.seconds(c['floor_s']), C.num(c['ratio_ours_vs_captum']), C.num(c['ratio_ours_vs_floor'])] for c in cases])
    peer = [c['ratio_ours_vs_captum'] <= TARGET_PEER for c in cases]
    flo = [c['ratio_ours_vs_floor'] <= TARGET_FLOOR for c in cases]
    def which(ok, key):
        values = C.span([c[key] for c in cases], C.num)
        if all(ok): return f"{C.verdict(True)} in {'both' if len(ok) == 2 else 'all'} cases ({values})"
        if not any(ok): return f"{C.verdict(False)} in {'either' if len(ok) == 2 else 'any'} case ({values})"
        return '; '.join(f"{C.verdict(o)} at {c.get('size', c['case'])}{'×' + str(c['size']) if 'size' in c else ''} "
                         f"({C.num(c[key])})" for o, c in zip(ok, cases))
    verdict = (f"Targets (issue #7): ours / Captum ≤ {TARGET_PEER:.1f} — {which(peer, 'ratio_ours_vs_captum')}; throughput "
               f"within {TARGET_FLOOR:g}× of the floor — {which(flo, 'ratio_ours_vs_floor')}.")
    if not all(flo):
        verdict += (" The overhead over the floor is building the masked images (`torch.where` against broadcast window "
                    "masks) and the softmax/gather; it was not profiled further.")
    earlier = ''
    if r.get('earlier_runs'):
        earlier = '\n'.join(f"An earlier run ({e['conditions']}) gave ours / Captum = {C.num(e['ratio_ours_vs_captum'])} and "
                            f"ours / floor-at-{e['floor_batch']} = {C.num(e['ratio_ours_vs_floor'])}. {e.get('lesson', '')}"
                            for e in r['earlier_runs'])
    return C.section(head, setting, tab, verdict, earlier, _memory(r.get('memory')), C.notes(r))


def _memory(m: dict | None) -> str:
    if not m: return ''
    ok = m['peak_rss_bytes'] < TARGET_MEMORY
    where = f"{m.get('size', 224)}×{m.get('size', 224)} CEM on {m.get('model', 'ResNet18')}"
    shape = f" (window {m['window']}, stride {m['stride']})" if 'window' in m else ''
    return (f"**Memory.** A {where} with {m['windows']:,} windows{shape}, chunk budget {C.gib(m['chunk_budget_bytes'])} "
            f"(`max_bytes={m['chunk_budget_bytes']}`), run in a fresh subprocess on one thread: peak resident memory "
            f"(ru_maxrss) **{C.gib(m['peak_rss_bytes'])}**, in {m['seconds']:.0f} s"
            + ('' if m.get('finite', True) else ' (the map had non-finite values!)')
            + f". Target (under {C.gib(TARGET_MEMORY)}): {C.verdict(ok)}.")


def markdown(results: Path) -> str:
    "The BENCHMARKS.md section: ours vs Captum vs the floor per case, the verdicts, the memory figure."
    head = '## Causal Effect Maps vs Captum Occlusion (issue #7)'
    runs = C.recorded_runs(NAME, DEVICES, results)
    if not runs: return C.section(head, C.not_measured(COMMAND, 'cem.json'))
    intro = (f"`{COMMAND}` (a few minutes on 2 cores; `--skip-memory` keeps the last memory figure). The same map both "
             f"ways: −`causal_effect_map` on probabilities vs Captum {runs[0][1].get('captum', '')}'s `Occlusion` on "
             "`softmax(model)`, same windows, strides, baseline 0 and targets. Same batch for both: ours with `max_batch=B` (chunks of "
             "exactly B masked "
             "images), Captum with `perturbations_per_eval = B / images`. Floor = (masked images) × (plain forward of a "
             "batch of B) / B.")
    missing = '' if any((r.get('env') or {}).get('device', r.get('device')) == 'cuda' for _, r in runs) else \
        'No GPU run recorded yet: `python bench/bench_cem.py --device cuda` writes `cem-cuda.json`.'
    return C.section(head, intro, *(_run(f, r) for f, r in runs), missing)


if __name__ == '__main__':
    main()
