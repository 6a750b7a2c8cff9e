"""Every "Try it" exercise: its solution passes its check, its known mistakes are rejected with their own message,
any other answer is checked without raising, and the chapters' Try-it cells are the registry's."""
import json
from pathlib import Path

import pytest
import torch

from causal_nb.exercises import CheckResult, check, exercise, exercise_cells, exercises, solve

ROOT = Path(__file__).resolve().parent.parent
KEYS = [e.key for e in exercises()]


# the teaching chapters 00-11 and the inserted 06b; 12-14 are the exercise registry, the classroom kit and the command
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
