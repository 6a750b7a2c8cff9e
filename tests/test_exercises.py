"""Every "Try it" exercise: its solution passes its check, its known mistakes are rejected with their own message,
any other answer is checked without raising, and the chapters' Try-it cells are the registry's."""
import ast, json, os, re, subprocess, sys
from pathlib import Path

import pytest
import torch

from causal_nb.exercises import CheckResult, check, exercise, exercise_cells, exercises, solve

ROOT = Path(__file__).resolve().parent.parent
KEYS = [e.key for e in exercises()]


# the teaching chapters 00-11 and the inserted 06b, each defining its own exercises; 12 collects them, 13-14 are the
# classroom kit and the command
TAUGHT = [*range(12), '06b']


def test_every_teaching_chapter_has_two_or_three_exercises():
    counts = {c: len(exercises(c)) for c in TAUGHT}
    assert all(2 <= n <= 3 for n in counts.values()), counts


@pytest.mark.parametrize('key', KEYS)
def test_the_solution_passes_its_check(key):
    ns = {}
    exec(compile(exercise(key).solution_code, f'<solution of {key}>', 'exec'), ns)
    result = check(key, ns['answer'])
    assert isinstance(result, CheckResult) and result.passed, result


@pytest.mark.parametrize('key', KEYS)
def test_known_mistakes_are_rejected_with_their_message(key):
    ex = exercise(key)
    for m in ex.mistakes: m.value()                     # every mistake can be computed (an error here is a bug)
    wrong = ex.known_mistakes()
    assert wrong, f"{key}: none of its mistakes differs from the right answer here; give it one that does"
    for value, message in wrong:
        result = check(key, value)
        assert result.status == 'wrong', (key, message)
        first = next(msg for v, msg in wrong if ex.compare(value, v) is None)   # equal mistakes: the first one speaks
        assert result.message == first[:1].upper() + first[1:], (key, result.message)


@pytest.mark.parametrize('key', KEYS)
def test_any_answer_is_checked_without_raising(key):
    assert check(key, None).status == 'unanswered'
    for junk in ('hello', float('nan'), [1, 2, 3], torch.zeros(3), {'a': 1}, object(), True):
        result = check(key, junk)
        assert result.status == 'wrong' and len(result.message) > 10, (key, junk, result)


def test_a_wrong_number_gets_a_concrete_reason():
    e = solve('03.2')
    assert check('03.2', 10 * e).message == 'Much too large: yours is about 10 times the Effect.'
    assert check('03.2', -1.5 * e).message.startswith('Wrong sign: the Effect is positive')
    assert check('06.1', torch.zeros(100)).message.startswith('The Expected-CE is one number, you gave a tensor of shape (100,)')
    assert check('02.2', 'Dress shoes').message.startswith("'Dress shoes' is not a Fashion-MNIST class")
    assert check('07.1', (28, 3)).message == 'Rows and columns run from 0 to 27; you gave (28, 3).'


def test_checks_leave_the_setup_unchanged():
    "A reference is computed from fresh objects: what a student does to theirs cannot change it."
    from causal_nb.exercises import setup
    model, x = setup('06.1')
    with torch.no_grad():
        for p in model.parameters(): p.zero_()
    ns = {}
    exec(exercise('06.1').solution_code, ns)
    assert check('06.1', ns['answer']).passed


def _cells(path: Path) -> list[dict]:
    return [{'cell_type': c['cell_type'], 'source': ''.join(c['source'])} for c in json.loads(path.read_text())['cells']]


@pytest.mark.parametrize('chapter', sorted({e.chapter for e in exercises()}))
def test_the_chapter_ends_with_its_exercises(chapter):
    "The task a student reads in the chapter is the task the check knows (regenerate with exercise_cells on a change)."
    nb, = ROOT.glob(f'nbs/{chapter}_*.ipynb')
    want = exercise_cells(chapter)
    assert _cells(nb)[-len(want):] == want, f"{nb.name}: its Try-it cells differ from exercise_cells({chapter!r})"


