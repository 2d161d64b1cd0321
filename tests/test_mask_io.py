"""Reading palette / binary / label / colour mask PNGs into a FrameStore."""
import os

import numpy as np
import pytest
from PIL import Image

from inference_core.store import FrameStore
from util.errors import UserError
from inference_core.store_io import load_masks
from util.mask_io import match_masks_to_frames, read_label_png
from util.palette import davis_palette, davis_palette_flat


def _labels(h=30, w=40, n=3, seed=0):
    m = np.zeros((h, w), np.uint8)
    for k in range(1, n + 1):
        m[(k - 1) * h // n:k * h // n, k * 5:k * 5 + 8] = k
    return m


def _save_palette(path, labels):
    im = Image.fromarray(labels, mode='P')
    im.putpalette(davis_palette_flat())
    im.save(path)


def _store(t=5, h=30, w=40, orig=None, names=None):
    fr = np.zeros((t, h, w, 3), np.uint8)
    return FrameStore(fr, orig_size=orig or (h, w), frame_names=names)


def test_read_rules(tmp_path):
    lab = _labels()
    _save_palette(tmp_path / 'p.png', lab)
    assert np.array_equal(read_label_png(tmp_path / 'p.png'), lab)
    # palette index wins even when the palette colours are unusual
    im = Image.fromarray(lab, mode='P')
    im.putpalette([255, 255, 255] * 256)
    im.save(tmp_path / 'p2.png')
    assert np.array_equal(read_label_png(tmp_path / 'p2.png'), lab)
    Image.fromarray(np.where(lab == 1, 255, 0).astype(np.uint8)).save(tmp_path / 'b.png')
    assert np.array_equal(read_label_png(tmp_path / 'b.png'), (lab == 1).astype(np.uint8))
    Image.fromarray(lab).save(tmp_path / 'l.png')                 # grey value = id
    assert np.array_equal(read_label_png(tmp_path / 'l.png'), lab)
    Image.fromarray(davis_palette()[lab]).save(tmp_path / 'c.png')  # RGB via DAVIS palette
    assert np.array_equal(read_label_png(tmp_path / 'c.png'), lab)
    rgba = np.dstack([davis_palette()[lab], np.full(lab.shape, 255, np.uint8)])
    rgba[0, :, 3] = 0
    Image.fromarray(rgba).save(tmp_path / 'ca.png')
    exp = lab.copy()
    exp[0] = 0
    assert np.array_equal(read_label_png(tmp_path / 'ca.png'), exp)
    Image.fromarray((lab == 2).astype(np.uint8) * 255).convert('1').save(tmp_path / 'one.png')
    assert np.array_equal(read_label_png(tmp_path / 'one.png'), (lab == 2).astype(np.uint8))
    Image.fromarray(lab.astype(np.uint16) * 1).save(tmp_path / 'l16.png')
    assert np.array_equal(read_label_png(tmp_path / 'l16.png'), lab)


def test_bad_colour_and_too_many_ids(tmp_path):
    rgb = np.zeros((8, 8, 3), np.uint8)
    rgb[2, 2] = (10, 200, 30)
    Image.fromarray(rgb).save(tmp_path / 'bad.png')
    with pytest.raises(UserError, match='not in the DAVIS palette'):
        read_label_png(tmp_path / 'bad.png')
    # a grey value above the label range is not an object id: one level = the object
    # (rule 3d in util/mask_io.py; the other grey rules: tests/test_user_errors.py)
    Image.fromarray(np.full((8, 8), 300, np.uint16)).save(tmp_path / 'big.png')
    assert (read_label_png(tmp_path / 'big.png') == 1).all()
    (tmp_path / 'junk.png').write_bytes(b'not a png')
    with pytest.raises(UserError, match='cannot read'):
        read_label_png(tmp_path / 'junk.png')


def test_load_subset_by_name_resized_from_original(tmp_path):
    s = _store(t=6, h=30, w=40, orig=(60, 80))
    big = _labels(60, 80, n=2)
    _save_palette(tmp_path / '00002.png', big)
    _save_palette(tmp_path / '4.png', big)          # numeric stem matches 00004
    done = load_masks(s, tmp_path)
    assert done == [2, 4] and s.num_objects == 2 and s.edited_frames == {2, 4}
    assert s.get_mask(2).shape == (30, 40) and set(np.unique(s.get_mask(2))) == {0, 1, 2}
    assert not s.get_mask(0).any()


def test_load_by_order_and_binary(tmp_path):
    s = _store(t=3, names=['a', 'b', 'c'])
    for i in range(3):
        m = np.zeros((30, 40), np.uint8)
        m[i * 5:i * 5 + 10, 3:20] = 255
        Image.fromarray(m).save(tmp_path / f'mask_{i}.png')
    seen = []
    assert load_masks(s, tmp_path, progress=lambda d, t: seen.append(d)) == [0, 1, 2]
    assert seen == [1, 2, 3] and s.num_objects == 1
    assert s.get_mask(1)[5:15, 3:20].all() and s.get_mask(1).sum() == 10 * 17


def test_load_single_file_and_list(tmp_path):
    s = _store()
    _save_palette(tmp_path / '00000.png', _labels())
    assert load_masks(s, tmp_path / '00000.png') == [0]
    assert s.num_objects == 3
    _save_palette(tmp_path / '00003.png', _labels(n=1))
    assert load_masks(s, [tmp_path / '00003.png']) == [3]
    assert s.num_objects == 3


def test_mismatched_masks(tmp_path):
    s = _store(t=3, orig=(60, 80))
    _save_palette(tmp_path / '00000.png', _labels(60, 60))
    with pytest.raises(UserError, match='aspect'):
        load_masks(s, tmp_path)
    d = tmp_path / 'many'
    d.mkdir()
    for i in range(4):
        _save_palette(d / f'{i:05d}.png', _labels(60, 80))
    with pytest.raises(UserError, match='4 masks'):
        load_masks(s, d)
    d2 = tmp_path / 'names'
    d2.mkdir()
    _save_palette(d2 / 'x.png', _labels(60, 80))
    with pytest.raises(UserError, match='matches no frame'):
        load_masks(s, d2)
    with pytest.raises(UserError, match='not found'):
        load_masks(s, tmp_path / 'nope')
    empty = tmp_path / 'empty'
    empty.mkdir()
    with pytest.raises(UserError, match='no mask'):
        load_masks(s, empty)
    with pytest.raises(UserError, match='both for frame'):
        match_masks_to_frames(['7.png', '007.png'], ['00007', '00008', '00009'])


def test_error_mid_way_rolls_back(tmp_path):
    s = _store(t=3)
    s.add_object()
    s.set_mask(1, (_labels() > 0).astype(np.uint8), edited=True)
    before = s.masks.copy()
    _save_palette(tmp_path / '00000.png', _labels())
    _save_palette(tmp_path / '00001.png', _labels(n=2))
    rgb = davis_palette()[_labels()].copy()
    rgb[0, 0] = (1, 2, 3)
    Image.fromarray(rgb).save(tmp_path / '00002.png')
    with pytest.raises(UserError, match='palette'):
        load_masks(s, tmp_path)
    assert np.array_equal(s.masks, before) and s.num_objects == 1 and s.edited_frames == {1}
    os.remove(tmp_path / '00002.png')
    assert load_masks(s, tmp_path, should_cancel=lambda: s.num_objects > 1) is None
    assert np.array_equal(s.masks, before) and s.num_objects == 1


def test_non_ascii_mask_path(tmp_path):
    d = tmp_path / 'máscaras_マスク'
    d.mkdir()
    s = _store(t=2)
    _save_palette(d / '00001.png', _labels())
    assert load_masks(s, d) == [1]


def test_davis_binary_masks(davis16):
    from inference_core.store_io import open_frames
    s = open_frames(davis16 / 'videos' / 'dog-agility.mp4', resolution=240)
    files = sorted((davis16 / 'masks' / 'dog-agility').glob('*.png'))
    assert load_masks(s, files[:3]) == [0, 1, 2]
    assert load_masks(s, davis16 / 'masks' / 'dog-agility') == list(range(len(files)))
    assert s.num_objects == 1 and s.get_mask(0).any()
