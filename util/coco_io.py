"""COCO and YouTube-VIS annotation files: build them from label maps, read them back.

RLE encoding and decoding is pycocotools' (the reference implementation the consumers use).

COCO (`annotations.json`, one file per video; what CVAT, FiftyOne, Label Studio and most
training pipelines import):
    images       one per frame: id, file_name, width, height, video, frame_index, timestamp
    categories   one per distinct object name: id, name, supercategory
    annotations  one per object per frame where the object is present: id, image_id,
                 category_id, track_id (= the object id, the same on every frame),
                 segmentation (compressed RLE), bbox [x, y, w, h], area, iscrowd 0
    videos       one entry (id, name, width, height, length, fps): the video the images belong to
YouTube-VIS (`ytvis.json`): videos [id, name, width, height, length, file_names, timestamps],
    categories, annotations one per object: id (= track id), video_id, category_id,
    segmentations / areas / bboxes with one entry per frame (null where the object is absent).

Import (`read_annotation_file`) takes either kind, from this tool or another one, and returns
label maps keyed by frame. Object ids: `track_id` (COCO) or the annotation id (YouTube-VIS)
when they are 1..255; otherwise objects are numbered by category in file order. Where foreign
annotations overlap, the later annotation wins.
"""
import datetime
import json
import os

import numpy as np
from pycocotools import mask as mask_utils

from util.errors import UserError

SUPERCATEGORY = 'object'


# ---------------------------------------------------------------------------- RLE
def encode_rle(mask):
    """Binary (H, W) mask -> COCO compressed RLE {'size': [h, w], 'counts': str}."""
    rle = mask_utils.encode(np.asfortranarray(np.asarray(mask, dtype=np.uint8)))
    rle['counts'] = rle['counts'].decode('ascii')
    return rle


def decode_segmentation(seg, height, width):
    """COCO segmentation (compressed or uncompressed RLE, or polygons) -> (H, W) bool."""
    if isinstance(seg, list):                       # polygons
        rles = mask_utils.frPyObjects(seg, height, width)
        return mask_utils.decode(mask_utils.merge(rles)).astype(bool)
    if isinstance(seg, dict) and isinstance(seg.get('counts'), list):   # uncompressed RLE
        seg = mask_utils.frPyObjects(seg, *seg['size'])
    elif isinstance(seg, dict):
        seg = dict(seg, counts=seg['counts'].encode('ascii') if isinstance(seg['counts'], str)
                   else seg['counts'])
    else:
        raise ValueError('segmentation is neither RLE nor polygons')
    m = mask_utils.decode(seg).astype(bool)
    if m.shape != (height, width):
        raise ValueError(f'segmentation is {m.shape[1]}x{m.shape[0]}, expected {width}x{height}')
    return m


def _bbox_area(rle):
    return [round(float(v), 2) for v in mask_utils.toBbox(rle)], int(mask_utils.area(rle))


# ---------------------------------------------------------------------------- building
def categories_for(objects):
    """(categories list, {object id: category id}): one category per distinct object name."""
    cats, by_name, of_obj = [], {}, {}
    for o in objects:
        name = o.name or f'object {o.id}'
        if name not in by_name:
            by_name[name] = len(cats) + 1
            cats.append({'id': by_name[name], 'name': name, 'supercategory': SUPERCATEGORY})
        of_obj[o.id] = by_name[name]
    return cats, of_obj


def _info(video):
    return {'description': f'masks of {video} (interactive video object segmentation)',
            'date_created': datetime.datetime.now(datetime.timezone.utc).isoformat(timespec='seconds'),
            'version': '1.0'}


class _Builder:
    """One video's objects and categories; subclasses add frames with add_frame()."""

    def __init__(self, video, size, objects, fps=None):
        self.video, (self.h, self.w) = video, (int(size[0]), int(size[1]))
        self.objects = list(objects)
        self.categories, self.cat_of = categories_for(self.objects)
        self.fps = fps


