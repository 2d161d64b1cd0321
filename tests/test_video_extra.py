"""The video-extra loader (object ids, per-source sizes, `-mo` twins in their video's split),
multi-object real training clips and static-sal through the photo loader. The parts that read
../shared skip without it; the split rules and the id handling run on generated folders."""
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

from scripts.train.data import ClipSampler, FeatureCache
from util import davis_split
from util.davis_io import fit_clip, load_labels

SHARED = Path(__file__).resolve().parents[2] / 'shared' / 'data'
EXTRA = SHARED / 'video-extra'
DAVIS = SHARED / 'davis2016-train'
SAL = SHARED / 'static-sal'
FG = SHARED / 'static-fg'


def write_sequence(root, seq, labels, size=(96, 160)):
    """A video-extra-style sequence: videos/<seq>.mp4 (frames drawn from the labels) and
    masks/<seq>/%05d.png holding the labels as they are."""
    h, w = size
    (root / 'videos').mkdir(parents=True, exist_ok=True)
    (root / 'masks' / seq).mkdir(parents=True, exist_ok=True)
    vw = cv2.VideoWriter(str(root / 'videos' / f'{seq}.mp4'), cv2.VideoWriter_fourcc(*'mp4v'), 10, (w, h))
    for t, lab in enumerate(labels):
        frame = np.full((h, w, 3), 90, np.uint8)
        frame[lab > 0] = (40 * lab[lab > 0, None] % 255).astype(np.uint8)
        vw.write(frame)
        cv2.imwrite(str(root / 'masks' / seq / f'{t:05d}.png'), lab)
    vw.release()


def test_splits_keep_twins_with_their_video_and_hold_out_the_unseen_videos():
    seqs = ['bear', 'bear-mo', 'hockey', 'hockey-mo', 'surf-mo', 'judo', 'dog-gooses', 'pumavos-chair']
    train = davis_split.train_sequences(seqs)
    assert train == ['hockey', 'hockey-mo', 'pumavos-chair']
    # the report videos (and so their twins) become training videos with --with-report;
    # selection and unseen ones never do
    assert davis_split.train_sequences(seqs, with_report=True) == ['hockey', 'hockey-mo', 'pumavos-chair',
                                                                     'surf-mo']
    assert davis_split.twin_of('surf-mo') == 'surf' and davis_split.twin_of('judo') == 'judo'
    assert len(davis_split.EXTRA_UNSEEN) >= 5
    assert not set(davis_split.EXTRA_UNSEEN) & set(davis_split.EXTRA_SELECTION)


def test_ids_are_kept_binary_masks_become_one_object_and_sizes_are_fitted():
    ids = np.zeros((2, 40, 60), np.uint8)
    ids[:, 5:15, 5:20] = 1
    ids[:, 20:30, 30:50] = 3
    frames = np.zeros((2, 40, 60, 3), np.uint8)
    f, lab = fit_clip(frames, ids, (20, 40))                  # 40x60 -> cover 20x40, keep the middle
    assert f.shape == (2, 20, 40, 3) and lab.shape == (2, 20, 40)
    assert set(np.unique(lab)) == {0, 1, 3}                    # nearest: no blended ids
    binary = (ids > 0).astype(np.uint8)
    _, lab = fit_clip(frames, binary, (20, 30))
    assert set(np.unique(lab)) <= {0, 1}


def test_loader_reads_object_ids_and_the_cache_keeps_them(tmp_path, monkeypatch):
    extra = tmp_path / 'extra'
    labels = np.zeros((6, 96, 160), np.uint8)
    for t in range(6):
        labels[t, 20:50, 10 + 4 * t:40 + 4 * t] = 1
        labels[t, 55:80, 90:120] = 2
        labels[t, 10:20, 120:140] = 3
    write_sequence(extra, 'pumavos-chair', labels)
    write_sequence(extra, 'judo', labels)                     # unseen: never cached
    binary = np.where(labels > 0, 255, 0).astype(np.uint8)
    davis = tmp_path / 'davis'
    write_sequence(davis, 'hockey', binary)
    write_sequence(extra, 'hockey-mo', labels)                # its twin replaces it in the cache
    frames, lab = load_labels(extra, 'pumavos-chair', (64, 112))
    assert frames.shape == (6, 64, 112, 3) and set(np.unique(lab)) == {0, 1, 2, 3}
    _, lab = load_labels(davis, 'hockey')
    assert set(np.unique(lab)) == {0, 1}                      # 0/255 masks: one object

    class Backbone:                                           # maps are not what this test is about
        def eval(self):
            return self
    monkeypatch.setattr('scripts.train.data.backbone_maps', lambda bb, fr, with_f8=True: tuple(
        torch.zeros(len(fr), 1, fr.shape[1] // s, fr.shape[2] // s) for s in (2, 4, 8, 16)))
    cache = FeatureCache.build(davis, tmp_path / 'cache', Backbone(), size=(64, 112), extra_root=extra)
    assert cache.names == ['hockey-mo', 'pumavos-chair']
    s, n = cache.seq_range('pumavos-chair')
    assert set(np.unique(cache.arrays['masks'][s:s + n])) == {0, 1, 2, 3}
    sampler = ClipSampler(cache, seed=0)
    counts = set()
    for _ in range(40):
        clip = sampler.cached_clip(0)
        k = clip['num_objects']
        counts.add(k)
        assert set(np.unique(clip['labels'].numpy())) <= set(range(k + 1))
    assert counts >= {1, 3}                                   # the union, and all three objects


@pytest.mark.skipif(not (EXTRA / 'videos').is_dir(), reason='../shared/data/video-extra is not here')
def test_real_video_extra_sequences_load_at_the_processing_size():
    frames, lab = load_labels(EXTRA, 'schoolgirls', (288, 512))     # 432x240 source, 7 objects
    assert frames.shape[1:] == (288, 512, 3) and lab.max() == 7
    frames, lab = load_labels(EXTRA, 'pumavos-chair', (288, 512))   # 720x480 source: cropped, not squashed
    assert frames.shape[1:3] == (288, 512) and lab.max() == 1
    have = {p.stem for p in (EXTRA / 'videos').glob('*.mp4')}
    for seq in davis_split.train_sequences(have, with_report=True):
        assert davis_split.twin_of(seq) not in davis_split.SELECTION_SEQUENCES
    assert set(davis_split.EXTRA_UNSEEN) <= have and set(davis_split.EXTRA_SELECTION) <= have
    if (DAVIS / 'masks' / 'hockey').is_dir():                 # a twin has its video's frames
        _, one = load_labels(DAVIS, 'hockey')
        _, many = load_labels(EXTRA, 'hockey-mo')
        agree = ((one > 0) == (many > 0)).mean()
        assert agree > 0.98


@pytest.mark.skipif(not (SAL / 'images').is_dir() or not (FG / 'images').is_dir(),
                    reason='../shared/data/static-sal or static-fg is not here')
def test_static_sal_goes_through_the_photo_loader_with_static_fg():
    from scripts.train.static_fg import StaticFG
    from util.photo_split import is_validation_photo
    both = StaticFG([FG, SAL])
    alone = StaticFG(FG)
    assert len(both) > 5 * len(alone)
    assert not any(is_validation_photo(i) for i in both.ids)
    rgb, mask, ignore = both.load(next(i for i in both.ids if i.startswith('dutstr_')))
    assert rgb.shape[:2] == mask.shape and mask.any() and not ignore.any()
    held = StaticFG([FG, SAL], part='validation')
    assert len(held) > 300 and not set(held.ids) & set(both.ids)
