"""The paper's ChestX-ray14 case end to end on the generated fixture (real formats, planted symptoms in the boxes).

A torchvision DenseNet121 with random weights at 64×64 (32×32 through the command) stands in for CheXNet: the
numbers mean nothing, the test checks that every path runs, is judged, and fails clearly on bad input.
"""
import json, shutil, warnings

import numpy as np
import pandas as pd
import pytest
import torch

from causal_nb.data import (ChestXray14, CHESTXRAY14_LABELS, box_masks, chestxray_boxes, make_chestxray_fixture)
from causal_nb.models import SmallCNN, densenet121_chexnet, label_auroc, multilabel_accuracy, train
from causal_nb.reproduce import box_localisation, box_pairs, chestxray_study, plot_fig3, relevance_mass, reproduce
from causal_nb.core import safe_load
from causal_nb.cli import main


@pytest.fixture(scope='module')
def release(tmp_path_factory):
    return make_chestxray_fixture(tmp_path_factory.mktemp('cxr') / 'release', n=48, size=64, seed=1)


@pytest.fixture(scope='module')
def chexnet_file(tmp_path_factory):
    path = tmp_path_factory.mktemp('w') / 'chexnet.pth'
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); torch.save(densenet121_chexnet(normalize=False).state_dict(), path)
    return path


def test_fixture_is_in_the_release_format(release):
    entry = pd.read_csv(release / 'Data_Entry_2017.csv')
    assert list(entry.columns[:2]) == ['Image Index', 'Finding Labels']
    test = set((release / 'test_list.txt').read_text().split()); train_ = set((release / 'train_val_list.txt').read_text().split())
    assert not test & train_ and test | train_ == set(entry['Image Index'])
    raw = pd.read_csv(release / 'BBox_List_2017.csv')
    assert list(raw.columns[:6]) == ['Image Index', 'Finding Label', 'Bbox [x', 'y', 'w', 'h]']
    assert set(raw['Image Index']) <= test                                   # as in the release: boxes only on test images
    assert len(list(release.glob('images_*/images/*.png'))) == 48


def test_box_masks_cover_the_symptom_and_follow_the_resize(release):
    data = ChestXray14(release, split='test', image_size=64, channels=1)
    idx, masks = box_masks(data)
    x = torch.stack([data[int(i)][0][0] for i in idx])
    assert (x[:, None].expand_as(masks)[masks] > .9).all()                  # every boxed pixel is the planted symptom
    assert (masks.flatten(2).any(2) <= (data.targets[idx] > 0)).all()        # a box only for a finding the image has
    _, small = box_masks(ChestXray14(release, split='test', image_size=32, channels=1))
    assert abs(float(small.sum() / masks.sum()) - .25) < .05


def test_bad_input_names_the_problem(release, chexnet_file, tmp_path):
    nocsv = tmp_path / 'nocsv'; shutil.copytree(release, nocsv); (nocsv / 'Data_Entry_2017.csv').unlink()
    with pytest.raises(FileNotFoundError, match='Data_Entry_2017.csv'): ChestXray14(nocsv)
    with pytest.raises(FileNotFoundError, match='chestxray: label file .*Data_Entry_2017.csv not found'):
        reproduce(('table1',), quick=True, chestxray=nocsv, chexnet=chexnet_file, image_size=32, progress_bar=False)
    nobox = tmp_path / 'nobox'; shutil.copytree(release, nobox); (nobox / 'BBox_List_2017.csv').unlink()
    with pytest.raises(FileNotFoundError, match='has no box file BBox_List_2017.csv'): chestxray_boxes(nobox)
    with pytest.raises(FileNotFoundError, match='chestxray folder .* has no BBox_List_2017.csv'):
        reproduce(('table1',), quick=True, chestxray=nobox, chexnet=chexnet_file, image_size=32, progress_bar=False)
    boxes = chestxray_boxes(release); boxes.loc[0, 'image'] = 'not_an_xray.png'
    with pytest.raises(ValueError, match="boxes name images that are not in the release's label file"):
        box_masks(ChestXray14(release, split='test', image_size=32), boxes)
    import torchvision
    other = tmp_path / 'imagenet.pth'; torch.save(torchvision.models.densenet121(weights=None).state_dict(), other)
    with pytest.raises(ValueError, match='chexnet: weights file .* has a head for 1000 labels, but n_classes is 14'):
        reproduce(('table1',), quick=True, chestxray=release, chexnet=other, image_size=32, progress_bar=False)
    import contextlib, io, re
    err = io.StringIO()
    with contextlib.redirect_stderr(err):      # the command line: one line naming the flag's problem, exit status 2
        rc = main(['reproduce', '--tables', 'table1', '--quick', '--chestxray', str(release), '--chexnet', str(other),
                   '--image-size', '32'])
    assert rc == 2 and re.search('causal-nb reproduce: error: .*chexnet: weights file .* has a head for 1000 labels',
                                 err.getvalue()), err.getvalue()


