"""Speed of causal_nb.attacks next to its peers, measured side by side in one run.

- FGSM / BIM / PGD (L∞, random start off) against torchattacks 3.3.0 with the same model, batch and steps, and
  against the floor: `steps` × one forward + input-gradient pass of the same batch (parameters frozen, eval mode).
  Ours is timed twice: `evaluate=False` (adversarial images only, like torchattacks) and the default
  `evaluate=True` (one more forward pass to fill the result record's success mask).
- JSMA against Adversarial Robustness Toolbox's `SaliencyMapMethod` on 64 images, same θ, γ and targets.

Each contender runs once per round, in turn, after a warm-up; the figures are medians over rounds.
Writes bench/results/attacks.json and prints a markdown table.

    python bench/bench_attacks.py                    # CPU
    python bench/bench_attacks.py --device cuda      # GPU
"""
from __future__ import annotations
import argparse, json, platform, statistics, time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from causal_nb.attacks import bim, fgsm, jsma, pgd
from causal_nb.core import evaluating, seed_everything


def _sync(device):
    if device.type == 'cuda': torch.cuda.synchronize(device)


def _timed(fn, device):
    _sync(device); t = time.perf_counter(); fn(); _sync(device)
    return time.perf_counter() - t


def side_by_side(contenders: dict, device, repeats: int) -> dict:
    "Median seconds per contender; one warm-up call each, then `repeats` rounds taking turns."
    for fn in contenders.values(): fn()
    times = {k: [] for k in contenders}
    for _ in range(repeats):
        for k, fn in contenders.items(): times[k].append(_timed(fn, device))
    return {k: statistics.median(v) for k, v in times.items()}


def data_and_model(device, n: int, seed: int = 0):
    "Fashion-MNIST test images and a small CNN trained briefly (cached); random images if the data is missing."
    from causal_nb.models import SmallCNN, build_model, train
    try:
        from causal_nb.data import fashion_mnist
        tr = fashion_mnist(train=True, download=False).subset(3000, seed=seed)
        te = fashion_mnist(train=False, download=False).subset(n, seed=seed)
        model = train(build_model('small-cnn', tr), tr, epochs=2, progress_bar=False).model
        x, y, source = te.images, te.labels, 'Fashion-MNIST test images, small CNN trained 2 epochs on 3,000 images'
    except Exception as e:  # no data here: untrained model on random images (speed only; JSMA success is then moot)
        seed_everything(seed)
        model = SmallCNN(10, 1)
        x, y, source = torch.rand(n, 1, 28, 28), torch.randint(0, 10, (n,)), f'random images, untrained model ({e})'
    return model.to(device).eval(), x.to(device), y.to(device), source


def bench_gradient_attacks(model, x, y, device, steps: int, repeats: int, eps: float = 0.3) -> list[dict]:
    import torchattacks
    alpha = 2.5 * eps / steps

    def floor(n_steps):
        def run():
            with evaluating(model):
                for _ in range(n_steps):
                    xi = x.detach().requires_grad_(True)
                    torch.autograd.grad(F.cross_entropy(model(xi), y), xi)
        return run

    rows = []
    for name, n_steps, ours, peer in [
        ('FGSM', 1, lambda ev: fgsm(model, x, y, eps=eps, evaluate=ev), torchattacks.FGSM(model, eps=eps)),
        ('BIM', steps, lambda ev: bim(model, x, y, eps=eps, alpha=alpha, steps=steps, evaluate=ev),
         torchattacks.BIM(model, eps=eps, alpha=alpha, steps=steps)),
        ('PGD', steps, lambda ev: pgd(model, x, y, eps=eps, alpha=alpha, steps=steps, random_start=False, evaluate=ev),
         torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=False))]:
        t = side_by_side({'ours': lambda: ours(False), 'ours_with_record': lambda: ours(True),
                          'torchattacks': lambda: peer(x, y), 'floor': floor(n_steps)}, device, repeats)
        rows.append({'attack': name, 'steps': n_steps, 'batch': len(x), **{f'{k}_s': v for k, v in t.items()},
                     'ratio_vs_torchattacks': t['ours'] / t['torchattacks'],
                     'ratio_vs_floor': t['ours'] / t['floor'],
                     'ratio_with_record_vs_floor': t['ours_with_record'] / t['floor']})
    return rows


