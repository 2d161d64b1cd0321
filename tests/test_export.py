"""Exports: indexed PNG, per-object PNG, overlay MP4, COCO RLE; atomicity; round trips."""
import json
import os

import cv2
import numpy as np
import pytest
from PIL import Image

from inference_core.store import FrameStore
from util import atomic, export as export_mod, rle
from util.errors import UserError
from util.export import export, labels_from_rle_record, read_rle_json
from util.frames_io import encode_image, open_frames
from util.mask_io import load_masks
from util.palette import davis_palette


def _store(t=4, h=36, w=64, orig=(72, 128), names=None):
    rng = np.random.default_rng(3)
    s = FrameStore(rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8), orig_size=orig,
                   frame_names=names)
    s.add_object('cup')
    s.add_object('cat/dog')
    for i in range(t):
        m = np.zeros((h, w), np.uint8)
        m[5 + i:20 + i, 4:30] = 1
        m[10:30, 35 + i:60] = 2
        s.set_mask(i, m)
    return s


def test_rle_matches_pycocotools_strings():
    # Reference strings produced by pycocotools 2.0.11 mask.encode on the same masks.
    rng = np.random.default_rng(7)
    m = (rng.random((23, 31)) < 0.4).astype(np.uint8)
    m[5:20, 3:28] = 1
    ref = ('114000O0O0O2050I11O10N20O2OO1O20O2N`00@0>33N^OOO0>0B20O`00@0?OB000b03KMD3<MD0O0`04N2OJ'
           'B10O00>71LAN>OC1O0>2BM00>2B1`0MC0;0B100?1B0=ODON0?3AN>OB100?0A01O>3A01N11NN170I11N41OOO2N03')
    assert rle.encode(m)['counts'] == ref
    assert np.array_equal(rle.decode({'size': [23, 31], 'counts': ref}), m)
    m2 = np.zeros((480, 854), np.uint8)
    m2[100:300, 200:700] = 1
    m2[0, 0] = m2[479, 853] = 1
    enc = rle.encode(m2)['counts']
    assert enc.startswith('01Skm2W6e]RM000') and enc.endswith('0kRX2iI')
    assert np.array_equal(rle.decode({'size': [480, 854], 'counts': enc}), m2)
    for mm in [np.zeros((3, 4)), np.ones((3, 4)), np.eye(5)]:
        e = rle.encode(mm)
        assert np.array_equal(rle.decode(e), mm) and rle.area(e) == mm.sum()
        assert np.array_equal(rle.decode({'size': e['size'], 'counts': rle.mask_to_counts(mm)}), mm)


