"""scripts.propagate --export: every format the GUI exports, written by the CLI for a video and
for a dataset, each output opened by the tool that consumes it (pycocotools for COCO, PyAV for
the review video, PIL for the PNGs), resumed like the PNGs, and bad values refused in one line.

The networks are the official architectures with seeded random weights (tests/
test_propagate_cli.py): the masks are meaningless but hold several objects with real soft
probabilities, which is what the consistency checks need.
"""
import importlib.util
import json
import os
import shutil

import numpy as np
import pytest
from PIL import Image

from scripts import propagate
from tests.test_propagate_cli import make_davis, nets  # noqa: F401 (fixture)
from tests.test_user_errors import cli, one_line_error
from util.errors import UserError
from util.export import soft_labels

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALL = 'png,coco,ytvis,soft,mp4,objects'
N, HEIGHT, WIDTH = 5, 120, 214


def run(args, nets):
    return propagate.main([*map(str, args), '--quiet'], networks=nets)


@pytest.fixture(scope='module')
def example(tmp_path_factory):
    """The example clip (example/make_example.py, 2 objects) as an H.264 video and as frames,
    with its first-frame mask."""
    spec = importlib.util.spec_from_file_location(
        'make_example', os.path.join(REPO, 'example', 'make_example.py'))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    out = tmp_path_factory.mktemp('example')
    mod.make_example(num_frames=N, height=HEIGHT, width=WIDTH, out=str(out))
    from util.frames_io import list_image_files, read_image
    from util.video_io import H264Writer
    with H264Writer(out / 'clip.mp4', (HEIGHT, WIDTH), 10) as w:
        for f in list_image_files(out / 'clip'):
            w.write(read_image(f))
    return out


def _labels(path):
    with Image.open(path) as im:
        assert im.mode == 'P'
        return np.array(im)


def _check_every_format(out, video, names, objects=('object 1', 'object 2')):
    """Each output read by its consumer agrees with the PNGs."""
    import av
    from pycocotools.coco import COCO
    from util.coco_io import decode_segmentation
    pngs = {n: _labels(out / f'{n}.png') for n in names}
    assert all(p.shape == (HEIGHT, WIDTH) for p in pngs.values())
    assert len(np.unique(np.concatenate([p.ravel() for p in pngs.values()]))) == 3

    coco = COCO(str(out / 'annotations.json'))
    images = coco.loadImgs(coco.getImgIds())
    assert [im['frame_name'] for im in images] == names
    for im in images:
        # every file_name exists (relative to the JSON's folder) and is the frame's size
        with Image.open(out / im['file_name']) as img:
            assert img.size == (im['width'], im['height']) == (WIDTH, HEIGHT)
        lab = np.zeros((HEIGHT, WIDTH), np.uint8)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=[im['id']])):
            lab[coco.annToMask(a).astype(bool)] = a['track_id']
        assert np.array_equal(lab, pngs[im['frame_name']])
    assert {im['file_name'].split('/')[0] for im in images} == {video}

    ytvis = json.loads((out / 'ytvis.json').read_text())
    files = ytvis['videos'][0]['file_names']
    assert files == [im['file_name'] for im in images]
    for t, n in enumerate(names):
        lab = np.zeros((HEIGHT, WIDTH), np.uint8)
        for a in ytvis['annotations']:
            if a['segmentations'][t] is not None:
                lab[decode_segmentation(a['segmentations'][t], HEIGHT, WIDTH)] = a['id']
        assert np.array_equal(lab, pngs[n])

    for n in names:
        soft = np.stack([np.array(Image.open(out / 'soft' / o / f'{n}.png')) for o in objects])
        # the consumer's rule (README, Exports) gives the PNG's label at every pixel
        assert np.array_equal(soft_labels(soft, [1, 2]), pngs[n])
        for i, o in enumerate(objects, 1):
            b = np.array(Image.open(out / 'objects' / o / f'{n}.png'))
            assert np.array_equal(b == 255, pngs[n] == i)
    assert ((soft > 0) & (soft < 255)).any()        # real probabilities, not just hard masks

    with av.open(str(out / 'overlay.mp4')) as c:
        st = c.streams.video[0]
        frames = [f.to_ndarray(format='rgb24') for f in c.decode(st)]
        assert st.codec_context.name == 'h264' and st.codec_context.pix_fmt == 'yuv420p'
    assert len(frames) == len(names) and frames[0].shape == (HEIGHT, WIDTH, 3)


