"""Chapter 11 beyond its notebook: concept nodes fitted inside `reproduce`, the two questions per table through the
`causal-nb reproduce` command, and the claims ledger's report section against the committed results."""
import importlib.util, json, os, re, subprocess, sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from causal_nb.autoencoder import autoencoder_layers
from causal_nb.cli import report_sections
from causal_nb.core import ReportContext
from causal_nb.models import trained_model
from causal_nb.reproduce import (CLAIMS_FILES, claims_report_section, comparability, find_claims, paper_table, reproduce,
                                 reproduce_table)

ROOT = Path(__file__).resolve().parents[1]
CLI = str(Path(sys.executable).with_name('causal-nb'))


@pytest.fixture(scope='module')
def quick_model():
    return trained_model('small-cnn', 'fashion-mnist', quick=True, progress_bar=False).model.eval()


def test_concept_nodes_are_fitted_and_the_users_model_is_left_alone(quick_model):
    before = {k: v.clone() for k, v in quick_model.state_dict().items()}
    r = reproduce(('table3',), quick=True, n_images=64, fashion_model=quick_model, nodes='concepts', n_concepts=8,
                  progress_bar=False)[0]
    assert r.numbers['nodes'] == ['conv2_ae.concepts[3]', 'conv2_ae.concepts[7]'] and r.numbers['node_mode'] == 'concepts'
    assert 0 <= r.numbers['autoencoder_agreement'] <= 1 and 'concept autoencoder after level 2' in r.setting
    assert r.comparison.loc['nodes', 'same'] == 'partly' and r.comparable == 'partly'
    assert np.isfinite(r.ours.to_numpy()).all() and r.verdict in ('holds', 'does not hold')
    # the user's network: no autoencoder inserted, same weights, still trainable
    assert not autoencoder_layers(quick_model) and all(p.requires_grad for p in quick_model.parameters())
    assert all(torch.equal(v, before[k]) for k, v in quick_model.state_dict().items())
    # channels on the same images differ from concepts: the mode changes what is intervened on
    c = reproduce(('table3',), quick=True, n_images=64, fashion_model=quick_model, progress_bar=False)[0]
    assert c.numbers['nodes'] == ['conv2[3]', 'conv2[7]'] and not np.allclose(c.ours.to_numpy(), r.ours.to_numpy())


def test_comparability_of_table2_and_a_foreign_model():
    paper = paper_table('table2')
    ours = pd.DataFrame({'Expected-CE': [-1e-5, 2e-5, 3e-5, -2e-6]}, index=paper.index)
    ours.attrs.update(quantity='belief-weighted Effect (sigmoid)', n=32, n_per_context={'FGSM': 30, 'BIM': 31, 'JSMA': 12, 'PGD': 29})
    ans, comp = comparability('table2', ours, 'CheXNet', 'ChestX-ray14 test', True, True, head='sigmoid')
    assert ans == 'partly'
    assert comp.loc['sign', 'same'] == 'yes' and '4 of 4 cells share' in comp.loc['sign', 'ours']
    assert comp.loc['contexts', 'same'] == 'partly' and 'JSMA budget not stated' in comp.loc['contexts', 'paper']
    assert comp.loc['quantity', 'same'] == 'partly' and 'JSMA 12' in comp.loc['sample', 'ours']
    assert comparability('table2', ours, 'ResNet', 'ChestX-ray14 test', True, False, head='sigmoid')[0] == 'no'
    with pytest.raises(ValueError, match='nodes must be one of'):
        comparability('table2', ours, 'CheXNet', 'ChestX-ray14', True, True, nodes='pixels')


def test_another_architecture_is_not_comparable_but_still_judged(quick_model):
    from causal_nb.data import fashion_mnist
    r = reproduce_table('table3', quick_model, fashion_mnist(train=False), n_images=64, progress_bar=False,
                        same_architecture=False, same_data=False)
    assert r.comparable == 'no' and r.comparison.loc[['model', 'data'], 'same'].tolist() == ['no', 'no']
    assert 'Fashion-MNIST' in r.comparison.loc['data', 'ours'] and '64 of 10000 images' in r.comparison.loc['data', 'ours']
    assert r.verdict in ('holds', 'does not hold')         # the claim is still judged on ours


