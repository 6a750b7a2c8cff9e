"""What the `bench/bench_<name>.py` scripts share: where results go, the `--device` option, timing on any device,
and the small markdown pieces their `markdown(results)` functions are built from.

Standard library only, so that importing a bench script (render.py does, to call its `markdown`) stays instant and
has no side effects. The scripts import it as `_common` (they run with `bench/` on `sys.path`; render.py puts it there).
"""
from __future__ import annotations
import argparse, json, math, os, platform, textwrap, time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
RESULTS = BENCH / 'results'


# ---------------------------------------------------------------- results files and the command line

def result_file(name: str, device: str = 'cpu', results: Path = RESULTS) -> Path:
    "`results/<name>.json` for a CPU run, `results/<name>-<device>.json` otherwise (e.g. `attacks-cuda.json`)."
    return Path(results) / (f'{name}.json' if device == 'cpu' else f'{name}-{device}.json')


def read_result(path: Path):
    "The parsed JSON at `path`, or None when the file does not exist."
    path = Path(path)
    return json.loads(path.read_text(encoding='utf-8')) if path.exists() else None


def recorded_runs(name: str, devices, results: Path = RESULTS) -> list:
    "`(file name, parsed result)` for each device of `devices` that has a results file, in that order."
    return [(f.name, r) for f in (result_file(name, d, results) for d in devices) if (r := read_result(f)) is not None]


def write_result(path: Path, result) -> Path:
    "Write `result` as indented JSON (the committed format) and return the path."
    path = Path(path); path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=1, ensure_ascii=True) + '\n', encoding='utf-8')
    return path


def add_device_arg(p: argparse.ArgumentParser, devices: tuple[str, ...], default: str | None = 'cpu') -> None:
    "`--device`, limited to `devices`; a device this script cannot use is refused by `check_device` with a clear message."
    p.add_argument('--device', default=default,
                   help=f"where to measure: {' or '.join(devices)}" + ('' if default else ' (default: cuda when present)'))


def check_device(p: argparse.ArgumentParser, device: str | None, devices: tuple[str, ...], why: str = '') -> str:
    "The device name to use; `p.error` (exit 2 with the usage) when this script cannot measure on it or it is absent."
    import torch
    if device is None: device = 'cuda' if torch.cuda.is_available() else 'cpu'
    kind = device.split(':')[0]
    if kind not in devices:
        p.error(f"--device {device!r}: this benchmark measures on {' or '.join(devices)} only{': ' + why if why else ''}")
    if kind == 'cuda' and not torch.cuda.is_available():
        p.error(f"--device {device!r}: no CUDA device is available on this machine")
    return device


def environment(device: str = 'cpu') -> dict:
    "Versions, machine and load recorded with every result (load: the 1-minute load average when the run started)."
    import torch
    dev = torch.device(device)
    return {'device': dev.type, 'gpu': torch.cuda.get_device_name(dev) if dev.type == 'cuda' else None,
            'cpu': platform.processor() or platform.machine(), 'cpus': os.cpu_count(),
            'torch_threads': torch.get_num_threads(), 'torch': torch.__version__, 'python': platform.python_version(),
            'load_average': round(os.getloadavg()[0], 2)}


def sync(device) -> None:
    "Wait for queued GPU work, so that a wall-clock time covers it."
    import torch
    if torch.device(device).type == 'cuda': torch.cuda.synchronize(device)


def timed(fn, device='cpu') -> float:
    "Seconds one call of `fn` takes on `device` (GPU work included)."
    sync(device); t = time.perf_counter(); fn(); sync(device)
    return time.perf_counter() - t


# ---------------------------------------------------------------- markdown pieces

def table(header: list[str], rows: list[list]) -> str:
    "A markdown table (cells are str()-ed; `|` inside a cell must be escaped by the caller)."
    lines = ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
    lines += ['| ' + ' | '.join(str(c) for c in r) + ' |' for r in rows]
    return '\n'.join(lines)


def num(v: float | None, unit: str = '') -> str:
    "A ratio or time with three significant figures or so: 0.79, 5.86, 44.3, 367; '—' when unknown."
    if v is None or (isinstance(v, float) and math.isnan(v)): return '—'
    a = abs(v)
    s = f'{v:.0f}' if a >= 100 else f'{v:.1f}' if a >= 10 else f'{v:.2f}' if a >= 0.01 or a == 0 else f'{v:.1e}'
    return s + unit