def test_help_lists_export():
    text = propagate.build_parser().format_help()
    assert '--export' in text and '--coco-images' in text


def test_video_every_format_resume_and_overwrite(tmp_path, nets, example):  # noqa: F811
    out = tmp_path / 'out'
    args = ['--input', example / 'clip.mp4', '--masks', example / 'masks_first',
            '--output', out, '--resolution', 48, '--export', ALL]
    assert run(args, nets) == 0
    names = [f'{t:05d}' for t in range(N)]
    _check_every_format(out, 'clip', names)
    marker = json.loads((out / propagate.MARKER).read_text())
    assert marker['settings']['export'] == ['png', 'coco', 'ytvis', 'soft', 'mp4', 'objects']
    on_disk = sorted(os.path.relpath(os.path.join(d, f), out).replace(os.sep, '/')
                     for d, _, fs in os.walk(out) for f in fs if f != propagate.MARKER)
    assert sorted(marker['files']) == on_disk
    # a complete output is skipped
    stamp = os.path.getmtime(out / 'soft' / 'object 1' / '00002.png')
    assert run(args, nets) == 0
    assert os.path.getmtime(out / 'soft' / 'object 1' / '00002.png') == stamp
    # another list of formats is another run: refused, then redone with --overwrite, which
    # removes what the new run does not write and keeps the user's files
    (out / 'soft' / 'notes.txt').write_text('mine')
    few = [a if a != ALL else 'png,coco' for a in args]
    with pytest.raises(UserError, match='export'):
        run(few, nets)
    assert run([*few, '--overwrite'], nets) == 0
    assert not (out / 'overlay.mp4').exists() and not (out / 'objects').exists()
    assert sorted(os.listdir(out / 'soft')) == ['notes.txt']
    assert (out / 'clip' / '00004.jpg').is_file() and (out / 'annotations.json').is_file()


def test_dataset_exports_and_source_images(tmp_path, nets):  # noqa: F811
    root = tmp_path / 'DAVIS'
    make_davis(root, ('a', 'b'), n=3)
    out = tmp_path / 'res'
    assert run(['--dataset', root, '--output', out, '--resolution', -1,
                '--export', 'png,coco', '--coco-images', 'source'], nets) == 0
    from pycocotools.coco import COCO
    for seq in 'ab':
        assert sorted(os.listdir(out / seq)) == ['00000.png', '00001.png', '00002.png',
                                                 'annotations.json']
        coco = COCO(str(out / seq / 'annotations.json'))
        for im in coco.loadImgs(coco.getImgIds()):
            # the JSON names the dataset's own frames, relative to its folder
            src = os.path.normpath(os.path.join(out / seq, im['file_name']))
            assert src == str(root / 'JPEGImages' / '480p' / seq / f'{im["frame_name"]}.jpg')
            for a in coco.loadAnns(coco.getAnnIds(imgIds=[im['id']])):
                lab = _labels(out / seq / f'{im["frame_name"]}.png')
                assert np.array_equal(coco.annToMask(a).astype(bool), lab == a['track_id'])
    # resumable: a finished sequence is skipped, a missing one redone
    shutil.rmtree(out / 'b')
    stamp = os.path.getmtime(out / 'a' / 'annotations.json')
    assert run(['--dataset', root, '--output', out, '--resolution', -1,
                '--export', 'png,coco', '--coco-images', 'source'], nets) == 0
    assert os.path.getmtime(out / 'a' / 'annotations.json') == stamp
    assert (out / 'b' / 'annotations.json').is_file()


