"""Fidelity of the concept autoencoder on the fully trained small CNN (issue #4): how faithfully the network with the
autoencoder inserted after a layer reproduces the original, on the 10,000 Fashion-MNIST test images.

For each configuration (concepts : epochs) an autoencoder is fitted after `--layer` on all 60,000 training images with
`fit_autoencoder`'s default loss weights (or loaded from the cache), and `fidelity` compares the two networks: top-1
agreement, accuracy of both, mean KL(original ‖ autoencoded), relative L1 reconstruction error.
Target (issue #4): top-1 agreement ≥ 98% and accuracy within one point of the original's.

    python bench/bench_autoencoder.py [--device cpu|cuda] [--configs 16:15 8:10] [--layer pool2]
    python bench/bench_autoencoder.py --quick --out /tmp/autoencoder.json    # a small check, not the full setting

The full setting takes tens of minutes per configuration on two CPU cores, under a minute on a GPU.
Writes bench/results/autoencoder.json (CPU) or autoencoder-cuda.json.
Heavy imports live inside the functions: importing this module (render.py does, for `markdown`) does nothing.
"""
from __future__ import annotations
import argparse, time
from pathlib import Path

import _common as C

NAME = 'autoencoder'
DEVICES = ('cpu', 'cuda')
COMMAND = 'python bench/bench_autoencoder.py [--device cuda]'
TARGET_AGREEMENT, TARGET_DROP = 0.98, 0.01      # issue #4


def config(text: str) -> tuple[int, int]:
    "'16:15' → (16 concepts, 15 epochs)."
    try:
        c, e = (int(v) for v in text.split(':'))
        if c < 1 or e < 1: raise ValueError
    except ValueError:
        raise argparse.ArgumentTypeError(f"a configuration is CONCEPTS:EPOCHS with two positive integers, e.g. 16:15; got {text!r}")
    return c, e


def measure(configs: list[tuple[int, int]], layer: str, device: str, quick: bool) -> dict:
    import inspect
    from causal_nb.autoencoder import fidelity, fit_autoencoder
    from causal_nb.data import load_data
    from causal_nb.models import trained_model
    train, test = load_data('fashion-mnist'), load_data('fashion-mnist', train=False)
    if quick: train, test = train.subset(2000, seed=0), test.subset(1000, seed=0)
    model = trained_model('small-cnn', 'fashion-mnist', quick=quick, device=device).model
    defaults = {k: v.default for k, v in inspect.signature(fit_autoencoder).parameters.items()
                if k in ('lr', 'batch_size', 'lam_shallow', 'lam_deep', 'lam_interp', 'tv_weight')}
    rows, acc = [], None
    for n_concepts, epochs in configs:
        t0 = time.perf_counter()
        fit = fit_autoencoder(model, layer, train, n_concepts=n_concepts, epochs=epochs, device=device)
        fid = fidelity(model, fit.model, test, device=device)
        acc = fid.accuracy_original
        rows.append({'n_concepts': n_concepts, 'epochs': epochs, 'agreement': fid.agreement,
                     'accuracy_original': fid.accuracy_original, 'accuracy_autoencoded': fid.accuracy_autoencoded,
                     'accuracy_drop': fid.accuracy_drop, 'mean_kl': fid.mean_kl,
                     'relative_l1': float(fid.reconstruction['relative_l1'].iloc[0]), 'fit_seconds': fit.seconds,
                     'cached': fit.cached, 'seconds': time.perf_counter() - t0})
        print(rows[-1], flush=True)
    setting = {'model': 'small-cnn', 'model_training': 'quick: 2 epochs on 10,000 images' if quick else 'full setting',
               'model_test_accuracy': acc, 'layer': layer, 'train_images': len(train), 'test_images': len(test), **defaults}
    return {'benchmark': 'autoencoder_fidelity', 'env': C.environment(device), 'setting': setting, 'rows': rows}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    C.add_device_arg(p, DEVICES)
    p.add_argument('--configs', nargs='+', type=config, default=[(16, 15), (8, 10)], metavar='CONCEPTS:EPOCHS')
    p.add_argument('--layer', default='pool2', help='the layer after which the autoencoder goes')
    p.add_argument('--quick', action='store_true', help='quick model, 2,000 training / 1,000 test images (a check only)')
    p.add_argument('--out', type=Path, default=None, help='results file (default: bench/results/autoencoder[-cuda].json)')
    a = p.parse_args(argv)
    device = C.check_device(p, a.device, DEVICES)
    res = measure(a.configs, a.layer, device, a.quick)
    out = C.write_result(a.out or C.result_file(NAME, res['env']['device']), res)
    print(_table(res))
    print(f'\nwritten to {out}')