def test_cli_reproduce_prints_both_questions(tmp_path):
    r = subprocess.run([CLI, 'reproduce', '--tables', 'table3,table4', '--quick', '--limit', '100', '--out', str(tmp_path)],
                       capture_output=True, text=True, timeout=900,
                       env={**os.environ, 'CAUSAL_NB_PROGRESS': '0', 'OMP_NUM_THREADS': '1'})
    assert r.returncode == 0, r.stderr[-3000:]
    comp = re.findall(r'^comparable: (YES|PARTLY|NO) — are these the same numbers\? .+', r.stdout, flags=re.M)
    verd = re.findall(r'^verdict: (HOLDS|DOES NOT HOLD|NOT COMPARABLE) — does the claim hold on ours\? .+', r.stdout, flags=re.M)
    assert comp == ['PARTLY', 'NO'] and verd[1] == 'NOT COMPARABLE' and verd[0] in ('HOLDS', 'DOES NOT HOLD'), r.stdout
    assert r.stdout.index('comparable: PARTLY') < r.stdout.index('verdict: ' + verd[0])
    for aspect in ('quantity', 'data', 'model', 'nodes', 'sample', 'contexts', 'sign'):
        assert re.search(rf'^  - {aspect} \[(yes|partly|no|not stated)\] paper: .+ \| ours: .+', r.stdout, flags=re.M), aspect
    j = json.loads((tmp_path / 'reproduce.json').read_text())
    assert j['table3']['numbers']['comparable'] == 'partly' and j['table4']['numbers']['comparable'] == 'no'
    assert j['table3']['numbers']['comparison']['data']['same'] == 'yes'


def _bench_claims():
    sys.path.insert(0, str(ROOT / 'bench'))
    try:
        spec = importlib.util.spec_from_file_location('bench_claims_for_test', ROOT / 'bench' / 'bench_claims.py')
        mod = importlib.util.module_from_spec(spec); spec.loader.exec_module(mod)
        return mod
    finally: sys.path.remove(str(ROOT / 'bench'))


def test_claims_section_renders_the_committed_ledger():
    assert 'claims' in [n for n, _ in report_sections()]
    path = find_claims(ROOT)
    assert path is not None and path.name in CLAIMS_FILES
    recorded = json.loads(path.read_text())
    sec = claims_report_section(ReportContext(train=None, test=None), results=path)
    table = sec.tables['claims']
    assert len(table) == len(recorded['claims']) and sec.numbers['setting'] == recorded['setting']
    bc = _bench_claims()
    # the verdicts shown are the ones the ledger's own rule computes from the recorded figures and CIs
    want = [bc.verdict(c['figure'], c['low'], c['high'], c['side'], c['threshold'], c['margin']) for c in recorded['claims']]
    assert list(table['verdict']) == want
    assert np.allclose(table['figure'].to_numpy(float), [c['figure'] for c in recorded['claims']], equal_nan=True)
    html = sec.html()
    assert f"the {recorded['setting']} setting" in html and path.name in html


def test_ledger_expected_ce_claims_are_measured_when_attacks_leave_images_out(quick_model):
    "Attack columns hold NaN for images the attack did not attack: the ledger pairs Z0 on the same images instead of failing."
    from causal_nb.data import fashion_mnist
    bc = _bench_claims()
    s = dict(bc.SETTINGS['quick'], ece_images=64, attack_images=32, n_boot=200)
    got = {c['key']: c for c in bc.expected_ce_claims(quick_model, fashion_mnist(train=False), s, 0)}
    assert set(got) == {'ece_falls_pwm', 'ece_falls_fgsm', 'fgsm_most_negative_2_3', 'fgsm_most_negative_2_7'}
    for c in got.values():
        assert np.isfinite([c['figure'], c['low'], c['high']]).all() and c['verdict'] != 'not measured', c
        assert c['low'] <= c['high']
    fg = got['ece_falls_fgsm']['details']
    assert fg['left_out'] > 0 and fg['n'] + fg['left_out'] == 64      # the quick model misclassifies some images
    assert all(0 < n <= 32 for n in got['fgsm_most_negative_2_3']['details']['n_attacked'].values())