class CocoBuilder(_Builder):
    """Accumulates per-frame label maps into a COCO dict (one video)."""

    def __init__(self, video, size, objects, fps=None):
        super().__init__(video, size, objects, fps)
        self.images, self.annotations = [], []

    def add_frame(self, t, name, file_name, labels, timestamp=None):
        image_id = len(self.images) + 1
        self.images.append({'id': image_id, 'file_name': file_name, 'width': self.w,
                            'height': self.h, 'video': self.video, 'video_id': 1,
                            'frame_index': int(t), 'frame_name': name, 'timestamp': timestamp})
        present = set(np.unique(labels).tolist())
        for o in self.objects:
            if o.id not in present:
                continue
            rle = encode_rle(labels == o.id)
            bbox, area = _bbox_area(rle)
            self.annotations.append({'id': len(self.annotations) + 1, 'image_id': image_id,
                                     'category_id': self.cat_of[o.id], 'track_id': o.id,
                                     'segmentation': rle, 'bbox': bbox, 'area': area,
                                     'iscrowd': 0})

    def to_dict(self):
        return {'info': _info(self.video), 'licenses': [],
                'videos': [{'id': 1, 'name': self.video, 'width': self.w, 'height': self.h,
                            'length': len(self.images), 'fps': self.fps}],
                'images': self.images, 'categories': self.categories,
                'annotations': self.annotations}


class YtvisBuilder(_Builder):
    """Accumulates per-frame label maps into a YouTube-VIS dict (one video)."""

    def __init__(self, video, size, objects, fps=None):
        super().__init__(video, size, objects, fps)
        self.file_names, self.timestamps = [], []
        self.tracks = {o.id: {'segmentations': [], 'areas': [], 'bboxes': []} for o in self.objects}

    def add_frame(self, t, name, file_name, labels, timestamp=None):
        self.file_names.append(file_name)
        self.timestamps.append(timestamp)
        present = set(np.unique(labels).tolist())
        for o in self.objects:
            tr = self.tracks[o.id]
            if o.id not in present:
                tr['segmentations'].append(None)
                tr['areas'].append(None)
                tr['bboxes'].append(None)
                continue
            rle = encode_rle(labels == o.id)
            bbox, area = _bbox_area(rle)
            tr['segmentations'].append(rle)
            tr['areas'].append(area)
            tr['bboxes'].append(bbox)

    def to_dict(self):
        n = len(self.file_names)
        anns = [{'id': o.id, 'video_id': 1, 'category_id': self.cat_of[o.id], 'iscrowd': 0,
                 'height': self.h, 'width': self.w, 'length': 1, **self.tracks[o.id]}
                for o in self.objects]
        return {'info': _info(self.video), 'licenses': [],
                'videos': [{'id': 1, 'name': self.video, 'width': self.w, 'height': self.h,
                            'length': n, 'fps': self.fps, 'file_names': self.file_names,
                            'timestamps': self.timestamps}],
                'categories': self.categories, 'annotations': anns}


# ---------------------------------------------------------------------------- reading
class AnnotationFile:
    """What an annotation file holds, ready for a store: `frames` {frame key: (H, W) uint8
    labels}, where a key is a frame index (int) when the file gives one, else a frame name
    (file stem); `names` {object id: name}; `size` (h, w); `kind` 'coco' | 'ytvis'."""

    def __init__(self, kind, size, frames, names):
        self.kind, self.size, self.frames, self.names = kind, size, frames, names


def is_annotation_file(path):
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).lower().endswith('.json') \
        and os.path.isfile(path)


