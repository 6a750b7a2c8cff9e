"""An Expected-CE sweep over a DataLoader, sharded when run under torchrun (used by test_interventions.py).

    python tests/dist_sweep.py OUT.json [BATCH]                                   # one process
    torchrun --standalone --nproc_per_node=2 tests/dist_sweep.py OUT.json [BATCH] # two processes, gloo on CPU

BATCH 0 (default) streams a DataLoader of 16-image batches; any other number passes the images as one
ImageSet with that `batch_size`, so the same sweep runs at different batch sizes and shardings.
"""
import json, os, sys
import torch
import torch.distributed as dist
from torch.utils.data import DataLoader
from causal_nb.core import Node, seed_everything
from causal_nb.data import causal_shapes
from causal_nb.models import SmallCNN
from causal_nb.interventions import NetworkSCM, expected_ce_table, idle, PixelMask, Adversarial

def main(out, batch=0):
    if 'RANK' in os.environ: dist.init_process_group('gloo')
    torch.set_num_threads(1)
    seed_everything(0)
    model = SmallCNN(3).eval()
    data = causal_shapes(80, size=28, seed=3)
    loader = DataLoader(data, batch_size=16)          # 5 batches: uneven shards on 2 processes
    nodes = [Node('conv1', 2), Node('conv2', 5), Node('fc1', 7)]
    contexts = {'Z0': idle, 'PWM': PixelMask(.1, seed=1), 'FGSM': Adversarial('fgsm', eps=.1),
                'PGD': Adversarial('pgd', eps=.1, steps=3, seed=2)}
    table = expected_ce_table(NetworkSCM(model), nodes, contexts, loader if batch == 0 else data, ci='normal',
                              batch_size=batch or 256, progress_bar=False)
    if not dist.is_initialized() or dist.get_rank() == 0:
        json.dump({'table': table.to_dict(), 'n': table.attrs['n'],
                   'per_image': {c: v.tolist() for c, v in table.attrs['per_image'].items()},
                   'excluded': table.attrs['excluded'],
                   'world': dist.get_world_size() if dist.is_initialized() else 1}, open(out, 'w'))
    if dist.is_initialized(): dist.destroy_process_group()

if __name__ == '__main__': main(sys.argv[1], int(sys.argv[2]) if len(sys.argv) > 2 else 0)