def times(v: float | None) -> str:
    "A speed-up or ratio as `1.78×`."
    return num(v, '×')


def seconds(v: float | None) -> str:
    "A duration with a unit that keeps it readable: 150 µs, 6.1 ms, 1.59 s, 367 s."
    if v is None: return '—'
    if v < 1e-3: return f'{v * 1e6:.0f} µs'
    if v < 1: return num(v * 1e3, ' ms')
    return num(v, ' s')


def pct(v: float | None, digits: int = 2) -> str:
    "A 0–1 fraction as a percentage: 0.9156 → 91.56%."
    return '—' if v is None else f'{100 * v:.{digits}f}%'


def mib(n_bytes: float) -> str:
    return f'{n_bytes / 2**20:.0f} MiB'


def gib(n_bytes: float) -> str:
    "2 GiB for a round budget, 1.31 GiB for a measurement."
    return f'{n_bytes // 2**30:.0f} GiB' if n_bytes % 2**30 == 0 else f'{n_bytes / 2**30:.2f} GiB'


def mb(n_bytes: float) -> str:
    "Decimal megabytes / gigabytes, as the earlier hand-written figures were quoted (680 MB, 1.71 GB)."
    return f'{n_bytes / 1e9:.2f} GB' if n_bytes >= 1e9 else f'{n_bytes / 1e6:.0f} MB'


def verdict(ok: bool | None) -> str:
    "**met** / **not met** (None: **not known**), always computed from the numbers."
    return '**not known**' if ok is None else '**met**' if ok else '**not met**'


def span(values: list[float], fmt=times) -> str:
    "`fmt(v)` for one value, `fmt(lo)–fmt(hi)` for several."
    values = sorted(values)
    return fmt(values[0]) if len(values) == 1 or fmt(values[0]) == fmt(values[-1]) else f'{fmt(values[0])}–{fmt(values[-1])}'


def plural(n: int, word: str, many: str | None = None) -> str:
    "1 epoch, 10 epochs, 1,000 images; `many` for an irregular plural (query, queries)."
    return f"{n:,} {word if n == 1 else many or word + 's'}"


def listing(items: list[str]) -> str:
    "a, b and c"
    items = list(items)
    return ' and '.join(items) if len(items) <= 2 else ', '.join(items[:-1]) + ' and ' + items[-1]


def machine(env: dict) -> str:
    "CPU, 1 torch thread / NVIDIA H100 80GB HBM3 — with the torch version and load when the run recorded them."
    if env.get('device') == 'cuda' or env.get('gpu'): where = env.get('gpu') or 'GPU'
    else:
        threads = env.get('torch_threads')
        where = 'CPU' + (f", {threads} torch thread{'s' if threads != 1 else ''}" if threads else '')
        if env.get('cpus'): where += f" of {env['cpus']} cores"
    extra = [f"torch {env['torch']}"] if env.get('torch') else []
    if env.get('load_average') is not None: extra.append(f"load average {env['load_average']:.1f} at the start")
    return where + (f" ({', '.join(extra)})" if extra else '')


def notes(result: dict | list | None, heading: str = 'About this run') -> str:
    "A result's `notes` (provenance, load, figures copied from earlier runs) as a short list; '' when it has none."
    ns = result.get('notes', []) if isinstance(result, dict) else []
    return '' if not ns else f'{heading}:\n' + '\n'.join(f'- {n}' for n in ns)


def not_measured(command: str, file: str) -> str:
    "The paragraph a section shows while its results file is missing."
    return f'Not measured yet: run `{command}` (it writes `bench/results/{file}`), then `python bench/render.py`.'


WIDTH = 116   # BENCHMARKS.md is read as plain text too: prose is wrapped, tables are not


def wrap(paragraph: str) -> str:
    "Wrap each line of a paragraph (list items with a hanging indent); headings and tables are left as they are."
    out = []
    for line in paragraph.split('\n'):
        if line.startswith(('|', '#')) or len(line) <= WIDTH: out.append(line); continue
        indent = '  ' if line.startswith('- ') else ''
        out.append(textwrap.fill(line, WIDTH, subsequent_indent=indent, break_long_words=False, break_on_hyphens=False))
    return '\n'.join(out)


def section(*parts: str) -> str:
    "Join the non-empty paragraphs with blank lines, prose wrapped."
    return '\n\n'.join(wrap(p.strip('\n')) for p in parts if p and p.strip()) + '\n'
