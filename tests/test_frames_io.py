"""Loading videos and image folders into a FrameStore."""
import os

import cv2
import numpy as np
import pytest

from inference_core.store_io import open_frames
from util.errors import UserError
from util.frames_io import encode_image, list_image_files, natural_key, processing_size, read_image


def _write_img(path, img, ext=None):
    ext = ext or os.path.splitext(str(path))[1]
    with open(path, 'wb') as f:
        f.write(encode_image(img, ext))


def _grad_frame(i, h, w):
    """A smooth frame (compresses well, survives JPEG/mp4v) whose mean encodes i."""
    y, x = np.mgrid[0:h, 0:w]
    base = np.stack([x * 255 // max(w - 1, 1), y * 255 // max(h - 1, 1), np.zeros_like(x)], -1)
    base[..., 2] = 20 + 10 * i
    return base.astype(np.uint8)


def _write_video(path, n, h, w, fps=10):
    vw = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*'mp4v'), fps, (w, h))
    assert vw.isOpened()
    for i in range(n):
        vw.write(cv2.cvtColor(_grad_frame(i, h, w), cv2.COLOR_RGB2BGR))
    vw.release()


def test_natural_sort(tmp_path):
    for n in ['frame10.JPG', 'frame2.png', 'frame1.jpeg', 'Frame3.bmp', 'frame4.webp',
              'notes.txt', '.hidden.jpg']:
        if n.endswith('.txt'):
            (tmp_path / n).write_text('x')
        else:
            _write_img(tmp_path / n, np.zeros((8, 8, 3), np.uint8))
    names = [os.path.basename(f) for f in list_image_files(tmp_path)]
    assert names == ['frame1.jpeg', 'frame2.png', 'Frame3.bmp', 'frame4.webp', 'frame10.JPG']
    assert sorted(['a10', 'a9', 'a1'], key=natural_key) == ['a1', 'a9', 'a10']


def test_folder_loading_order_and_resize(tmp_path):
    h, w = 90, 160
    for i in [1, 2, 10, 11]:
        _write_img(tmp_path / f'f{i}.png', _grad_frame(i, h, w))
    s = open_frames(tmp_path, resolution=45, storage='memory')
    assert s.frame_names == ['f1', 'f2', 'f10', 'f11']
    assert (s.height, s.width, s.orig_height, s.orig_width) == (45, 80, 90, 160)
    blue = [int(s.frame(t)[..., 2].mean()) for t in range(4)]
    assert blue == [30, 40, 120, 130]            # natural order: 1, 2, 10, 11
    assert s.source == str(tmp_path)
    full = open_frames(tmp_path, resolution=-1)
    assert np.array_equal(full.frame(2), _grad_frame(10, h, w))
    up = open_frames(tmp_path, resolution=180)    # enlarging works too
    assert (up.height, up.width) == (180, 320)


@pytest.mark.parametrize('storage', ['memory', 'disk'])
def test_video_loading(tmp_path, storage):
    _write_video(tmp_path / 'clip.mp4', 12, 120, 208, fps=10)
    seen = []
    s = open_frames(tmp_path / 'clip.mp4', resolution=60, storage=storage,
                    progress=lambda d, t: seen.append((d, t)))
    assert s.num_frames == 12 and s.storage == storage
    assert (s.height, s.width, s.orig_height, s.orig_width) == (60, 104, 120, 208)
    assert s.frame_names[0] == '00000' and s.frame_names[-1] == '00011'
    assert s.fps == pytest.approx(10)
    means = [s.frame(t)[..., 2].mean() for t in range(12)]
    assert np.all(np.diff(means) > 5)             # frames in order
    assert seen[-1] == (12, 12)


def test_cancel_returns_none(tmp_path):
    _write_video(tmp_path / 'clip.mp4', 8, 32, 32)
    assert open_frames(tmp_path / 'clip.mp4', should_cancel=lambda: True) is None


def test_processing_size():
    assert processing_size(1080, 1920, 480) == (480, 853)
    assert processing_size(1920, 1080, 480) == (853, 480)
    assert processing_size(480, 854, 480) == (480, 854)
    assert processing_size(7, 9, -1) == (7, 9)


def test_non_ascii_paths(tmp_path):
    d = tmp_path / 'vidéo_视频'
    d.mkdir()
    for i in range(3):
        _write_img(d / f'кадр{i}.jpg', _grad_frame(i, 40, 60))
    s = open_frames(d, resolution=-1)
    assert s.num_frames == 3 and s.frame_names[1] == 'кадр1'
    _write_video(d / 'клип.mp4', 5, 32, 48)
    assert open_frames(d / 'клип.mp4', resolution=-1).num_frames == 5
    assert read_image(d / 'кадр0.jpg').shape == (40, 60, 3)


