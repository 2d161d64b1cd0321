"""Download the official MiVOS-STCN weights into saves/ and check each one.

    python download_model.py                    # all four files
    python download_model.py --only stcn,s2m    # a subset (stcn, fusion, s2m, fbrs)
    python download_model.py --dir /data/saves  # another folder

Each file is downloaded to `<name>.part`, checked by a strict state-dict load into our network
and only then renamed to `<name>`. Files that are already present and valid are skipped.
"""
import argparse
import os
import sys
from dataclasses import dataclass

from util.errors import UserError, run_cli


@dataclass(frozen=True)
class WeightFile:
    name: str          # short name for --only
    filename: str      # saved as <dir>/<filename>
    url: str           # what gdown fetches (Drive 'uc?id=' URLs or a plain URL)
    size_mb: int       # rough size, for the message


_DRIVE = 'https://drive.google.com/uc?id='
FILES = {
    'stcn': WeightFile('stcn', 'stcn.pth', _DRIVE + '1mRrE0uCI2ktdWlUgapJI_KmgeIiF2eOm', 208),
    'fusion': WeightFile('fusion', 'fusion_stcn.pth', _DRIVE + '1MAbWHrOjlze9vPQdW-HxMnvjPpaZlfLv', 1),
    's2m': WeightFile('s2m', 's2m.pth', _DRIVE + '1HKwklVey3P2jmmdmrACFlkXtcvNxbKMM', 152),
    'fbrs': WeightFile('fbrs', 'fbrs.pth', 'https://github.com/saic-vul/fbrs_interactive_segmentation/'
                       'releases/download/v1.0/resnet50_dh128_lvis.pth', 120),
}
_ALIASES = {'fusion_stcn': 'fusion', 'propagation': 'stcn', 'click': 'fbrs', 'scribble': 's2m'}


def _official_module(name):
    """Our network for one of the strictly-loaded official files."""
    if name == 'stcn':
        from model.propagation_net import PropagationNetwork
        return PropagationNetwork()
    if name == 'fusion':
        from model.fusion_net import FusionNet
        return FusionNet()
    from model.s2m_net import S2MNet
    return S2MNet()


def _check_fbrs_keys(path, sd):
    """Structural check of an f-BRS ResNet-50 DeepLab (dh128) file when model/fbrs_net.py is absent."""
    from model.checkpoint import CheckpointError
    backbone = [k for k in sd if 'feature_extractor.backbone' in k and 'num_batches_tracked' not in k]
    proj = sd.get('feature_extractor.aspp.project.0.weight')
    if len(backbone) != 275 or proj is None or proj.shape[0] != 128 or 'rgb_conv.0.weight' not in sd:
        raise CheckpointError(f'{path} is not an f-BRS resnet50_dh128_lvis checkpoint '
                              f'({len(backbone)} backbone entries, expected 275)')


def verify(item, path):
    """Raise CheckpointError unless `path` holds the weights `item` describes."""
    from model.checkpoint import load_checked, read_state_dict
    if item.name == 'fbrs':
        try:
            from model.fbrs_net import load_fbrs
        except ImportError:
            _check_fbrs_keys(path, read_state_dict(path))
            return
        # Like the reference loader: every needed entry must fit; unused extra entries are fine.
        load_fbrs(path)
        return
    load_checked(_official_module(item.name), path, strict=True)


def _is_valid(item, path):
    from model.checkpoint import CheckpointError
    try:
        verify(item, path)
        return True
    except CheckpointError as e:
        print(f'{path}: {e}; downloading it again', file=sys.stderr)
        return False


def fetch(item, path, quiet=False, timeout=60):
    """Download item.url to path + '.part', verify it, then rename it to path."""
    import gdown
    from util.progress import CliProgress

    part = path + '.part'
    bar = CliProgress(f'{item.filename} (MiB)', quiet=quiet)

    def progress(done, total):
        mib = 1 << 20
        bar(done // mib, (total or done) // mib)

    try:
        gdown.download(item.url, output=part, quiet=True, progress=progress, timeout=timeout, resume=False)
    except KeyboardInterrupt:
        raise
    except Exception as e:    # offline, DNS failure, Drive quota page, HTTP error ...
        _remove(part)
        raise UserError(f'could not download {item.filename} from {item.url}: {_reason(e, item.url)}') from None
    finally:
        bar.close()
    if not os.path.isfile(part):
        raise UserError(f'could not download {item.filename} from {item.url}: nothing was saved')
    try:
        verify(item, part)
    except UserError as e:
        _remove(part)
        raise UserError(f'downloaded {item.filename} is not valid: {e}') from None
    os.replace(part, path)


def _reason(e, url):
    """Short cause of a failed download."""
    import requests
    from urllib.parse import urlparse
    if isinstance(e, (requests.ConnectionError, requests.Timeout)):
        return f'cannot reach {urlparse(url).hostname} (are you offline or behind a proxy?)'
    reason = (str(e).strip().splitlines() or [type(e).__name__])[0]
    return reason[:200]


def _remove(p):
    try:
        os.remove(p)
    except OSError:
        pass


def parse_only(text):
    if not text:
        return list(FILES)
    names = []
    for raw in text.split(','):
        n = raw.strip().lower()
        if not n:
            continue
        n = _ALIASES.get(n, n)
        if n.endswith('.pth'):
            n = _ALIASES.get(n[:-4], n[:-4])
        if n not in FILES:
            raise UserError(f'--only: unknown weights {raw.strip()!r} (choose from {", ".join(FILES)})')
        if n not in names:
            names.append(n)
    return names


def main(argv=None):
    ap = argparse.ArgumentParser(description='Download the official MiVOS-STCN network weights.')
    ap.add_argument('--only', default='', help='comma-separated subset of: ' + ','.join(FILES))
    ap.add_argument('--dir', default='saves', help='destination folder (default: saves)')
    ap.add_argument('--quiet', action='store_true', help='no progress bars')
    args = ap.parse_args(argv)
    names = parse_only(args.only)
    try:
        os.makedirs(args.dir, exist_ok=True)
    except OSError as e:
        raise UserError(f'--dir {args.dir}: cannot create the folder ({e.strerror})') from None
    for n in names:
        item = FILES[n]
        path = os.path.join(args.dir, item.filename)
        if os.path.isfile(path) and _is_valid(item, path):
            print(f'{path}: already present and valid, skipped')
            continue
        print(f'downloading {item.filename} (~{item.size_mb} MB) ...')
        fetch(item, path, quiet=args.quiet)
        print(f'{path}: ok')
    return 0


if __name__ == '__main__':
    run_cli(main)