def bench_jsma(model, x, device, repeats: int, theta: float = 1.0, gamma: float = 0.1, seed: int = 0) -> dict:
    from art.attacks.evasion import SaliencyMapMethod
    from art.estimators.classification import PyTorchClassifier
    with torch.no_grad(): pred = model(x).argmax(1)
    g = torch.Generator().manual_seed(seed)
    target = (pred.cpu() + torch.randint(1, 10, pred.shape, generator=g)) % 10   # a random other class, as ART does
    target = target.to(device)
    clf = PyTorchClassifier(model, loss=nn.CrossEntropyLoss(), input_shape=tuple(x.shape[1:]), nb_classes=10,
                            clip_values=(0., 1.), device_type='gpu' if device.type == 'cuda' else 'cpu')
    art = SaliencyMapMethod(clf, theta=theta, gamma=gamma, batch_size=len(x), verbose=False)
    xn, yn = x.cpu().numpy(), F.one_hot(target, 10).cpu().numpy()
    out = {}
    t = side_by_side({'ours': lambda: out.__setitem__('ours', jsma(model, x, target=target, theta=theta, gamma=gamma)),
                      'art': lambda: out.__setitem__('art', art.generate(xn, y=yn))}, device, repeats)
    adv, res = out['ours']
    art_adv = torch.from_numpy(out['art']).to(device)
    with torch.no_grad(): art_success = (model(art_adv).argmax(1) == target).float()
    art_l0 = ((art_adv - x).flatten(1) != 0).sum(1).float()
    return {'images': len(x), 'theta': theta, 'gamma': gamma, 'ours_s': t['ours'], 'art_s': t['art'],
            'speedup_vs_art': t['art'] / t['ours'],
            'ours_success': res.success_rate, 'art_success': float(art_success.mean()),
            'ours_mean_l0': float(res.l0.float().mean()), 'art_mean_l0': float(art_l0.mean()),
            'ours_mean_steps': float(res.steps.float().mean())}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument('--device', default='cpu', help="'cpu' or 'cuda'")
    p.add_argument('--batch', type=int, default=128, help='images per batch for FGSM / BIM / PGD')
    p.add_argument('--steps', type=int, default=10, help='steps of BIM / PGD (the paper: 10)')
    p.add_argument('--repeats', type=int, default=5, help='timed rounds (medians are reported)')
    p.add_argument('--jsma-images', type=int, default=64)
    p.add_argument('--jsma-repeats', type=int, default=3)
    p.add_argument('--threads', type=int, default=None, help='torch CPU threads (default: torch decides)')
    p.add_argument('--out', default=str(Path(__file__).parent / 'results' / 'attacks.json'))
    a = p.parse_args(argv)
    device = torch.device(a.device)
    if a.threads: torch.set_num_threads(a.threads)
    model, x, y, source = data_and_model(device, max(a.batch, a.jsma_images))
    grad_rows = bench_gradient_attacks(model, x[:a.batch], y[:a.batch], device, a.steps, a.repeats)
    j = bench_jsma(model, x[:a.jsma_images], device, a.jsma_repeats)
    env = {'device': str(device), 'gpu': torch.cuda.get_device_name(device) if device.type == 'cuda' else None,
           'cpu': platform.processor() or platform.machine(), 'torch_threads': torch.get_num_threads(),
           'torch': torch.__version__, 'data': source, 'repeats': a.repeats}
    import torchattacks, art
    env.update(torchattacks=torchattacks.__version__, art=art.__version__)
    result = {'env': env, 'gradient_attacks': grad_rows, 'jsma': j}
    out = Path(a.out); out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1))
    print(f"device {env['device']} ({env['gpu'] or env['cpu']}, {env['torch_threads']} threads), {source}\n")
    print('| attack | steps | batch | ours (s) | ours + record (s) | torchattacks (s) | floor (s) | ours / torchattacks | ours / floor | ours + record / floor |')
    print('|---|---|---|---|---|---|---|---|---|---|')
    for r in grad_rows:
        print(f"| {r['attack']} | {r['steps']} | {r['batch']} | {r['ours_s']:.4f} | {r['ours_with_record_s']:.4f} | "
              f"{r['torchattacks_s']:.4f} | {r['floor_s']:.4f} | {r['ratio_vs_torchattacks']:.2f} | "
              f"{r['ratio_vs_floor']:.2f} | {r['ratio_with_record_vs_floor']:.2f} |")
    print('\n| JSMA (θ, γ) | images | ours (s) | ART (s) | speed-up | success ours / ART | mean L0 ours / ART |')
    print('|---|---|---|---|---|---|---|')
    print(f"| ({j['theta']}, {j['gamma']}) | {j['images']} | {j['ours_s']:.3f} | {j['art_s']:.3f} | "
          f"{j['speedup_vs_art']:.1f}× | {j['ours_success']:.2f} / {j['art_success']:.2f} | "
          f"{j['ours_mean_l0']:.1f} / {j['art_mean_l0']:.1f} |")
    print(f"\nwritten to {out}")


if __name__ == '__main__':
    main()
