"""Latency of the chapter-10 explorers: the time from a control change to the updated view, on the Python side.

A control is set from Python exactly as the front end's message sets it (`control.value = v`); its observers run the
explorer's update synchronously (the chapters' functions, then the PNG pictures and the HTML), so the wall time of that
assignment is the latency, GPU work included (synchronised). For each explorer, the live controls a person drags:

- InterventionExplorer: the `value` slider of do(node := value) and the `node` slider (one suffix pass on the cached
  prefix of the image, two images: untouched and intervened);
- CEMExplorer: the `stride` slider (the causal effect map of the image and its attacked copy), each stride on its own;
- CounterfactualExplorer: a latent slider (decode, classify) and the `step` slider (play through the path); the search
  itself is long work behind a progress bar, reported beside them without a target;
- FilterExplorer: one filter toggled off or on (`ablate_filters` on the sample through the explorer's cached SCM).

Threads (issue #26): the explorers compute with `Explorer.threads` torch threads (1 by default). With another process
keeping every core busy (as the other kernels of a class do), the same small CNN's `value` slider latency and a new
counterfactual search are timed with `Explorer.threads = 1` and `= 2`; the busy process is torch matrix products on
all cores, started and stopped by this script.

In the browser (issue #26): `--browser` runs tests/test_app.py's app test (Voilà, headless Chromium at 1280×720),
which presses the node slider's handle with the keyboard and times, from Python through Playwright, until the node's
picture in the page is a new one: the whole round trip (browser → kernel → update → new PNG → browser), with
Playwright's own polling on top, so an upper bound.

The floor of each case is plain forward passes of as many images as its update runs through the classifier (two for
a node intervention, every masked image for a CEM, the sample twice for a filter toggle), at the throughput of one
batch of up to 64 images; updates that reuse the prefix cache can beat it. Models have
random weights (latency does not depend on them): on the CPU the paper's small CNN at 28×28; on a GPU also a torchvision
ResNet18 at 224×224.

    OMP_NUM_THREADS=1 python bench/bench_widgets.py                 # CPU, the small CNN (about a minute on 2 cores)
    OMP_NUM_THREADS=1 python bench/bench_widgets.py --threads-only  # only the 1 vs 2 threads comparison, beside a busy process
    OMP_NUM_THREADS=1 python bench/bench_widgets.py --browser       # only in the browser: `causal-nb app` in Chromium (a few minutes)
    python bench/bench_widgets.py --device cuda                     # the small CNN and ResNet18 at 224×224 on the GPU

Writes bench/results/widgets.json (CPU) or widgets-cuda.json. Heavy imports live inside the functions: importing this
module (render.py does, for `markdown`) does nothing.
"""
from __future__ import annotations
import argparse, platform, statistics, time
from pathlib import Path

import _common as C

NAME = 'widgets'
DEVICES = ('cpu', 'cuda')
COMMAND = 'OMP_NUM_THREADS=1 python bench/bench_widgets.py [--device cuda]'
TARGETS = {'small-cnn': 0.100, 'resnet18': 0.050}      # issue #10: < 100 ms on the CPU (small CNN), < 50 ms on a GPU (ResNet18)


def setup(model_name: str, device: str, n: int):
    "A random-weight classifier, `n` random images with labels, a matching random generator, and the settings per model."
    import torch, torchvision
    from causal_nb.core import seed_everything
    from causal_nb.counterfactuals import VAE
    from causal_nb.models import SmallCNN
    seed_everything(0)
    if model_name == 'small-cnn':
        model, shape = SmallCNN().eval(), (1, 28, 28)
        cfg = dict(node_layer='conv2', filter_layer='conv2', window=4, strides=(2, 3), size='28×28', label='SmallCNN')
    else:
        model, shape = torchvision.models.resnet18(num_classes=10).eval(), (3, 224, 224)
        cfg = dict(node_layer='layer3.0.conv1', filter_layer='layer4.1.conv2', window=56, strides=(28, 42),
                   size='224×224', label='ResNet18')
    model = model.to(device)
    x, y = torch.rand(n, *shape), torch.randint(0, 10, (n,))
    gen = VAE(shape, latent=10).eval().to(device)
    return model, (x, y), gen, cfg


def _stats(wall: list, update: list) -> dict:
    wall = sorted(wall)
    return {'median_s': statistics.median(wall), 'p90_s': wall[min(len(wall) - 1, int(.9 * len(wall)))],
            'min_s': wall[0], 'update_median_s': statistics.median(update), 'repeats': len(wall)}


