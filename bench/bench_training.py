"""Train the paper's small CNN (and LeNet5) on Fashion-MNIST in the full setting; record test accuracy and time.

Usage: python bench/bench_training.py [--device cpu|cuda] [--arch small-cnn lenet5] [--no-cache]
Writes bench/results/training-<device>.json and prints a markdown table.
The paper reports 89.6% for its 2-conv Fashion-MNIST model; issue #2's target is >= 91.0%.
"""
import argparse, json, os, platform, tempfile, time
from pathlib import Path
import torch
from causal_nb.core import get_device
from causal_nb.data import load_data
from causal_nb.models import build_model, train, evaluate

p = argparse.ArgumentParser()
p.add_argument('--device', default=None)
p.add_argument('--arch', nargs='+', default=['small-cnn', 'lenet5'])
p.add_argument('--epochs', type=int, default=10)
p.add_argument('--no-cache', action='store_true', help='train from scratch even if a cached model exists')
a = p.parse_args()
dev = get_device(a.device)
if a.no_cache: os.environ['CAUSAL_NB_CACHE'] = tempfile.mkdtemp()
tr, te = load_data('fashion-mnist'), load_data('fashion-mnist', train=False)
rows = []
for arch in a.arch:
    t0 = time.perf_counter()
    res = train(build_model(arch, tr), tr, epochs=a.epochs, device=dev)
    ev = evaluate(res.model, te, device=dev)
    rows.append(dict(arch=arch, device=str(dev), epochs=a.epochs, best_epoch=res.best_epoch, test_accuracy=ev.accuracy,
                     train_seconds=res.seconds, cached=res.cached, threads=torch.get_num_threads(),
                     cpu=platform.processor() or platform.machine(),
                     gpu=torch.cuda.get_device_name(dev) if dev.type == 'cuda' else None))
    print(rows[-1], flush=True)
out = Path(__file__).parent / 'results' / f'training-{dev.type}.json'
out.write_text(json.dumps(rows, indent=1))
print('| model | device | epochs (kept) | test accuracy | training time |\n|---|---|---|---|---|')
for r in rows:
    print(f"| {r['arch']} | {r['device']} ({r['threads']} threads) | {r['epochs']} ({r['best_epoch']}) | {r['test_accuracy']:.2%} | {r['train_seconds']:.0f} s |")