def _ok(row) -> bool | None:
    "Target met (True), missed (False) or not known (a figure it needs was not recorded)."
    agree, drop = row.get('agreement'), row.get('accuracy_drop')
    if (agree is not None and agree < TARGET_AGREEMENT) or (drop is not None and abs(drop) > TARGET_DROP): return False
    return None if agree is None or drop is None else True


def _label(row) -> str: return f"{C.plural(row['n_concepts'], 'concept')} / {C.plural(row['epochs'], 'epoch')}"


def _why(row) -> str:
    "What misses the target, in numbers."
    why = []
    if row.get('agreement') is not None and row['agreement'] < TARGET_AGREEMENT:
        why.append(f"agreement {C.pct(row['agreement'])} < {TARGET_AGREEMENT:.0%}")
    if row.get('accuracy_drop') is not None and abs(row['accuracy_drop']) > TARGET_DROP:
        change = 'drop' if row['accuracy_drop'] > 0 else 'gain'
        why.append(f"accuracy {change} {100 * abs(row['accuracy_drop']):.2f} points > {100 * TARGET_DROP:.0f}")
    return ', '.join(why)


def _table(r: dict) -> str:
    pts = lambda v: '—' if v is None else f'{100 * v:.2f} points'
    return C.table(['concepts', 'epochs', 'top-1 agreement', 'accuracy drop', 'mean KL', 'relative L1', 'fit time', 'target'],
                   [[row['n_concepts'], row['epochs'], C.pct(row.get('agreement')), pts(row.get('accuracy_drop')),
                     '—' if row.get('mean_kl') is None else f"{row['mean_kl']:.4f}",
                     '—' if row.get('relative_l1') is None else f"{row['relative_l1']:.3f}",
                     '—' if row.get('fit_seconds') is None
                     else f"{row['fit_seconds']:.0f} s" + (' (cache)' if row.get('cached') else ''),
                     C.verdict(_ok(row))] for row in r['rows']])


def markdown(results: Path) -> str:
    "The BENCHMARKS.md section: fidelity of each configuration, the target and its verdict."
    head = '## Concept autoencoder fidelity (issue #4)'
    runs = C.recorded_runs(NAME, DEVICES, results)
    if not runs: return C.section(head, C.not_measured(COMMAND, 'autoencoder.json'))
    intro = (f"`{COMMAND}` fits a concept autoencoder after a layer of the fully trained small CNN with "
             "`fit_autoencoder`'s default loss weights (or loads it from the cache) and compares the network with it "
             "inserted to the original on the test images (`fidelity`): top-1 agreement, accuracy drop, mean KL(original ‖ autoencoded), "
             "relative L1 "
             f"reconstruction error. Target: top-1 agreement ≥ {TARGET_AGREEMENT:.0%} and an accuracy within "
             f"{100 * TARGET_DROP:.0f} point of the original's.")
    parts = [head, intro]
    for file, r in runs:
        s, env = r['setting'], r.get('env') or {}
        where = C.machine(env) if env.get('device') else 'machine not recorded'
        acc = f", {C.pct(s['model_test_accuracy'])} test accuracy" if s.get('model_test_accuracy') is not None else ''
        parts.append(f"`{s['model']}` ({s['model_training']}{acc}), autoencoder after `{s['layer']}` fitted on "
                     f"{s['train_images']:,} training images (λ_shallow = {s['lam_shallow']:g}, λ_deep = {s['lam_deep']:g}, "
                     f"λ_interp = {s['lam_interp']:g}, β = {s['tv_weight']:g}; Adam from lr {s['lr']:g}, batches of "
                     f"{s['batch_size']}), compared on {s['test_images']:,} test images; {where}, `{file}`:")
        parts.append(_table(r))
        met = [row for row in r['rows'] if _ok(row)]
        short = [row for row in r['rows'] if _ok(row) is False]
        verdict = f"Target: {C.verdict(bool(met))}"
        if met: verdict += ' with ' + C.listing(_label(row) for row in met)
        if short: verdict += ('; short of it with ' if met else ' — short of it with ') + \
            '; '.join(f'{_label(row)} ({_why(row)})' for row in short)
        parts.append(verdict + '.')
        parts.append(C.notes(r, f'About `{file}`'))
    return C.section(*parts)


if __name__ == '__main__':
    main()