def latency(control, values, repeats: int, device: str, explorer, by_value: bool = False) -> dict:
    "Median (and spread) of the seconds from `control.value = v` to the redrawn view, cycling through `values` (or per value)."
    for v in values[:2]: control.value = v                  # warm-up: first traces, caches, allocator
    wall, update = {}, {}
    for i in range(repeats * (len(values) if by_value else 1)):
        v = values[i % len(values)]
        if control.value == v: v = values[(i + 1) % len(values)]
        def change(v=v): control.value = v
        wall.setdefault(v, []).append(C.timed(change, device)); update.setdefault(v, []).append(explorer.state['seconds'])
        if explorer.state.get('error'): raise RuntimeError(f"the explorer reported an error: {explorer.state['error']}")
    if by_value: return {v: _stats(wall[v], update[v]) for v in wall}
    return _stats([t for w in wall.values() for t in w], [t for u in update.values() for t in u])


def run_model(model_name: str, device: str, repeats: int, search_steps: int = 60) -> dict:
    import torch
    from causal_nb.widgets import CEMExplorer, CounterfactualExplorer, FilterExplorer, InterventionExplorer
    n = 128 if model_name == 'small-cnn' else 32             # FilterExplorer's default sample (ResNet18: 32 images)
    model, data, gen, cfg = setup(model_name, device, n)
    floors = {}
    def floor(k: int) -> float:
        "Seconds of plain forward passes for `k` images at the throughput of one batch of min(k, 64): what an update must run at least."
        b = min(k, 64)
        if b not in floors:
            xb = torch.rand(b, *data[0].shape[1:], device=device)
            def fwd():
                with torch.inference_mode(): model(xb)
            fwd(); floors[b] = statistics.median(C.timed(fwd, device) for _ in range(max(3, min(repeats, 7))))
        return floors[b] * k / b
    rows = []
    def add(explorer, control, what, res, k, cached=False, incremental=False):
        f = floor(k)
        rows.append({'explorer': explorer, 'control': control, 'what': what, **res, 'floor_images': k, 'floor_s': f,
                     'ratio_vs_floor': res['median_s'] / f, 'prefix_cached': cached, 'incremental': incremental})
        print(f"{model_name:9s} {explorer:23s} {control:8s} median {1e3 * res['median_s']:7.1f} ms  "
              f"(update {1e3 * res['update_median_s']:.1f} ms; floor {1e3 * f:.1f} ms for {k} images)")

    ex = InterventionExplorer(model, data, device=device)
    ex.set(layer=cfg['node_layer'], node=1, intervention='set value', value=0.5)
    add('InterventionExplorer', 'value', f"do({cfg['node_layer']}[1] := value)",
        latency(ex.controls['value'], [-1., 0., 1., 2., .5], repeats, device, ex), 2, True)
    add('InterventionExplorer', 'node', f"do({cfg['node_layer']}[node] := value)",
        latency(ex.controls['node'], [2, 3, 4, 5, 6], repeats, device, ex), 2, True)
    del ex

    from causal_nb.cem import window_covers
    w, s = cfg['window'], cfg['strides']
    cx = CEMExplorer(model, data, detector=None, window=w, stride=s[0], device=device)
    per = latency(cx.controls['stride'], list(s), repeats, device, cx, by_value=True)
    for st in s:                                              # each stride on its own: their costs differ
        R, Cc = window_covers(data[0][:1].shape, w, st)
        add('CEMExplorer', 'stride', f"stride → {st}: CEM window {w} of the image and its FGSM copy", per[st], 2 * len(R) * len(Cc),
            incremental=True)                                 # the explorer computes CEM with chapter 7a's IncrementalOcclusion
    del cx

    kx = CounterfactualExplorer(model, data, gen, device=device, steps=search_steps, rounds=4)
    search = kx.result.seconds
    add('CounterfactualExplorer', 'z0', 'latent slider: decode + classify',
        latency(kx.controls['z0'], [-1., 0., 1., 2.], repeats, device, kx), 1)
    T = kx.controls['step'].max
    add('CounterfactualExplorer', 'step', 'play through the path',
        latency(kx.controls['step'], [0, T // 2, T, 1], repeats, device, kx), 1)
    del kx

    fx = FilterExplorer(model, data, n_images=n, device=device)
    fx.set(layer=cfg['filter_layer'])
    first = fx.toggles[fx.state['ranking'][0]]
    add('FilterExplorer', 'toggle', f"one {cfg['filter_layer']} filter off/on, {n} images",
        latency(first, [True, False], repeats, device, fx), 2 * n, True)
    return {'model': model_name, 'label': cfg['label'], 'size': cfg['size'], 'images': n,
            'counterfactual_search_s': search, 'search_steps': search_steps * 4, 'rows': rows}


BUSY = ("import torch; torch.set_num_threads(%d); a = torch.rand(384, 384)\n"
        "while True: a = (a @ a).clamp_(-1, 1)")


def run_threads(device: str, repeats: int, counts=(1, 2), search_steps: int = 60) -> dict:
    "Slider latency and counterfactual search seconds with `Explorer.threads` = each of `counts`, beside a process busy on every core."
    import os, subprocess, sys
    from causal_nb.widgets import CounterfactualExplorer, Explorer, InterventionExplorer
    model, data, gen, cfg = setup('small-cnn', device, 128)
    busy = subprocess.Popen([sys.executable, '-c', BUSY % (os.cpu_count() or 1)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    rows, old = [], Explorer.threads
    try:
        time.sleep(1.)                                      # let it take the cores
        for t in counts:
            Explorer.threads = t
            ex = InterventionExplorer(model, data, device=device)
            ex.set(layer=cfg['node_layer'], node=1, intervention='set value', value=0.5)
            slider = latency(ex.controls['value'], [-1., 0., 1., 2., .5], repeats, device, ex)
            del ex
            kx = CounterfactualExplorer(model, data, gen, device=device, steps=search_steps, rounds=4)
            searches = [kx.result.seconds]
            for q in (1, 2): kx.set(query=q); searches.append(kx.result.seconds)   # a new query: a new search
            rows.append({'threads': t, 'slider_median_s': slider['median_s'], 'slider_p90_s': slider['p90_s'],
                         'search_median_s': statistics.median(searches), 'searches': searches, 'repeats': slider['repeats']})
            print(f"threads {t}: value slider median {1e3 * slider['median_s']:.1f} ms, search median {statistics.median(searches):.2f} s")
    finally:
        Explorer.threads = old
        busy.kill(); busy.wait()
    return {'busy': f"torch matrix products on {os.cpu_count()} threads in another process", 'search_steps': search_steps * 4,
            'rows': rows}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(ap, DEVICES)
    ap.add_argument('--repeats', type=int, default=15, help='timed control changes per case')
    ap.add_argument('--models', default=None, help="comma-separated: small-cnn, resnet18 (default: small-cnn on the CPU, both on a GPU)")
    ap.add_argument('--search-steps', type=int, default=60, help='Adam steps per round of the counterfactual search (4 rounds)')
    ap.add_argument('--note', action='append', default=[], help='a line for the results\' notes (how the run was made)')
    ap.add_argument('--out', type=Path, default=None, help='results file (default: bench/results/widgets[-cuda].json)')
    ap.add_argument('--threads-only', action='store_true', help='only the threads comparison, merged into the existing results file')
    ap.add_argument('--keep-threads', action='store_true', help="skip the threads comparison (minutes beside a busy process): "
                    "keep the existing results file's threads and browser sections")
    ap.add_argument('--browser', action='store_true',
                    help='only the latency in Chromium (the app test), merged into the existing results file')
    a = ap.parse_args(argv)
    device = C.check_device(ap, a.device, DEVICES)
    import os, torch
    os.environ['CAUSAL_NB_PROGRESS'] = '0'           # no progress bars between the timings
    if a.browser:
        import subprocess, sys, tempfile, json
        out = a.out or C.result_file(NAME, 'cpu')
        res = C.read_result(out)
        if res is None: ap.error(f"--browser merges into {out}, which does not exist yet: run without it first")
        with tempfile.TemporaryDirectory() as d:
            f = Path(d) / 'latency.json'
            env = {**os.environ, 'CAUSAL_NB_BROWSER_LATENCY': str(f)}
            r = subprocess.run([sys.executable, '-m', 'pytest', str(C.BENCH.parent / 'tests' / 'test_app.py'), '-q',
                                '-p', 'no:cacheprovider', '-k', 'serves_the_explorers'], env=env)
            if r.returncode != 0 or not f.exists(): raise SystemExit(f"the browser test failed (exit {r.returncode}); nothing recorded")
            got = json.loads(f.read_text())
        res['browser'] = {'env': C.environment('cpu'), 'node_slider_s': got['node_slider_s'], 'viewport': '1280×720',
                          'browser': 'Debian chromium, headless, through Playwright'}
        C.write_result(out, res); print(f'\nwritten to {out}')
        return
    if a.threads_only:
        out = a.out or C.result_file(NAME, C.environment(device)['device'])
        res = C.read_result(out)
        if res is None: ap.error(f"--threads-only merges into {out}, which does not exist yet: run without it first")
        res['threads'] = {'env': C.environment(device), **run_threads(device, a.repeats, search_steps=a.search_steps)}
        C.write_result(out, res); print(f'\nwritten to {out}')
        return
    models = a.models.split(',') if a.models else (['small-cnn'] if device.startswith('cpu') else ['small-cnn', 'resnet18'])
    bad = [m for m in models if m not in TARGETS]
    if bad: ap.error(f"--models: unknown {bad}; choose from {list(TARGETS)}")
    env = C.environment(device)
    t0 = time.perf_counter()
    runs = [run_model(m, device, a.repeats, a.search_steps) for m in models]
    out = a.out or C.result_file(NAME, env['device'])
    old = C.read_result(out) if a.keep_threads else None
    if a.keep_threads and old is None:
        ap.error(f"--keep-threads keeps the sections of {out}, which does not exist yet: run without it first")
    threads = (old.get('threads') if old else
               {'env': C.environment(device), **run_threads(device, a.repeats, search_steps=a.search_steps)} if device == 'cpu' else None)
    import ipywidgets
    res = {'threads': threads, 'device': env['device'], 'env': env, 'torch': torch.__version__, 'ipywidgets': ipywidgets.__version__,
           'platform': platform.platform(), 'seconds': time.perf_counter() - t0, 'models': runs, 'notes': a.note}
    if old:
        if old.get('browser'): res['browser'] = old['browser']
        res['notes'] = a.note + ["The threads comparison" + (" and the browser latency" if old.get('browser') else "")
                                 + " are kept from the previous run (--keep-threads): they time other controls, which this run did "
                                 "not change."]
    C.write_result(out, res)
    print(f'\nwritten to {out}')


def _target(run: dict, device: str) -> float | None:
    "The target that applies: 100 ms for the small CNN on the CPU, 50 ms for ResNet18 on a GPU; none otherwise."
    if run['model'] == 'small-cnn' and device == 'cpu': return TARGETS['small-cnn']
    if run['model'] == 'resnet18' and device == 'cuda': return TARGETS['resnet18']
    return None


def _run(file: str, r: dict) -> str:
    env = r.get('env') or {'device': r.get('device')}
    parts = [f"### {C.machine(env)}, `{file}`"]
    for m in r['models']:
        target = _target(m, env.get('device', 'cpu'))
        rows = [[f"{x['explorer']}", f"`{x['control']}`: {x['what']}", C.seconds(x['median_s']), C.seconds(x['p90_s']),
                 f"{C.seconds(x['floor_s'])} ({x['floor_images']})", C.num(x['ratio_vs_floor']),
                 '—' if target is None else C.verdict(x['median_s'] < target)] for x in m['rows']]
        head = (f"**{m['label']} at {m['size']}** ({m['images']} images in the data; medians of {m['rows'][0]['repeats']} "
                "changes per control; floor = plain forward passes of as many images as the update runs through the "
                "model, at the throughput of a batch of up to 64):")
        tab = C.table(['explorer', 'control', 'median', 'p90', 'floor (images)', 'median / floor',
                       'target' + ('' if target is None else f' < {C.seconds(target)}')], rows)
        ok = None if target is None else all(x['median_s'] < target for x in m['rows'])
        worst = max(m['rows'], key=lambda x: x['median_s'])
        verdict = ('' if target is None else
                   f"Target (issue #10, every live control under {C.seconds(target)}): {C.verdict(ok)}; the slowest is "
                   f"{worst['explorer']}'s `{worst['control']}` at {C.seconds(worst['median_s'])}.")
        for x in m['rows']:
            if target is not None and x['median_s'] >= target:
                verdict += (f" {x['explorer']}'s `{x['control']}` ({x['what'].split(':')[0]}) runs {x['floor_images']:,} images "
                            "through the model per update, "
                            f"and a plain forward pass of that many takes {C.seconds(x['floor_s'])} on its own "
                            f"({C.num(x['ratio_vs_floor'])}× of it here): the update is bound by the chapter's computation, "
                            "not by the explorer; a coarser setting or a GPU is what brings it down.")
        below = [x for x in m['rows'] if x['ratio_vs_floor'] < 1 and x.get('prefix_cached')]
        if below:
            verdict += (' ' + C.listing([f"{x['explorer']}'s `{x['control']}`" for x in below])
                        + (" takes" if len(below) == 1 else " take") + " less than the floor: only the layers above the "
                        "cached prefix run.")
        inc = [x for x in m['rows'] if x.get('incremental')]
        if inc:
            verdict += (f" {inc[0]['explorer']}'s CEM is computed with chapter 7a's exact `IncrementalOcclusion` (equal to whole "
                        "masked images within 1e-6, tests/test_widgets.py): each masked window recomputes only the slab of each "
                        "feature map it can reach, so its update takes "
                        + C.listing([f"{C.num(x['ratio_vs_floor'])}× ({x['what'].split(':')[0]})" for x in inc])
                        + " of the floor of whole masked images.")
        search = (f"The counterfactual search ({m['search_steps']} gradient steps, λ bisection) is long work behind a progress bar, "
                  f"not a live control: {C.seconds(m['counterfactual_search_s'])}.")
        parts += [head, tab, verdict, search]
    br = r.get('browser')
    if br:
        v = sorted(br['node_slider_s']); med = statistics.median(v)
        parts += [f"**In the browser** ({br['browser']}, {br['viewport']}; load average {br['env']['load_average']} at its start): "
                  f"the node slider of the app's intervention explorer, one keyboard step until the new picture is in the page, "
                  f"{len(v)} steps: median {C.seconds(med)}, slowest {C.seconds(v[-1])} "
                  f"(target < {C.seconds(TARGETS['small-cnn'])}: {C.verdict(med < TARGETS['small-cnn'])}). "
                  "Includes the widget messages both ways and Playwright's polling of the page."]
    th = r.get('threads')
    if th:
        rows = [[str(x['threads']), C.seconds(x['slider_median_s']), C.seconds(x['slider_p90_s']),
                 C.seconds(x['search_median_s']), ', '.join(C.seconds(v) for v in x['searches'])] for x in th['rows']]
        base = th['rows'][0]
        parts += [f"**Threads beside a busy process** ({th['busy']}; load average {th['env']['load_average']} at its start; "
                  f"small CNN, `Explorer.threads` set to each count; the search is {th['search_steps']} Adam steps with λ bisection, "
                  "three queries):",
                  C.table(['torch threads', '`value` slider median', 'p90', 'counterfactual search median', 'searches'], rows),
                  'Ratios to 1 thread: '
                  + '; '.join(f"{x['threads']} threads: slider {C.num(x['slider_median_s'] / base['slider_median_s'])}×, "
                              f"search {C.num(x['search_median_s'] / base['search_median_s'])}×" for x in th['rows'][1:])
                  + '. ' + ("One thread is faster here beside a busy process: the explorers (and `causal-nb app --threads`) default to it."
                            if all(x['search_median_s'] >= base['search_median_s'] for x in th['rows'][1:]) else
                            "A second thread helped here: the default of one thread costs speed when the cores are not shared; "
                            "set `Explorer.threads` on a machine of your own.")]
    return C.section(*parts, C.notes(r))


def markdown(results: Path) -> str:
    "The BENCHMARKS.md section: each explorer's control-to-view latency against its target and the forward-pass floor."
    head = '## Explorer latency (issue #10)'
    runs = C.recorded_runs(NAME, DEVICES, results)
    if not runs: return C.section(head, C.not_measured(COMMAND, 'widgets.json'))
    intro = (f"`{COMMAND}`. The time from a control change to the updated view on the Python side: the control is set "
             "from Python as the front end's message sets it, its observers run the chapters' functions and redraw the "
             "PNG pictures and HTML synchronously, and the wall time of that assignment is timed (GPU work synchronised). "
             "Random-weight models (latency does not depend on the weights). Not included: sending the new PNG and HTML "
             "to the browser and its drawing them (tests/test_browser_widgets.py checks that they arrive).")
    missing = '' if any((r.get('env') or {}).get('device', r.get('device')) == 'cuda' for _, r in runs) else \
        ('No GPU run recorded yet (no GPU on the machine that measured): `python bench/bench_widgets.py --device cuda` '
         'measures the small CNN and ResNet18 at 224×224 against the 50 ms target and writes `widgets-cuda.json`.')
    return C.section(head, intro, *(_run(f, r) for f, r in runs), missing)


if __name__ == '__main__':
    main()