def read_annotation_file(path, video=None):
    """Read a COCO or YouTube-VIS JSON (see the module docstring). `video` picks one video of a
    multi-video file by name (default: the only one / the first one). Raises UserError with a
    one-line message when the file is not a readable annotation file."""
    path = os.fspath(path)
    try:
        with open(path, encoding='utf-8') as f:
            data = json.load(f)
    except FileNotFoundError:
        raise UserError(f'annotation file not found: {path}') from None
    except (OSError, UnicodeError, json.JSONDecodeError) as e:
        raise UserError(f'cannot read annotation file {path}: {e.__class__.__name__}') from None
    if not isinstance(data, dict) or not isinstance(data.get('annotations'), list):
        raise UserError(f'not a COCO or YouTube-VIS annotation file (no "annotations" list): {path}')
    anns = data['annotations']
    try:
        if 'images' in data or any('segmentation' in a for a in anns):
            return _read_coco(data, video)
        return _read_ytvis(data, video)
    except UserError:
        raise
    except (KeyError, TypeError, ValueError, IndexError) as e:
        raise UserError(f'malformed annotation file {path}: {e.__class__.__name__}: {e}') from None


def _object_ids(anns, track_key):
    """{annotation index: object id}, {object id: category id}."""
    tracks = [a.get(track_key) for a in anns]
    if all(isinstance(t, int) and 1 <= t <= 255 for t in tracks):
        ids = tracks
    else:
        order = {}
        for a in anns:
            order.setdefault(a['category_id'], len(order) + 1)
        if len(order) > 255:
            raise UserError('annotation file has more than 255 objects')
        ids = [order[a['category_id']] for a in anns]
    cat_of = {}
    for a, i in zip(anns, ids):
        cat_of.setdefault(i, a.get('category_id'))
    return ids, cat_of


def _names(data, cat_of):
    cat_names = {c['id']: c.get('name', '') for c in data.get('categories', [])}
    return {i: cat_names.get(c, '') for i, c in cat_of.items()}


def _pick_video(videos, video):
    if not videos:
        return None
    if video is None:
        return videos[0]
    for v in videos:
        if v.get('name') == video:
            return v
    raise UserError(f'video {video!r} is not in the annotation file')


def _read_coco(data, video):
    images = data.get('images', [])
    v = _pick_video(data.get('videos') or [], video)
    if v is not None and any('video_id' in im for im in images):
        images = [im for im in images if im.get('video_id') == v['id']]
    if not images:
        raise UserError('annotation file has no images')
    by_id = {im['id']: im for im in images}
    anns = [a for a in data['annotations'] if a.get('image_id') in by_id and a.get('segmentation')]
    ids, cat_of = _object_ids(anns, 'track_id')
    frames, size = {}, None
    for im in images:
        key = im['frame_index'] if isinstance(im.get('frame_index'), int) else \
            os.path.splitext(os.path.basename(im.get('file_name', '')))[0]
        h, w = int(im['height']), int(im['width'])
        size = size or (h, w)
        frames[key] = np.zeros((h, w), np.uint8)
        by_id[im['id']]['_key'] = key
    for a, obj in zip(anns, ids):
        im = by_id[a['image_id']]
        lab = frames[im['_key']]
        lab[decode_segmentation(a['segmentation'], *lab.shape)] = obj
    return AnnotationFile('coco', size, frames, _names(data, cat_of))


def _read_ytvis(data, video):
    v = _pick_video(data.get('videos') or [], video)
    if v is None:
        raise UserError('YouTube-VIS file has no videos')
    h, w = int(v['height']), int(v['width'])
    n = int(v.get('length') or len(v.get('file_names', [])))
    anns = [a for a in data['annotations'] if a.get('video_id') == v['id']]
    ids, cat_of = _object_ids(anns, 'id')
    frames = {t: np.zeros((h, w), np.uint8) for t in range(n)}
    for a, obj in zip(anns, ids):
        segs = a.get('segmentations') or []
        if len(segs) != n:
            raise UserError(f'YouTube-VIS annotation {a.get("id")} has {len(segs)} '
                            f'segmentations for {n} frames')
        for t, seg in enumerate(segs):
            if seg:
                frames[t][decode_segmentation(seg, h, w)] = obj
    return AnnotationFile('ytvis', (h, w), frames, _names(data, cat_of))
