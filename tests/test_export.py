"""Exports: every format read back by the tool that consumes it (pycocotools for COCO, PyAV for
the H.264 video), soft masks, all-or-nothing writes, overwrite and input-folder guards."""
import errno
import json
import os

import numpy as np
import pytest
from PIL import Image

from inference_core.store import FrameStore
from util import atomic, export as export_mod, video_io
from util.coco_io import read_annotation_file
from util.errors import UserError
from util.export import export, soft_labels, soft_maps
from inference_core.store_io import load_masks, open_frames
from util.frames_io import encode_image
from util.palette import davis_palette

ALL = ['png', 'objects', 'soft', 'coco', 'ytvis', 'mp4']


def _store(t=4, h=36, w=64, orig=(72, 128), names=None):
    rng = np.random.default_rng(3)
    s = FrameStore(rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8), orig_size=orig,
                   frame_names=names)
    s.add_object('cup')
    s.add_object('cat/dog')
    for i in range(t):
        m = np.zeros((h, w), np.uint8)
        m[5 + i:20 + i, 4:30] = 1
        if i != 1:                               # object 2 is absent from frame 1
            m[10:30, 35 + i:60] = 2
        s.set_mask(i, m)
    return s


def _tree(root):
    """{relative path: bytes} of every file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob('*')) if p.is_file()}


def full_disk_on_call(fn, n):
    """`fn` that raises ENOSPC on its n-th call (a disk filling up part-way through a write)."""
    calls = []

    def wrapped(*args, **kwargs):
        calls.append(1)
        if len(calls) == n:
            raise OSError(errno.ENOSPC, 'No space left on device')
        return fn(*args, **kwargs)
    return wrapped


def _decode_all(path):
    import av
    with av.open(str(path)) as c:
        st = c.streams.video[0]
        frames = [(f.to_ndarray(format='rgb24'), float(f.pts * st.time_base)) for f in c.decode(st)]
        return st.codec_context.name, float(st.average_rate), frames


def test_all_formats_read_back_by_their_consumers(tmp_path):
    from pycocotools.coco import COCO
    s = _store()
    seen = []
    out = tmp_path / 'out'
    assert export(s, out, formats=ALL, fps=12, progress=lambda d, t: seen.append((d, t)))
    assert seen[-1] == (28, 28)           # 4 frames x 6 formats + the 4 images COCO names
    coco = COCO(str(out / 'annotations.json'))
    assert [c['name'] for c in coco.loadCats(coco.getCatIds())] == ['cup', 'cat/dog']
    for img in coco.loadImgs(coco.getImgIds()):     # every file_name exists, at the right size
        assert Image.open(out / img['file_name']).size == (img['width'], img['height'])
    ytvis = json.loads((out / 'ytvis.json').read_text())
    tracks = {a['id']: a for a in ytvis['annotations']}
    for t in range(4):
        big = s.mask_at_original(t)
        im = Image.open(out / 'masks' / f'{t:05d}.png')
        assert im.mode == 'P' and im.size == (128, 72)
        assert np.array_equal(np.array(im), big)
        assert np.array_equal(np.array(im.getpalette()[:9]).reshape(3, 3), davis_palette()[:3])
        img = coco.loadImgs([t + 1])[0]
        assert img['frame_index'] == t and (img['height'], img['width']) == (72, 128)
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[img['id']]))
        assert sorted(a['track_id'] for a in anns) == ([1] if t == 1 else [1, 2])
        for a in anns:
            m = coco.annToMask(a).astype(bool)
            assert np.array_equal(m, big == a['track_id']) and a['area'] == m.sum()
            ys, xs = np.nonzero(m)
            assert a['bbox'] == [xs.min(), ys.min(), xs.max() - xs.min() + 1, ys.max() - ys.min() + 1]
        for obj_id, d in [(1, 'cup'), (2, 'cat_dog')]:
            b = np.array(Image.open(out / 'objects' / d / f'{t:05d}.png'))
            assert set(np.unique(b)) <= {0, 255} and np.array_equal(b == 255, big == obj_id)
            soft = np.array(Image.open(out / 'soft' / d / f'{t:05d}.png'))
            assert np.array_equal(soft, b)     # no probabilities given: the documented fallback
        assert (tracks[2]['segmentations'][t] is None) == (t == 1)
    codec, fps, frames = _decode_all(out / 'overlay.mp4')
    assert codec == 'h264' and fps == 12 and len(frames) == 4
    assert frames[0][0].shape == (72, 128, 3)
    assert not [p for p in out.rglob('*') if p.name.startswith('.')]


def test_coco_and_ytvis_round_trip_through_import(tmp_path):
    s = _store(names=['a', 'b', 'c', 'd'])
    assert export(s, tmp_path / 'ex', formats=['coco', 'ytvis'])
    for name in ('annotations.json', 'ytvis.json'):
        ann = read_annotation_file(tmp_path / 'ex' / name)
        assert ann.names == {1: 'cup', 2: 'cat/dog'} and ann.size == (72, 128)
        s2 = _store(names=['a', 'b', 'c', 'd'])
        s2.clear_masks()
        for o in list(s2.objects)[::-1]:
            s2.remove_object(o.id)
        assert load_masks(s2, tmp_path / 'ex' / name) == [0, 1, 2, 3]
        assert np.array_equal(s2.masks, s.masks)
        assert [o.name for o in s2.objects] == ['cup', 'cat/dog']


def test_foreign_coco_polygons_without_track_ids(tmp_path):
    # A COCO file as another tool writes it: polygons, no track ids, frames matched by file name.
    data = {'images': [{'id': 7, 'file_name': 'frames/b.jpg', 'width': 40, 'height': 20}],
            'categories': [{'id': 3, 'name': 'dog'}, {'id': 9, 'name': 'ball'}],
            'annotations': [{'id': 1, 'image_id': 7, 'category_id': 9, 'iscrowd': 0,
                             'segmentation': [[2, 2, 12, 2, 12, 12, 2, 12]]},
                            {'id': 2, 'image_id': 7, 'category_id': 3, 'iscrowd': 0,
                             'segmentation': [[20, 5, 30, 5, 30, 15, 20, 15]]}]}
    p = tmp_path / 'foreign.json'
    p.write_text(json.dumps(data))
    ann = read_annotation_file(p)
    assert list(ann.frames) == ['b'] and ann.names == {1: 'ball', 2: 'dog'}
    lab = ann.frames['b']
    assert lab[7, 7] == 1 and lab[10, 25] == 2 and lab[18, 38] == 0
    s = FrameStore(np.zeros((3, 20, 40, 3), np.uint8), frame_names=['a', 'b', 'c'])
    assert load_masks(s, p) == [1]
    assert s.get_mask(1)[7, 7] == 1 and s.num_objects == 2
    (tmp_path / 'bad.json').write_text('{"images": []}')
    with pytest.raises(UserError, match='not a COCO or YouTube-VIS'):
        read_annotation_file(tmp_path / 'bad.json')


def _vfr_video(path, stamps, size=(48, 64)):
    with video_io.H264Writer(path, size, 30) as w:
        for i, t in enumerate(stamps):
            img = np.zeros(size + (3,), np.uint8)
            img[:, :8 * (i + 1)] = 200
            w.write(img, timestamp=t)


def test_vfr_video_keeps_timestamps_through_export(tmp_path):
    stamps = [0.0, 0.04, 0.1, 0.3, 0.35, 0.9]
    _vfr_video(tmp_path / 'phone.mp4', stamps)
    s = open_frames(tmp_path / 'phone.mp4', resolution=-1)
    assert s.num_frames == 6 and s.load_warnings == []
    assert np.allclose(s.timestamps, stamps, atol=1e-3)
    s.ensure_objects(1)
    s.set_mask(2, np.pad(np.ones((10, 10), np.uint8), ((5, 33), (5, 49))))
    assert export(s, tmp_path / 'out', formats=['mp4', 'coco'])
    codec, _fps, frames = _decode_all(tmp_path / 'out' / 'overlay.mp4')
    assert codec == 'h264' and np.allclose([f[1] for f in frames], stamps, atol=1e-3)
    images = json.loads((tmp_path / 'out' / 'annotations.json').read_text())['images']
    assert np.allclose([im['timestamp'] for im in images], stamps, atol=1e-3)
    assert images[0]['file_name'] == 'phone/00000.jpg'
    for im in images:        # the decoded frames are written where the JSON says
        assert Image.open(tmp_path / 'out' / im['file_name']).size == (64, 48)


def test_coco_images_written_or_taken_from_the_source(tmp_path):
    from pycocotools.coco import COCO
    frames = tmp_path / 'frames'
    frames.mkdir()
    for i in range(3):
        (frames / f'f{i}.png').write_bytes(encode_image(np.full((20, 30, 3), 40 * i, np.uint8)))
    s = open_frames(frames, resolution=-1)
    s.ensure_objects(1)
    s.set_mask(1, np.pad(np.ones((4, 4), np.uint8), ((2, 14), (2, 24))))
    # default: the source files copied next to the JSON, byte for byte
    assert export(s, tmp_path / 'w', formats=['coco', 'ytvis'])
    coco = COCO(str(tmp_path / 'w' / 'annotations.json'))
    names = [im['file_name'] for im in coco.loadImgs(coco.getImgIds())]
    assert names == ['frames/f0.png', 'frames/f1.png', 'frames/f2.png']
    assert all((tmp_path / 'w' / n).read_bytes() == (frames / n.split('/')[1]).read_bytes()
               for n in names)
    assert json.loads((tmp_path / 'w' / 'ytvis.json').read_text())['videos'][0]['file_names'] == names
    # 'source': nothing copied, the JSON names the source images relative to its folder
    assert export_mod.output_paths(s, tmp_path / 's', ['coco'], 'source') == ['annotations.json']
    assert export(s, tmp_path / 's', formats=['coco'], coco_images='source')
    assert sorted(os.listdir(tmp_path / 's')) == ['annotations.json']
    coco = COCO(str(tmp_path / 's' / 'annotations.json'))
    for im in coco.loadImgs(coco.getImgIds()):
        assert im['file_name'] == f'../frames/{im["frame_name"]}.png'
        assert (tmp_path / 's' / im['file_name']).is_file()
    with pytest.raises(UserError, match='unknown COCO image mode'):
        export(s, tmp_path / 'x', formats=['coco'], coco_images='link')
    # a store without a source: the processing frames, upscaled, as JPEG
    mem = _store(t=2)
    assert export(mem, tmp_path / 'm', formats=['coco'])
    assert Image.open(tmp_path / 'm' / 'video' / '00001.jpg').size == (128, 72)


def test_truncated_video_is_reported(tmp_path):
    import cv2
    w = cv2.VideoWriter(str(tmp_path / 'a.avi'), cv2.VideoWriter_fourcc(*'MJPG'), 10, (64, 48))
    rng = np.random.default_rng(0)
    for _ in range(8):
        w.write(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    w.release()
    data = (tmp_path / 'a.avi').read_bytes()
    (tmp_path / 'cut.avi').write_bytes(data[:int(len(data) * 0.7)])
    s = open_frames(tmp_path / 'cut.avi', resolution=-1)
    assert 0 < s.num_frames < 8
    assert len(s.load_warnings) == 1
    assert f'declares 8 frames but {s.num_frames} could be decoded' in s.load_warnings[0]
    assert open_frames(tmp_path / 'a.avi', resolution=-1).load_warnings == []


def test_soft_maps_are_monotone_with_the_labels():
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(3, 12, 16)).astype(np.float32) * 3
    prob = np.exp(logits) / np.exp(logits).sum(0)
    labels = np.argmax(prob, 0).astype(np.uint8)
    edited = labels[0] != 2
    labels[0, :] = 2                              # labels edited after the network ran
    soft = soft_maps(labels, prob, [1, 2])
    assert soft.dtype == np.uint8 and soft.shape == (2, 12, 16)
    assert ((soft > 0) & (soft < 255)).mean() > 0.5   # real probabilities, not the hard mask
    # the consumer's rule gives the labels at every pixel, ties included
    assert np.array_equal(soft_labels(soft, [1, 2]), labels)
    assert (soft[1, 0][edited] == 255).all() and (soft[:, 0][:, ~edited] < 255).any()
    # upsampled to the original size: still the nearest-neighbour labels everywhere
    big_labels = np.kron(labels, np.ones((3, 3), np.uint8))
    big = soft_maps(big_labels, prob, [1, 2])
    assert np.array_equal(soft_labels(big, [1, 2]), big_labels)
    assert np.array_equal(soft_maps(labels, None, [1, 2]), np.stack([labels == 1, labels == 2]) * 255)


def test_soft_maps_agree_with_the_labels_on_many_objects():
    """Four objects, labels = argmax of the probabilities upsampled to the original size (as
    scripts.propagate computes them): comparing against the rounded background channel left
    11 of 19200 pixels where argmax(255 - sum, soft_1..soft_4) gave another label."""
    import cv2
    rng = np.random.default_rng(5)
    logits = rng.normal(size=(5, 30, 40)).astype(np.float32) * 2
    prob = np.exp(logits) / np.exp(logits).sum(0)
    big = cv2.resize(prob.transpose(1, 2, 0), (160, 120), interpolation=cv2.INTER_LINEAR)
    labels = np.argmax(big.transpose(2, 0, 1), 0).astype(np.uint8)
    soft = soft_maps(labels, prob, [1, 2, 3, 4])
    assert ((soft > 0) & (soft < 255)).mean() > 0.9
    stacked = np.concatenate([(255 - soft.astype(int).sum(0))[None], soft.astype(int)])
    assert np.array_equal(np.argmax(stacked, 0), labels)      # numpy: ties to the lower index
    # ties are broken towards the lower index (background first)
    tie = np.array([[[100], [100]], [[100], [0]]], np.uint8)     # (objects, H, W)
    assert soft_labels(tie, [1, 2]).ravel().tolist() == [1, 0]
    assert soft_labels(np.full((2, 1, 1), 85, np.uint8), [1, 2]).item() == 0   # 85 = 255 - 170
    assert soft_labels(np.array([[[128]]], np.uint8), [1]).item() == 1
    assert soft_labels(np.array([[[127]]], np.uint8), [1]).item() == 0


def test_session_exports_the_engines_soft_masks(tmp_path):
    from inference_core.session import Session
    from tests.test_engine import bundled_networks_or_skip, make_clip
    nets = bundled_networks_or_skip()
    frames, gt = make_clip(num_frames=5)
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(1)
    with Session(store, nets) as s:
        s.set_labels(0, gt[0])
        s.propagate(0)
        p = s._soft_probabilities(3)
        assert p is not None and p.shape == (2,) + gt[0].shape
        assert s.export(tmp_path / 'o', ['soft', 'objects'])
        d = export_mod.object_dir_names(store)[1]
        soft = np.array(Image.open(tmp_path / 'o' / 'soft' / d / '00003.png'))
        hard = np.array(Image.open(tmp_path / 'o' / 'objects' / d / '00003.png'))
        assert ((soft > 0) & (soft < 255)).any()
        assert ((soft > 127) == (hard == 255)).mean() > 0.999
        s.set_labels(3, gt[3])                     # edited: only labels remain for frame 3
        assert s._soft_probabilities(3) is None


def test_failure_mid_export_leaves_the_previous_export_untouched(tmp_path, monkeypatch):
    s = _store()
    out = tmp_path / 'out'
    assert export(s, out, formats=ALL)
    before = _tree(out)
    s.set_mask(2, np.zeros((36, 64), np.uint8))
    monkeypatch.setattr(video_io.H264Writer, 'write', full_disk_on_call(video_io.H264Writer.write, 3))
    with pytest.raises(UserError, match='export failed, nothing was replaced .*No space left'):
        export(s, out, formats=ALL, overwrite=True)
    assert _tree(out) == before
    assert not [p for p in out.iterdir() if p.name.startswith('.')]
    monkeypatch.undo()

    monkeypatch.setattr(export_mod, 'write_bytes', full_disk_on_call(atomic.write_bytes, 5))
    with pytest.raises(UserError, match='No space left'):
        export(s, out, formats=ALL, overwrite=True)
    assert _tree(out) == before


def test_unverifiable_video_is_not_moved_into_place(tmp_path, monkeypatch):
    s = _store()
    assert export(s, tmp_path, formats=['mp4'])
    old = (tmp_path / 'overlay.mp4').read_bytes()
    monkeypatch.setattr(video_io, 'count_frames', lambda p: ('h264', 2))
    with pytest.raises(UserError, match='did not verify'):
        export(s, tmp_path, formats=['mp4'], overwrite=True)
    assert (tmp_path / 'overlay.mp4').read_bytes() == old


def test_overwrite_needs_consent(tmp_path):
    s = _store()
    assert export(s, tmp_path, formats=['png'])
    (tmp_path / 'notes.txt').write_text('mine')
    old = _tree(tmp_path)
    s.set_mask(0, np.zeros((36, 64), np.uint8))
    assert export_mod.existing_outputs(s, tmp_path, ['png', 'coco']) == \
        [str(tmp_path / 'masks' / f'{t:05d}.png') for t in range(4)]
    with pytest.raises(UserError, match='4 files would be replaced'):
        export(s, tmp_path, formats=['png'])
    assert _tree(tmp_path) == old
    assert export(s, tmp_path, formats=['png'], overwrite=True)
    assert not np.array(Image.open(tmp_path / 'masks' / '00000.png')).any()
    assert (tmp_path / 'notes.txt').read_text() == 'mine'


def test_refuses_to_write_into_input_folders(tmp_path):
    frames = tmp_path / 'frames'
    frames.mkdir()
    for i in range(2):
        (frames / f'{i:05d}.png').write_bytes(encode_image(np.full((20, 30, 3), 50, np.uint8)))
    masks = tmp_path / 'project' / 'masks'
    masks.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.pad(np.full((5, 5), 255, np.uint8), ((2, 13), (2, 23)))).save(masks / f'{i:05d}.png')
    before = _tree(tmp_path)
    s = open_frames(frames, resolution=-1)
    load_masks(s, masks)
    with pytest.raises(UserError, match='inside an input folder'):
        export(s, frames, formats=['png'], overwrite=True)
    with pytest.raises(UserError, match='would write into the input folder'):
        export(s, tmp_path / 'project', formats=['png', 'mp4'], overwrite=True, inputs=[masks])
    assert _tree(tmp_path) == before
    assert export(s, tmp_path / 'project', formats=['mp4', 'coco'], inputs=[masks])


def test_cancel_leaves_nothing(tmp_path):
    s = _store()
    calls = []

    def cancel_after(k):
        def f():
            calls.append(1)
            return len(calls) > k
        return f
    for fmt in ('mp4', 'png'):
        calls.clear()
        assert export(s, tmp_path, formats=[fmt], should_cancel=cancel_after(2)) is False
        assert os.listdir(tmp_path) == []


def test_files_follow_the_umask(tmp_path):
    s = _store(t=1)
    assert export(s, tmp_path, formats=['png', 'coco', 'mp4'])
    want = 0o666 & ~atomic._UMASK
    for p in ('masks/00000.png', 'annotations.json', 'overlay.mp4'):
        assert (tmp_path / p).stat().st_mode & 0o777 == want, p


def test_names_odd_size_and_source_frames(tmp_path):
    s = _store(t=2, h=15, w=21, orig=(15, 21), names=['img_a', 'img_b'])
    s.set_visible(2, False)
    assert export(s, tmp_path / 'a', formats=['indexed', 'video'], fps=5)
    assert sorted(os.listdir(tmp_path / 'a' / 'masks')) == ['img_a.png', 'img_b.png']
    assert _decode_all(tmp_path / 'a' / 'overlay.mp4')[2][0][0].shape[:2] == (16, 22)
    d = tmp_path / 'src'
    d.mkdir()
    for i in range(2):
        img = np.zeros((64, 96, 3), np.uint8)
        img[:, ::4] = 255                       # fine stripes are lost when downscaled
        (d / f'{i}.png').write_bytes(encode_image(img, '.png'))
    s = open_frames(d, resolution=32)
    assert export(s, tmp_path / 'b', formats=['mp4'])
    fr = _decode_all(tmp_path / 'b' / 'overlay.mp4')[2][0][0]
    assert fr.shape[:2] == (64, 96) and fr[..., 0].std() > 60


def test_unwritable_and_bad_format(tmp_path):
    s = _store()
    f = tmp_path / 'file'
    f.write_text('x')
    with pytest.raises(UserError, match='not a folder'):
        export(s, f, formats=['png'])
    with pytest.raises(UserError, match='not writable'):
        export(s, f / 'sub', formats=['png'])      # parent is a file: fails for root too
    with pytest.raises(UserError, match='unknown export format'):
        export(s, tmp_path / 'o', formats=['gif'])


def test_non_ascii_export(tmp_path):
    s = _store(t=2, names=['первый', '第二'])
    s.rename_object(1, 'tasse à café')
    out = tmp_path / 'экспорт'
    assert export(s, out, formats=ALL)
    assert np.array_equal(np.array(Image.open(out / 'masks' / '第二.png')), s.mask_at_original(1))
    assert (out / 'objects' / 'tasse à café' / 'первый.png').is_file()
    ann = read_annotation_file(out / 'annotations.json')
    assert ann.names[1] == 'tasse à café' and np.array_equal(ann.frames[0], s.mask_at_original(0))
    assert _decode_all(out / 'overlay.mp4')[0] == 'h264'


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