def test_bad_inputs(tmp_path):
    with pytest.raises(UserError, match='not found'):
        open_frames(tmp_path / 'missing')
    (tmp_path / 'empty').mkdir()
    with pytest.raises(UserError, match='no images'):
        open_frames(tmp_path / 'empty')
    (tmp_path / 'junk.mp4').write_bytes(b'this is not a video' * 100)
    with pytest.raises(UserError, match='video'):
        open_frames(tmp_path / 'junk.mp4')
    bad = tmp_path / 'corrupt'
    bad.mkdir()
    _write_img(bad / '0.jpg', np.zeros((8, 8, 3), np.uint8))
    (bad / '1.jpg').write_bytes(b'\xff\xd8garbage')
    with pytest.raises(UserError, match='decode'):
        open_frames(bad)
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    _write_img(mixed / '0.png', np.zeros((8, 8, 3), np.uint8))
    _write_img(mixed / '1.png', np.zeros((8, 10, 3), np.uint8))
    with pytest.raises(UserError, match='different sizes'):
        open_frames(mixed, storage='disk')
    dup = tmp_path / 'dup'
    dup.mkdir()
    _write_img(dup / 'a.png', np.zeros((8, 8, 3), np.uint8))
    _write_img(dup / 'a.jpg', np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(UserError, match='share the name'):
        open_frames(dup)
    with pytest.raises(UserError, match='resolution'):
        open_frames(mixed, resolution=0)
    with pytest.raises(UserError, match='storage'):
        open_frames(mixed, storage='ram')


def test_mixed_sizes_disk_leaves_no_tempdir(tmp_path):
    import glob
    import tempfile
    before = set(glob.glob(os.path.join(tempfile.gettempdir(), 'ivos_store_*')))
    mixed = tmp_path / 'mixed'
    mixed.mkdir()
    _write_img(mixed / '0.png', np.zeros((8, 8, 3), np.uint8))
    _write_img(mixed / '1.png', np.zeros((8, 10, 3), np.uint8))
    with pytest.raises(UserError):
        open_frames(mixed, storage='disk')
    assert set(glob.glob(os.path.join(tempfile.gettempdir(), 'ivos_store_*'))) <= before


def test_single_image_and_grey_images(tmp_path):
    _write_img(tmp_path / 'g.png', np.full((10, 12), 77, np.uint8))
    s = open_frames(tmp_path / 'g.png', resolution=-1)
    assert s.num_frames == 1 and s.frame(0).shape == (10, 12, 3) and (s.frame(0) == 77).all()


def test_davis_video_folder(davis16):
    v = davis16 / 'videos' / 'dog-agility.mp4'       # the shortest sequence (25 frames)
    s = open_frames(v, resolution=240)
    n_masks = len(list((davis16 / 'masks' / 'dog-agility').glob('*.png')))
    assert s.num_frames == n_masks and (s.height, s.width) == (240, 427)
    assert (s.orig_height, s.orig_width) == (480, 854)


def test_make_example_small(tmp_path):
    import importlib.util
    from inference_core.store_io import load_masks
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    spec = importlib.util.spec_from_file_location('make_example', os.path.join(repo, 'example', 'make_example.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    assert mod.make_example(6, 120, 214, out=str(tmp_path)) is True
    assert mod.make_example(6, 120, 214, out=str(tmp_path)) is False     # idempotent
    s = open_frames(tmp_path / 'clip', resolution=-1)
    assert (s.num_frames, s.height, s.width) == (6, 120, 214)
    assert load_masks(s, tmp_path / 'masks') == list(range(6)) and s.num_objects == 2
    assert load_masks(s, tmp_path / 'masks_first') == [0]
    m = s.get_mask(0)
    for k in (1, 2):   # each object covers a real area and differs in colour from the background
        assert (m == k).sum() > 500
        assert np.abs(s.frame(0)[m == k].mean(0) - s.frame(0)[m == 0].mean(0)).max() > 30
    # deterministic
    a = read_image(tmp_path / 'clip' / '00003.jpg')
    assert mod.make_example(6, 120, 214, out=str(tmp_path), force=True)
    assert np.array_equal(a, read_image(tmp_path / 'clip' / '00003.jpg'))
