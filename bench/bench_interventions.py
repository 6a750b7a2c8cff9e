"""Sweeping every node of a layer: causal_nb's prefix-cached batched `NetworkSCM.effects` against a full forward per
node (a hook zeroes the channel: the obvious loop) and Captum's `LayerFeatureAblation`, plus the floor.

All three give the same Effects (asserted within 1e-5). The floor is the cost of the layers above the node: the
suffix alone run on (nodes × images) rows, with the prefix values already computed. Times are medians over repeats.
A second part measures the peak resident memory of an Expected-CE sweep of 10,000 images under a memory budget.

Run: python bench/bench_interventions.py [--repeats 3] [--images 8] [--skip-memory]
"""
import argparse, json, os, platform, resource, statistics, subprocess, sys, time, warnings
from pathlib import Path

import torch
from torch import nn

warnings.simplefilter('ignore')
import captum
from captum.attr import LayerFeatureAblation

from causal_nb.core import Node, get_module, intervene, seed_everything
from causal_nb.models import SmallCNN
from causal_nb.interventions import NetworkSCM, ZeroOut, expected_ce_table, idle

OUT = Path(__file__).parent / 'results'


def timed(fn, repeats):
    fn()
    ts = []
    for _ in range(repeats):
        t = time.perf_counter(); fn(); ts.append(time.perf_counter() - t)
    return statistics.median(ts)


def naive(model, x, layer, nodes, target):
    out = []
    with torch.inference_mode():
        p0 = torch.softmax(model(x), 1)[:, target]
        for i in nodes:
            def zero(o, i=i): o = o.clone(); o[:, i] = 0; return o
            with intervene(model, {layer: zero}): out.append(torch.softmax(model(x), 1)[:, target] - p0)
    return torch.stack(out, 1)


def captum_ablation(model, x, layer, nodes, target):
    mod = get_module(model, layer)
    with torch.inference_mode():
        shape = model_shape(model, x, layer)
    # one feature group per swept channel; the other channels get group −1… Captum needs every element in a group,
    # so unswept channels share one extra group whose attribution we drop
    c = shape[1]
    group = torch.full((c,), len(nodes), dtype=torch.long); group[torch.tensor(nodes)] = torch.arange(len(nodes))
    mask = group.view(1, c, *([1] * (len(shape) - 2))).expand(1, *shape[1:])
    fwd = lambda inp: torch.softmax(model(inp), 1)
    with torch.no_grad():
        a = LayerFeatureAblation(fwd, mod).attribute(x, target=target, layer_mask=mask, perturbations_per_eval=len(nodes) + 1)
    a = a.flatten(2)[:, :, 0] if a.ndim > 2 else a
    return -a[:, nodes]


def model_shape(model, x, layer):
    got = []
    h = get_module(model, layer).register_forward_hook(lambda m, i, o: got.append(o.shape))
    model(x[:1]); h.remove()
    return got[0]


def floor(scm, x, layer, m):
    s = scm.split(layer)
    vals = scm.observe(x, layer)
    rep = [v.repeat(m + 1, *([1] * (v.ndim - 1))) for v in vals]
    def run():
        with torch.inference_mode(): s.suffix(rep, None)
    return run


def sweep_layer(model, x, layer, n_nodes, repeats, target=0):
    scm = NetworkSCM(model)
    c = model_shape(model, x, layer)[1]
    nodes = list(range(min(n_nodes, c)))
    ours_fn = lambda: scm.effects(x, [Node(layer, i) for i in nodes])[0][:, :, target].T
    # prefix caching is part of what is measured: drop the cached prefix before each run
    def ours_timed():
        scm._cache.clear(); return ours_fn()
    ref = naive(model, x, layer, nodes, target)
    got, cap = ours_fn(), captum_ablation(model, x, layer, nodes, target)
    diff = max(float((got - ref).abs().max()), float((cap - ref).abs().max()))
    assert diff < 1e-5, (layer, diff)
    t_ours = timed(ours_timed, repeats)
    t_naive = timed(lambda: naive(model, x, layer, nodes, target), repeats)
    t_captum = timed(lambda: captum_ablation(model, x, layer, nodes, target), repeats)
    t_floor = timed(floor(scm, x, layer, len(nodes)), repeats)
    return {'layer': layer, 'nodes': len(nodes), 'channels': c, 'mode': scm.mode(layer), 'max_abs_diff': diff,
            'ours_s': t_ours, 'naive_s': t_naive, 'captum_s': t_captum, 'floor_s': t_floor,
            'speedup_vs_naive': t_naive / t_ours, 'speedup_vs_captum': t_captum / t_ours, 'ours_over_floor': t_ours / t_floor}


