"""Average the weights of propagation networks fine-tuned from one starting point (a uniform
"model soup", Wortsman et al. 2022): runs that continued the same network with other seeds or
data mixes sit in one basin, and their mean is often better than each of them, at no cost at
run time. The soup is written as a snapshot for `pick_snapshot`, which scores it as the trainer
validates and exports it when it is the best of the folder's snapshots:

    python -m scripts.train.soup weights/propagation_lite.pth runs/v5plain_weights/propagation_lite.pth \\
        ... --output runs/soup --iteration 1
    python -m scripts.train.pick_snapshot runs/soup --weights runs/soup_weights ...

Every file must be a bundled propagation network of the same architecture and processing size.
"""
import argparse
from pathlib import Path

import torch

from model.lite_networks import load_network
from scripts.train import common
from util.errors import UserError, run_cli


def soup(paths):
    """(network, averaged state dict) of the propagation networks in `paths` (at least one):
    floating tensors averaged in fp32; every other tensor (the processing size) must agree."""
    if not paths:
        raise UserError('no network to average')
    nets = [load_network('propagation', p) for p in paths]
    states = [n.state_dict() for n in nets]
    keys = set(states[0])
    for p, s in zip(paths[1:], states[1:]):
        if set(s) != keys:
            raise UserError(f'{p}: not the same network as {paths[0]} (other parameters)')
    out = {}
    for k, v in states[0].items():
        if v.is_floating_point():
            out[k] = torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype)
        else:
            for p, s in zip(paths[1:], states[1:]):
                if not torch.equal(s[k], v):
                    raise UserError(f'{p}: {k} differs from {paths[0]} (another processing size?)')
            out[k] = v
    net = nets[0]
    net.load_state_dict(out)
    return net, out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('networks', nargs='+', help='propagation_lite.pth files to average')
    ap.add_argument('--output', required=True, help='snapshot folder (snapshots.json is added to)')
    ap.add_argument('--iteration', type=int, required=True,
                    help="the snapshot's number in that folder (names its file)")
    args = ap.parse_args(argv)
    missing = [p for p in args.networks if not Path(p).is_file()]
    if missing:
        raise UserError(f'{missing[0]}: no such file')
    net, _ = soup(args.networks)
    common.Snapshots(args.output, 'propagation').write(net, args.iteration,
                                                       soup_of=[str(p) for p in args.networks])
    return 0


if __name__ == '__main__':
    run_cli(main)