def test_all_formats_readable_back(tmp_path):
    s = _store()
    seen = []
    out = tmp_path / 'out'
    assert export(s, out, formats=['png', 'objects', 'mp4', 'rle'],
                  progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (16, 16)
    for t in range(4):
        big = s.mask_at_original(t)
        im = Image.open(out / 'masks' / f'{t:05d}.png')
        assert im.mode == 'P' and im.size == (128, 72)
        assert np.array_equal(np.array(im), big)
        assert np.array_equal(np.array(im.getpalette()[:9]).reshape(3, 3), davis_palette()[:3])
        for obj_id, d in [(1, 'cup'), (2, 'cat_dog')]:
            b = np.array(Image.open(out / 'objects' / d / f'{t:05d}.png'))
            assert set(np.unique(b)) <= {0, 255} and np.array_equal(b == 255, big == obj_id)
        rec, lab = read_rle_json(out / 'rle' / f'{t:05d}.json')
        assert np.array_equal(lab, big)
        assert [o['name'] for o in rec['objects']] == ['cup', 'cat/dog']
        assert rec['objects'][0]['area'] == int((big == 1).sum())
    cap = cv2.VideoCapture(str(out / 'overlay.mp4'))
    n = 0
    while True:
        ok, fr = cap.read()
        if not ok:
            break
        assert fr.shape == (72, 128, 3)
        n += 1
    assert n == 4
    assert not [p for p in out.rglob('*') if p.name.endswith('.part') or p.name.startswith('.')]


def test_round_trip_video_export_reimport(tmp_path):
    # A 1280x720 "video" processed at 480p: export at 720p, re-import -> identical labels.
    d = tmp_path / 'frames'
    d.mkdir()
    for i in range(3):
        (d / f'{i:05d}.jpg').write_bytes(encode_image(np.full((720, 1280, 3), 40 * i, np.uint8), '.jpg'))
    s = open_frames(d, resolution=480)
    assert (s.height, s.width) == (480, 853)
    rng = np.random.default_rng(0)
    s.ensure_objects(5)
    for t in range(3):
        s.set_mask(t, rng.integers(0, 6, (480, 853), dtype=np.uint8))
    assert export(s, tmp_path / 'ex', formats='png')
    assert Image.open(tmp_path / 'ex' / 'masks' / '00001.png').size == (1280, 720)
    s2 = open_frames(d, resolution=480)
    assert load_masks(s2, tmp_path / 'ex' / 'masks') == [0, 1, 2]
    assert np.array_equal(s2.masks, s.masks) and s2.num_objects == 5


def test_export_names_follow_frames_and_odd_size_mp4(tmp_path):
    s = _store(t=2, h=15, w=21, orig=(15, 21), names=['img_a', 'img_b'])
    s.set_visible(2, False)
    assert export(s, tmp_path, formats=['indexed', 'video'], fps=5)
    assert sorted(os.listdir(tmp_path / 'masks')) == ['img_a.png', 'img_b.png']
    cap = cv2.VideoCapture(str(tmp_path / 'overlay.mp4'))
    ok, fr = cap.read()
    assert ok and fr.shape[:2] == (16, 22)


def test_overlay_uses_source_frames_at_original_size(tmp_path):
    d = tmp_path / 'src'
    d.mkdir()
    for i in range(2):
        img = np.zeros((64, 96, 3), np.uint8)
        img[:, ::2] = 255                       # fine stripes are lost when downscaled
        (d / f'{i}.png').write_bytes(encode_image(img, '.png'))
    s = open_frames(d, resolution=32)
    assert export_mod._source_frames(s) is not None
    assert export_mod.export_overlay_mp4(s, tmp_path / 'o.mp4')
    ok, fr = cv2.VideoCapture(str(tmp_path / 'o.mp4')).read()
    assert ok and fr.shape[:2] == (64, 96) and fr[..., 0].std() > 60


def test_cancel_mp4_leaves_no_file_and_png_partial_complete(tmp_path):
    s = _store()
    calls = []

    def cancel_after(k):
        def f():
            calls.append(1)
            return len(calls) > k
        return f
    assert export(s, tmp_path, formats=['mp4'], should_cancel=cancel_after(2)) is False
    assert os.listdir(tmp_path) == []
    calls.clear()
    assert export(s, tmp_path, formats=['png'], should_cancel=cancel_after(2)) is False
    assert sorted(os.listdir(tmp_path / 'masks')) == ['00000.png', '00001.png']


def test_failure_mid_write_keeps_old_file(tmp_path, monkeypatch):
    s = _store()
    assert export(s, tmp_path, formats=['png'])
    target = tmp_path / 'masks' / '00002.png'
    old = target.read_bytes()
    s.set_mask(2, np.zeros((36, 64), np.uint8))
    real = export_mod.indexed_png_bytes
    n = []

    def failing(labels):
        n.append(1)
        if len(n) == 3:
            raise OSError('disk full')
        return real(labels)
    monkeypatch.setattr(export_mod, 'indexed_png_bytes', failing)
    with pytest.raises(OSError):
        export(s, tmp_path, formats=['png'])
    assert target.read_bytes() == old
    # a failure inside the write itself: partial temp removed, old file intact
    with pytest.raises(RuntimeError):
        with atomic.atomic_open(target) as f:
            f.write(b'half')
            raise RuntimeError('crash')
    assert target.read_bytes() == old
    assert sorted(os.listdir(tmp_path / 'masks')) == [f'{i:05d}.png' for i in range(4)]


def test_unwritable_and_bad_format(tmp_path):
    s = _store()
    f = tmp_path / 'file'
    f.write_text('x')
    with pytest.raises(UserError, match='not a folder'):
        export(s, f, formats=['png'])
    with pytest.raises(UserError, match='not writable'):
        export(s, f / 'sub', formats=['png'])      # parent is a file: cannot create
    with pytest.raises(UserError, match='unknown export format'):
        export(s, tmp_path / 'o', formats=['gif'])
    ro = tmp_path / 'ro'
    ro.mkdir()
    os.chmod(ro, 0o500)
    try:
        if os.access(ro, os.W_OK):
            pytest.skip('running as root: permissions are not enforced')
        with pytest.raises(UserError, match='not writable'):
            export(s, ro, formats=['png'])
    finally:
        os.chmod(ro, 0o700)


def test_non_ascii_export(tmp_path):
    s = _store(t=2, names=['первый', '第二'])
    s.rename_object(1, 'tasse à café')
    out = tmp_path / 'экспорт'
    assert export(s, out, formats=['png', 'objects', 'rle', 'mp4'])
    assert np.array_equal(np.array(Image.open(out / 'masks' / '第二.png')), s.mask_at_original(1))
    assert (out / 'objects' / 'tasse à café' / 'первый.png').is_file()
    rec = json.loads((out / 'rle' / 'первый.json').read_text(encoding='utf-8'))
    assert np.array_equal(labels_from_rle_record(rec), s.mask_at_original(0))
    assert (out / 'overlay.mp4').stat().st_size > 0


def test_cli_progress_bar():
    import io
    from util.progress import cli_progress
    buf = io.StringIO()
    with cli_progress('export', stream=buf) as p:
        for i in range(1, 4):
            p(i, 3)
    assert 'export' in buf.getvalue() and '3/3' in buf.getvalue()
    quiet = io.StringIO()
    with cli_progress('x', quiet=True, stream=quiet) as p:
        p(1, 2)
    assert quiet.getvalue() == ''
