"The claims ledger (bench/bench_claims.py): its verdicts follow the numbers, and a claim that fails is reported as failing."
import json, sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / 'bench'))
import render  # noqa: E402

claims = render.load(ROOT / 'bench' / 'bench_claims.py')


@pytest.mark.parametrize('figure,low,high,side,kw,want', [
    (-1., -2., -.5, '<', {}, 'holds'),                 # the whole CI below 0
    (-1., -2., .5, '<', {}, 'not shown'),              # below 0, but the CI reaches it
    (.3, -.1, .7, '<', {}, 'does not hold'),           # the figure itself is on the wrong side
    (0., -.1, .1, '<', {}, 'does not hold'),           # a tie is not "less"
    (.8, .7, .9, '>', {'threshold': .5}, 'holds'),     # AUROC above chance
    (.55, .45, .65, '>', {'threshold': .5}, 'not shown'),
    (.4, .3, .5, '>', {'threshold': .5}, 'does not hold'),
    (0., -.03, .02, '>=', {'margin': .05}, 'holds'),   # non-inferior within the margin
    (-.02, -.08, .03, '>=', {'margin': .05}, 'not shown'),
    (-.29, -.38, -.19, '>=', {'margin': .02}, 'does not hold'),   # clearly worse
    (-.01, -.02, -.005, '>=', {'margin': .05}, 'holds'),          # worse, but by less than the margin
    (float('nan'), 0., 1., '<', {}, 'not measured'),
])
def test_verdicts_on_constructed_inputs(figure, low, high, side, kw, want):
    assert claims.verdict(figure, low, high, side, **kw) == want


def test_bad_side_is_refused():
    with pytest.raises(ValueError, match="side must be '<', '>' or '>='"): claims.verdict(0., 0., 0., '!=')


def test_bootstrap_interval_covers_and_pairs():
    g = np.random.default_rng(0)
    a = g.normal(1., 1., 400); b = a + .1                       # b = a + 0.1 exactly: a paired difference has no spread
    f, lo, hi = claims.bootstrap(lambda i: b[i].mean() - a[i].mean(), 400, 200)
    assert f == pytest.approx(.1) and lo == pytest.approx(.1) and hi == pytest.approx(.1)
    f, lo, hi = claims.bootstrap(lambda i: a[i].mean(), 400, 500)
    assert lo < 1. < hi and lo < f < hi and hi - lo < .3


def test_a_failing_claim_is_rendered_as_failing(tmp_path):
    res = {'setting': 'quick', 'env': {'device': 'cpu', 'torch_threads': 1}, 'seconds': 1.,
           'claims': [claims.claim('a', '000', 'A falls', 'change of A', -.2, -.3, -.1, '<'),
                      claims.claim('b', '000', 'B falls', 'change of B', .2, .1, .3, '<'),
                      claims.claim('c', '004', 'C beats D', 'C − D', .01, -.02, .04, '>')]}
    assert [c['verdict'] for c in res['claims']] == ['holds', 'does not hold', 'not shown']
    (tmp_path / 'claims-quick.json').write_text(json.dumps(res))
    text = claims.markdown(tmp_path)
    rows = {l.split(' | ')[0].lstrip('| '): l for l in text.splitlines() if l.startswith('| ') and not l.startswith('| claim')}
    assert rows['A falls'].endswith('**holds** |') and rows['B falls'].endswith('**does not hold** |')
    assert rows['C beats D'].endswith('**not shown** |')
    assert '**quick setting**' in text and 'holds 1, does not hold 1, not shown 1' in text
    # the verdict is recomputed from the numbers, not copied from the file
    res['claims'][0]['verdict'] = 'holds'; res['claims'][1]['verdict'] = 'holds'
    (tmp_path / 'claims-quick.json').write_text(json.dumps(res))
    text = claims.markdown(tmp_path)
    assert '| B falls |' in text and '**does not hold** |' in text and 'holds 1, does not hold 1, not shown 1' in text


def test_no_results_says_how_to_measure(tmp_path):
    assert 'Not measured yet: run `python bench/bench_claims.py --quick`' in claims.markdown(tmp_path)