def _chapter_modules() -> dict[str, str]:
    "Chapter id ('03', '06b') -> the module its notebook exports ('docalculus'), read from the notebooks."
    out = {}
    for nb in sorted(ROOT.glob('nbs/[0-9]*_*.ipynb')):
        for c in json.loads(nb.read_text())['cells']:
            m = re.search(r'#\|\s*default_exp\s+(\S+)', ''.join(c['source']))
            if m: out[nb.stem.split('_')[0]] = m.group(1); break
    return out


@pytest.mark.parametrize('key', KEYS)
def test_each_exercise_is_defined_in_its_chapters_module(key):
    "An exercise lives beside its chapter: its reference (and setup) come from the chapter's own module."
    ex, mods = exercise(key), _chapter_modules()
    want = f"causal_nb.{mods[ex.chapter]}"
    assert ex.reference.__module__ == want, (key, ex.reference.__module__, want)
    assert ex.setup is None or ex.setup.__module__ == want, (key, ex.setup.__module__, want)


def test_importing_exercises_registers_every_chapter():
    "The chapter modules register their own exercises; importing causal_nb.exercises imports them all, and only they do."
    code = ("import causal_nb.core as c; first = sorted(c.EXERCISES)\n"
            "import causal_nb.exercises as e\n"
            "print(json.dumps([first, sorted({x.chapter for x in e.exercises()}), sorted(e.CHAPTER_MODULES), len(e.EXERCISES)]))")
    out = subprocess.run([sys.executable, '-c', 'import json\n' + code], capture_output=True, text=True, check=True,
                         env={**os.environ, 'PYTHONPATH': str(ROOT)}).stdout
    first, chapters, listed, n = json.loads(out.strip().splitlines()[-1])
    assert first == ['00.1', '00.2']                       # core alone registers only chapter 00's
    assert chapters == listed and {f'{c:02d}' if isinstance(c, int) else c for c in TAUGHT} <= set(chapters)
    assert n == len(KEYS)


def test_registering_again():
    "The same exercise defined again (a notebook's cell, then its module) replaces it; a different one with a taken key is refused."
    from causal_nb.core import EXERCISES, Exercise, number, register
    ex = exercise('03.2')
    twin = Exercise(ex.key, ex.title, ex.task, ex.answer_spec, reference=ex.reference, compare=ex.compare,
                    hint_text=ex.hint_text, solution_code=ex.solution_code, mistakes=ex.mistakes)
    other = Exercise(ex.key, 'something else', 'What is 1 + 1?', 'a number', reference=lambda: 2, compare=number(),
                     hint_text='Count.', solution_code='answer = 2')
    try:
        assert register(twin) is twin and EXERCISES['03.2'] is twin
        with pytest.raises(ValueError, match='already registered'): register(other)
        assert EXERCISES['03.2'] is twin
        assert register(other, replace=True) is EXERCISES['03.2']
    finally:
        EXERCISES['03.2'] = ex


def test_no_chapter_imports_a_later_chapter():
    "A chapter's module imports only chapters at or before it, at the top or inside a function."
    mods = _chapter_modules()
    rank = {m: c for c, m in mods.items()}
    for chapter, mod in mods.items():
        tree = ast.parse((ROOT / 'causal_nb' / f'{mod}.py').read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom):
                ours = node.level == 1 or (node.module or '').split('.')[0] == 'causal_nb'
                if not ours: continue
                names = [a.name for a in node.names] if node.module in (None, 'causal_nb') else [node.module.split('.')[-1]]
            elif isinstance(node, ast.Import):
                names = [a.name.split('.')[1] for a in node.names if a.name.startswith('causal_nb.')]
            else: continue
            for n in names:
                if n in rank: assert rank[n] <= chapter, f"{mod} (chapter {chapter}) imports {n} (chapter {rank[n]}), line {node.lineno}"
