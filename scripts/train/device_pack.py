"""Pack the propagation training data into `.device_data/` for a GPU machine that is lent by the
session (the `device` tool): it copies only the working tree plus named paths, at most 64 MiB
in all, and it has neither `../shared` nor internet nor this project's extra packages.

    python -m scripts.train.device_pack [--out .device_data] [--data ...] [--static-fg ...]
                                        [--proc-short 240] [--with-report]

What goes in (training data only; the selection and report sequences and the static-fg
validation photos stay here, where the snapshots are chosen and measured):
* `davis/`: the DAVIS training videos (with `--with-report` the report videos too, as the
  trainers' `--with-report`: the manifest says so and `device_train.sh` trains on them) at the
  processing size the trainer caches (240x432; with `--proc-short N` that of N, for
  `device_train.sh ... --proc-short N`), re-encoded (MPEG-4 part 2; the feature cache would
  resize them to this size anyway), and their masks at that size, thresholded as the cache
  thresholds them;
* `static-fg/`: the training part of the photos, longer side <= 384 (`photo_scale`), as WebP,
  and their masks;
* `backbone_lite0.pth`: the ImageNet EfficientNet-Lite0 weights up to stride 16, fp16 (the
  exported networks store the backbone in fp16 too), for `--backbone-weights`;
* `site/`: pure-Python packages the GPU image lacks (progressbar2 and python-utils).

The command that trains there is `scripts/train/device_train.sh`; scripts/train/README.md says
how to run it and how to choose among the snapshots it brings back.
"""
import argparse
import json
import os
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import torch

from scripts.train.data import DEFAULT_ROOT, PROC_SIZE, cache_size, short_side
from scripts.train.static_fg import DEFAULT_ROOT as STATIC_FG_ROOT, StaticFG
from util.davis_io import list_sequences, load_sequence
from util.davis_split import held_out, train_sequences
from util.errors import UserError, run_cli

REPO = Path(__file__).resolve().parents[2]
CARRY_LIMIT = 64 * 2 ** 20          # the device tool's limit on what travels (working tree + carry)
PHOTO_LONG_SIDE = 384
PHOTO_QUALITY = 80                  # WebP: ~14 KB a photo; 1,600 photos fit beside the videos
SITE_PACKAGES = ('progressbar', 'python_utils')


def pack_videos(root, out, sequences, size=PROC_SIZE):
    """Training sequences -> out/videos/<seq>.mp4 + out/masks/<seq>/%05d.png at `size`."""
    h, w = size
    for seq in sequences:
        frames, masks = load_sequence(root, seq, size)
        (out / 'videos').mkdir(parents=True, exist_ok=True)
        (out / 'masks' / seq).mkdir(parents=True, exist_ok=True)
        path = out / 'videos' / f'{seq}.mp4'
        writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*'mp4v'), 24, (w, h))
        if not writer.isOpened():
            raise UserError(f'{path}: OpenCV cannot write MPEG-4 video here')
        for t, (f, m) in enumerate(zip(frames, masks)):
            writer.write(cv2.cvtColor(f, cv2.COLOR_RGB2BGR))
            cv2.imwrite(os.fspath(out / 'masks' / seq / f'{t:05d}.png'), m.astype(np.uint8) * 255)
        writer.release()


def photo_scale(h, w, long_side=PHOTO_LONG_SIDE):
    """Scale (<= 1) of a packed photo: longer side <= `long_side`. Composites paste objects at
    most 168 pixels long (0.7 of the 240-pixel short side), so they lose nothing; a whole photo
    fitted to 240x432 (static_fg.fit) is upsampled by at most 432/384."""
    return min(1.0, long_side / max(h, w))


def pack_photos(fg, out, quality=PHOTO_QUALITY):
    """The photos of StaticFG `fg` -> out/images/<id>.webp + out/masks/<id>.png (0/128/255 kept)."""
    (out / 'images').mkdir(parents=True, exist_ok=True)
    (out / 'masks').mkdir(parents=True, exist_ok=True)
    for name in fg.ids:
        bgr = cv2.imread(os.fspath(fg.image_path(name)), cv2.IMREAD_COLOR)
        m = cv2.imread(os.fspath(fg.root / 'masks' / f'{name}.png'), cv2.IMREAD_GRAYSCALE)
        if bgr is None or m is None or bgr.shape[:2] != m.shape:
            raise UserError(f'static-fg {name}: unreadable image or mask')
        s = photo_scale(*bgr.shape[:2])
        if s < 1:
            size = (max(1, round(bgr.shape[1] * s)), max(1, round(bgr.shape[0] * s)))
            bgr = cv2.resize(bgr, size, interpolation=cv2.INTER_AREA)
            m = cv2.resize(m, size, interpolation=cv2.INTER_NEAREST)
        cv2.imwrite(os.fspath(out / 'images' / f'{name}.webp'), bgr, [cv2.IMWRITE_WEBP_QUALITY, quality])
        cv2.imwrite(os.fspath(out / 'masks' / f'{name}.png'), m, [cv2.IMWRITE_PNG_COMPRESSION, 9])