def test_metrics_match_sklearn_and_state_the_baseline():
    from sklearn.metrics import roc_auc_score
    g = torch.Generator().manual_seed(3)
    y = (torch.rand(300, 14, generator=g) < .1).float(); p = (y * .3 + torch.rand(300, 14, generator=g)).clamp(0, 1)
    tab = label_auroc(p, y, CHESTXRAY14_LABELS, n_boot=100)
    assert np.allclose(tab['AUROC'][:14], [roc_auc_score(y[:, j], p[:, j]) for j in range(14)])
    assert (tab['lo'] <= tab['AUROC']).all() and (tab['AUROC'] <= tab['hi']).all()
    acc = multilabel_accuracy(p, y)
    assert acc['all-negative label-wise accuracy'] == pytest.approx(1 - float(y.mean()))


def test_interrupted_training_resumes_to_the_same_weights(release, tmp_path):
    data = ChestXray14(release, split='train', image_size=32, channels=1)
    def net():
        torch.manual_seed(0); return SmallCNN(n_classes=14, in_channels=1, in_size=32)
    whole = train(net(), data, epochs=2, batch_size=8, checkpoint=tmp_path / 'a.pt', checkpoint_every=3)

    class Stops(torch.utils.data.Dataset):
        head, targets = 'sigmoid', data.targets
        def __init__(self): self.reads, self.after = 0, 4 * 8 + 1
        def __len__(self): return len(data)
        def __getitem__(self, i):
            self.reads += 1
            if self.after and self.reads > self.after: raise KeyboardInterrupt
            return data[i]
    flaky = Stops()
    with pytest.raises(KeyboardInterrupt): train(net(), flaky, epochs=2, batch_size=8, checkpoint=tmp_path / 'b.pt', checkpoint_every=3)
    assert safe_load(tmp_path / 'b.pt')['step'] == 4
    flaky.after = 0
    resumed = train(net(), flaky, epochs=2, batch_size=8, checkpoint=tmp_path / 'b.pt', checkpoint_every=3)
    for k, v in whole.model.state_dict().items(): assert torch.equal(v, resumed.model.state_dict()[k]), k
    assert np.allclose(whole.history['train_loss'], resumed.history['train_loss'])
    # a memory budget of 4 images per pass gives the same gradients as whole batches of 8 (no BatchNorm in SmallCNN)
    capped = train(net(), data, epochs=1, batch_size=8, max_batch=4)
    full = train(net(), data, epochs=1, batch_size=8)
    for k, v in full.model.state_dict().items(): assert torch.allclose(v, capped.model.state_dict()[k], atol=1e-5), k


def test_study_end_to_end(release, chexnet_file):
    with warnings.catch_warnings():
        warnings.simplefilter('ignore'); model = densenet121_chexnet(chexnet_file)
    before, mode = {k: v.clone() for k, v in model.state_dict().items()}, model.training
    study = chestxray_study(model, release, image_size=64, window=16, stride=16, n_boot=100, n_multitask=8)
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items()) and model.training == mode
    assert study.auroc.index[-1] == 'mean' and len(study.auroc) == 15
    maps = set(study.localisation.index.get_level_values('map'))
    assert maps == {'CEM', 'CAM', 'Grad-CAM'}                                # CAM is not silently lost on DenseNet
    assert study.localisation['pairs'].iloc[0] == len(chestxray_boxes(release))
    assert set(study.verdicts['verdict']) <= {'holds', 'does not hold', 'undecided'} and len(study.verdicts) == 4
    assert list(study.symptom_masking.index) == ['symptom box', 'same box elsewhere', 'difference']
    json.dumps(study.numbers(), default=str)
    fig = plot_fig3(study)
    assert len(fig.axes) == 4 * 4 and sum(len(ax.collections) for ax in fig.axes) >= 8   # a box outline in every panel
    x, lab, masks, _ = box_pairs(ChestXray14(release, split='test', image_size=64))
    assert box_localisation({'image': x.mean(1)}, masks).loc['image', 'AUROC'] > .9
    assert relevance_mass(masks.float(), masks).eq(1).all()


def test_command_writes_tables_and_fig3(release, chexnet_file, tmp_path, capsys):
    out = tmp_path / 'out'
    rc = main(['reproduce', '--tables', 'table1,table2', '--quick', '--chestxray', str(release), '--chexnet', str(chexnet_file),
               '--image-size', '32', '--out', str(out)])
    assert rc == 0
    printed = capsys.readouterr().out
    assert 'mean AUROC over the 14 labels' in printed and 'Summary: Table 1: ' in printed
    assert {'fig3.png', 'table1.csv', 'table2.csv', 'chestxray_auroc.csv', 'chestxray_localisation.csv'} <= {p.name for p in out.iterdir()}
    rec = json.loads((out / 'reproduce.json').read_text())
    assert rec['table1']['numbers']['chestxray']['verdicts'][0]['verdict'] in ('holds', 'does not hold', 'undecided')