def vgg_style(n_classes=10):
    "VGG11's convolutional stack (torchvision's configuration A) for 32×32 inputs, with a small classifier."
    import torchvision
    feats = torchvision.models.vgg11(num_classes=n_classes).features
    return nn.Sequential(feats, nn.Flatten(), nn.Linear(512, 256), nn.ReLU(), nn.Linear(256, n_classes))


def memory_child(n_images, max_bytes):
    from causal_nb.data import load_data
    from causal_nb.models import trained_model
    torch.set_num_threads(1)
    data = load_data('fashion-mnist', train=False).subset(n_images)
    model = SmallCNN().eval()
    scm = NetworkSCM(model, max_bytes=max_bytes)
    scm.effects(data.images[:8], [Node('conv2', 0)])     # warm up (lazy imports, allocator)
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    t = time.perf_counter()
    tab = expected_ce_table(scm, [Node('conv2', i) for i in range(64)], {'Z0': idle}, data, batch_size=1000, ci='normal',
                            progress_bar=False)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({'images': len(data), 'nodes': 64, 'max_bytes': max_bytes, 'rss_before': base, 'rss_peak': peak,
                      'growth_bytes': peak - base, 'seconds': time.perf_counter() - t, 'n': tab.attrs['n']}))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--repeats', type=int, default=3)
    ap.add_argument('--images', type=int, default=8)
    ap.add_argument('--nodes', type=int, default=64)
    ap.add_argument('--skip-memory', action='store_true')
    ap.add_argument('--memory-child', nargs=2, type=int)
    a = ap.parse_args()
    if a.memory_child: return memory_child(*a.memory_child)
    torch.set_num_threads(1)
    seed_everything(0)
    rows = []
    small = SmallCNN().eval(); x = torch.rand(a.images, 1, 28, 28)
    for layer in ('conv1', 'conv2', 'fc1'):
        rows.append({'model': 'SmallCNN 28×28', **sweep_layer(small, x, layer, a.nodes, a.repeats)}); print(rows[-1], flush=True)
    vgg = vgg_style().eval(); xv = torch.rand(a.images, 3, 32, 32)
    convs = [n for n, m in vgg.named_modules() if isinstance(m, nn.Conv2d)]
    for layer in convs:
        rows.append({'model': 'VGG11-style 32×32', **sweep_layer(vgg, xv, layer, a.nodes, a.repeats)}); print(rows[-1], flush=True)
    res = {'benchmark': 'interventions_layer_sweep', 'images': a.images, 'repeats': a.repeats, 'rows': rows,
           'torch': torch.__version__, 'captum': captum.__version__, 'python': platform.python_version(),
           'cpus': os.cpu_count(), 'torch_threads': 1}
    if not a.skip_memory:
        budget = 256 * 2**20
        out = subprocess.run([sys.executable, __file__, '--memory-child', '10000', str(budget)], capture_output=True,
                             text=True, check=True, env={**os.environ, 'OMP_NUM_THREADS': '1', 'CAUSAL_NB_PROGRESS': '0'})
        res['memory'] = json.loads(out.stdout.strip().splitlines()[-1]); print(res['memory'])
    OUT.mkdir(exist_ok=True)
    (OUT / 'interventions.json').write_text(json.dumps(res, indent=1))


if __name__ == '__main__':
    main()