def pack_backbone(path, variant='lite0'):
    """ImageNet backbone (up to stride 16, as the propagation network holds it) -> fp16 file."""
    from model.lite_propagation import LiteBackbone
    sd = LiteBackbone(variant, pretrained=True).net.state_dict()
    torch.save({k: v.half() if v.is_floating_point() else v for k, v in sd.items()}, path)


def pack_site(out):
    """Copy the pure-Python packages the GPU image lacks (from this environment)."""
    import importlib
    for name in SITE_PACKAGES:
        src = Path(importlib.import_module(name).__file__).parent
        shutil.copytree(src, out / name, ignore=shutil.ignore_patterns('__pycache__'), dirs_exist_ok=True)


def folder_bytes(path):
    return sum(p.stat().st_size for p in Path(path).rglob('*') if p.is_file())


def tracked_bytes(repo=REPO):
    """Bytes of the files git tracks (what the device tool sends besides the carried paths)."""
    try:
        names = subprocess.run(['git', 'ls-files', '-z'], cwd=repo, capture_output=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return 0
    return sum((repo / n).stat().st_size for n in names.decode().split('\0') if n and (repo / n).is_file())


def build_pack(out, data=DEFAULT_ROOT, static_fg=STATIC_FG_ROOT, sequences=None, progress=print,
               size=PROC_SIZE, with_report=False):
    """Write the pack into `out` (replaced). Returns its manifest (also out/manifest.json).
    with_report: also pack the report videos (never the selection ones)."""
    out = Path(out)
    seqs = sequences if sequences is not None else train_sequences(list_sequences(data), with_report)
    leak = sorted(set(seqs) & set(held_out(with_report)))
    if leak:
        which = 'selection' if with_report else 'selection or report'
        raise UserError(f'held-out ({which}) sequences must not be packed: {leak}')
    if not seqs:
        raise UserError(f'{data}: no training sequence to pack')
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    progress(f'videos: {len(seqs)} training sequences')
    pack_videos(data, out / 'davis', seqs, size)
    photos = 0
    if static_fg is not None and StaticFG.available(static_fg):
        fg = StaticFG(static_fg)            # the training part: validation photos stay here
        progress(f'static-fg: {len(fg)} training photos')
        pack_photos(fg, out / 'static-fg')
        photos = len(fg)
    progress('backbone and site packages')
    pack_backbone(out / 'backbone_lite0.pth')
    pack_site(out / 'site')
    manifest = {'sequences': seqs, 'with_report': bool(with_report), 'size': list(size), 'photos': photos,
                'photo_long_side': PHOTO_LONG_SIDE, 'photo_webp_quality': PHOTO_QUALITY,
                'bytes': {p.name: folder_bytes(p) if p.is_dir() else p.stat().st_size
                          for p in sorted(out.iterdir())}}
    (out / 'manifest.json').write_text(json.dumps(manifest, indent=2) + '\n')
    manifest['total_bytes'] = folder_bytes(out)
    return manifest


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    ap.add_argument('--out', default=str(REPO / '.device_data'), help='pack folder (replaced)')
    ap.add_argument('--data', default=str(DEFAULT_ROOT), help='DAVIS-2016-style folder')
    ap.add_argument('--static-fg', default=str(STATIC_FG_ROOT), help="static-fg folder ('' for none)")
    ap.add_argument('--proc-short', type=short_side, default=240, metavar='N',
                    help='processing size the GPU run trains at (train_propagation --proc-short)')
    ap.add_argument('--with-report', action='store_true',
                    help='also pack the report videos (the run is then marked trained_on_report)')
    args = ap.parse_args(argv)
    m = build_pack(args.out, args.data, args.static_fg or None, size=cache_size(args.proc_short),
                   with_report=args.with_report)
    total = m['total_bytes'] + tracked_bytes()
    mib = lambda b: f'{b / 2 ** 20:.1f} MiB'           # noqa: E731
    print(', '.join(f'{k} {mib(v)}' for k, v in m['bytes'].items()))
    print(f'pack {mib(m["total_bytes"])} + tracked files = {mib(total)} of the {mib(CARRY_LIMIT)} '
          f'that may travel')
    if total > CARRY_LIMIT:
        raise UserError(f'the pack and the working tree ({mib(total)}) exceed what the device tool '
                        f'carries ({mib(CARRY_LIMIT)})')
    return 0


if __name__ == '__main__':
    run_cli(main)