def test_exports_without_pngs_on_image_frames(tmp_path, nets, example):  # noqa: F811
    out = tmp_path / 'o'
    assert run(['--input', example / 'clip', '--masks', example / 'masks_first', '--output',
                out, '--resolution', 48, '--export', 'coco,soft'], nets) == 0
    assert not [n for n in os.listdir(out) if n.endswith('.png')]
    from pycocotools.coco import COCO
    coco = COCO(str(out / 'annotations.json'))
    for im in coco.loadImgs(coco.getImgIds()):
        # the source's JPEG files, copied byte for byte next to the JSON
        assert im['file_name'] == f'clip/{im["frame_name"]}.jpg'
        assert (out / im['file_name']).read_bytes() == \
            (example / 'clip' / f'{im["frame_name"]}.jpg').read_bytes()
        lab = np.zeros((HEIGHT, WIDTH), np.uint8)
        for a in coco.loadAnns(coco.getAnnIds(imgIds=[im['id']])):
            lab[coco.annToMask(a).astype(bool)] = a['track_id']
        soft = np.stack([np.array(Image.open(out / 'soft' / o / f'{im["frame_name"]}.png'))
                         for o in ('object 1', 'object 2')])
        assert np.array_equal(soft_labels(soft, [1, 2]), lab)


def test_ray_worker_passes_the_formats(tmp_path, nets, example):  # noqa: F811
    """The Ray actor's method (called here without Ray) writes the formats too."""
    import argparse
    from scripts.batch_ray import SequenceWorker
    w = SequenceWorker.__new__(SequenceWorker)
    w.args = argparse.Namespace(resolution=48, exports=['png', 'coco', 'mp4'], coco_images='write')
    w.runner = propagate.Runner(nets, propagate.build_parser().parse_args(
        ['--input', 'x', '--masks', 'y', '--output', 'z']))
    masks = [str(example / 'masks_first' / '00000.png')]
    status, info = w.process('clip', str(example / 'clip.mp4'), masks, 'first', str(tmp_path))
    assert status == 'ok', info
    assert {'annotations.json', 'overlay.mp4', 'clip/00000.jpg', '00000.png'} <= set(info['files'])
    assert all((tmp_path / f).is_file() for f in info['files'])


@pytest.mark.parametrize('value, part', [
    ('png,gif', "unknown export format 'gif'"),
    ('', 'comma-separated list'),
    ('png,,coco', 'comma-separated list'),
])
def test_bad_export_values_are_one_line_errors(tmp_path, nets, capsys, value, part):  # noqa: F811
    args = ['--input', tmp_path, '--masks', tmp_path, '--output', tmp_path / 'o',
            '--export', value, '--quiet']
    code, err = cli(lambda: propagate.main([*map(str, args)], networks=nets), capsys)
    assert code == 2
    one_line_error(err, '--export', part)
    assert not (tmp_path / 'o').exists()


def test_fiftyone_coco_importer_opens_the_export(tmp_path, nets, example):  # noqa: F811
    """FiftyOne (optional, not a requirement) reads the COCO export of a video as-is: every
    image it names is found and its masks are the PNGs."""
    fouc = pytest.importorskip('fiftyone.utils.coco')
    out = tmp_path / 'out'
    assert run(['--input', example / 'clip.mp4', '--masks', example / 'masks_first',
                '--output', out, '--resolution', 48, '--export', 'png,coco'], nets) == 0
    imp = fouc.COCODetectionDatasetImporter(data_path=str(out), labels_path=str(out / 'annotations.json'),
                                            label_types='segmentations', extra_attrs=True)
    n = 0
    with imp:
        for filepath, _metadata, label in imp:
            assert os.path.isfile(filepath)
            png = _labels(out / (os.path.splitext(os.path.basename(filepath))[0] + '.png'))
            lab = np.zeros_like(png)
            for d in label.detections:
                x, y = d.bounding_box[:2]
                x0, y0 = int(round(x * WIDTH)), int(round(y * HEIGHT))
                m = d.mask.astype(bool)
                lab[y0:y0 + m.shape[0], x0:x0 + m.shape[1]][m] = int(d['track_id'])
            assert np.array_equal(lab, png)
            n += 1
    assert n == N


def test_outputs_are_never_written_through_a_link(tmp_path, nets):  # noqa: F811
    root = tmp_path / 'DAVIS'
    make_davis(root, ('a',), n=2)
    out = tmp_path / 'res'
    args = ['--dataset', root, '--output', out, '--resolution', -1, '--export', 'png,soft']
    assert run(args, nets) == 0
    elsewhere = tmp_path / 'elsewhere'
    elsewhere.mkdir()
    shutil.rmtree(out / 'a' / 'soft')
    os.symlink(elsewhere, out / 'a' / 'soft')
    with pytest.raises(UserError, match='in the way of the output soft/'):
        run([*args, '--overwrite'], nets)
    assert os.listdir(elsewhere) == []
