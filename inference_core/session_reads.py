"""Session mixin: read-only views of the open video (sizes, objects, masks, probabilities,
confidence) and exports. Reads are snapshots taken under the store's lock: safe while a
propagation writes."""
import os

import numpy as np

from inference_core.padding import unpad


class ReadsMixin:
    @property
    def num_frames(self):
        return self.store.num_frames

    @property
    def num_objects(self):
        return self.store.num_objects

    @property
    def objects(self):
        """The objects, as a list of copies (ObjectInfo: id, name, color, visible)."""
        from inference_core.store import ObjectInfo
        return [ObjectInfo(i, n, c, v) for i, n, c, v in self.store.objects_snapshot()]

    def get_object(self, obj_id):
        """ObjectInfo (a copy) of one object."""
        return self.objects[self._check_object(obj_id) - 1]

    def colors(self):
        """(256, 3) uint8 colour table indexed by object id (0 black)."""
        return self.store.colors()

    @property
    def height(self):
        """Processing height (frames and label maps)."""
        return self.store.height

    @property
    def width(self):
        return self.store.width

    @property
    def orig_height(self):
        """Height of the original video (exports are written at the original size)."""
        return self.store.orig_height

    @property
    def orig_width(self):
        return self.store.orig_width

    @property
    def source(self):
        """The video file or image folder opened ('' when built from frames)."""
        return self.store.source

    @property
    def frame_names(self):
        """Per-frame names used for exported files."""
        return list(self.store.frame_names)

    @property
    def fps(self):
        return self.store.fps

    @property
    def timestamps(self):
        """Presentation time of each frame in seconds from the start of the video stream (a
        list of floats), as decoded from a video file; None for image folders,
        frames built in memory, and videos whose frames do not all carry a timestamp. The
        review video and the COCO / YouTube-VIS exports use these times."""
        ts = self.store.timestamps
        return None if ts is None else [float(t) for t in ts]

    @property
    def storage(self):
        """'memory' or 'disk': where the frames and masks are kept."""
        return self.store.storage

    @property
    def edited_frames(self):
        """Frames a person edited (sorted; a snapshot taken under the store's lock)."""
        return self.store.edited_snapshot()

    def frames_with_masks(self):
        """(T,) bool: which frames hold any object pixel (kept up to date on every write)."""
        return self.store.nonempty_frames()

    def revision(self, frame):
        """A counter bumped at every change of the frame's labels (compare instead of
        comparing label maps)."""
        return self.store.revision(self._check_frame(frame))

    def label_at(self, frame, x, y):
        """Object id at pixel (x, y) of a frame (0 outside the frame)."""
        t = self._check_frame(frame)
        if not (0 <= x < self.store.width and 0 <= y < self.store.height):
            return 0
        return int(self.store.get_mask(t)[int(y), int(x)])

    def mask_at_original(self, frame):
        """Label map of a frame at the original video size (nearest neighbour)."""
        return self.store.mask_at_original(self._check_frame(frame))

    @property
    def interacted_frames(self):
        """Frames the person interacted with (committed to memory or pending), sorted."""
        return sorted(self.engine.interacted | self._pending)

    @property
    def pending_frames(self):
        """Interacted frames not yet committed to the engine (they are, on the next propagate)."""
        return sorted(self._pending)

    @property
    def busy(self):
        """True while a propagation (or another edit) is running."""
        return self._run_lock.locked()

    @property
    def active_clicks(self):
        """(frame, obj_id, [(x, y, positive), ...]): the clicks in effect that the next click on
        that frame and object continues (after undo/redo too), or None."""
        cs, ctrl = self._click_state, self._click
        if cs is None or ctrl is None or not ctrl.num_clicks:
            return None
        return cs.key[0], cs.key[1], list(ctrl.clicks)

    def frame(self, t):
        """Frame t, (H, W, 3) uint8 RGB at processing size, read-only."""
        return self.store.frame(self._check_frame(t))

    def get_mask(self, frame):
        """Label map (H, W) uint8 of a frame (a copy; safe during propagation)."""
        return self.store.get_mask(self._check_frame(frame))

    def frame_confidence(self):
        """(T,) float: how sure the propagation is of each frame, in [0, 1] (1 for frames a
        person interacted with; NaN where nothing was propagated or the labels were edited
        since). See inference_core/confidence.py."""
        c = np.full(self.store.num_frames, np.nan)
        for t, v in list(self.engine.confidence.items()):
            if 0 <= t < len(c):
                c[t] = v
        for t in self.interacted_frames:
            c[t] = 1.0
        return c

    def suggest_frame(self):
        """The frame to check next: the least confident propagated frame that no one has
        interacted with yet, or None (nothing propagated)."""
        from inference_core.confidence import suggest_frame
        return suggest_frame(self.frame_confidence(), exclude=self.interacted_frames)

    @property
    def peak_memory_frames(self):
        """Most frames the propagation memory held at once (working + interacted frames)."""
        return self.engine.peak_memory_frames

    @property
    def load_warnings(self):
        """One-line notes from loading the video (e.g. a truncated file)."""
        return list(self.store.load_warnings)

    def soft_probabilities(self, frame):
        """Soft probabilities of a frame, float32 (K+1, H, W) with background first, or None
        where only labels exist. They come from the last scribble/click on the frame (while its
        labels still match) or from the propagation that wrote the frame."""
        t = self._check_frame(frame)
        k = self.store.num_objects
        soft = self._valid_soft(t)
        if soft is not None:
            p = soft
        elif t in self._pending:
            p = None         # labels set since the engine last wrote the frame (paint, load ...)
        else:
            p = self.engine.cached_prob(t)
            if p is not None and p.shape[0] != k + 1:
                p = None
        return None if p is None else p[:, 0].float().cpu().numpy()

    def probabilities(self, frame):
        """float32 (K+1, H, W) probabilities the propagation holds for a frame (background
        first; the one-hot of the labels where it holds no soft result; zero channels for
        objects added since). For CLIs that average or post-process passes."""
        t = self._check_frame(frame)
        p = unpad(self.engine.prob(t), self.engine.pad)[:, 0].float().numpy()
        k = self.store.num_objects
        if p.shape[0] < k + 1:
            p = np.concatenate([p, np.zeros((k + 1 - p.shape[0],) + p.shape[1:], np.float32)])
        return p

    def export(self, out_dir, formats=('png',), frames=None, fps=None, alpha=0.5, progress=None,
               should_cancel=None, overwrite=False, inputs=(), coco_images='write', labels=None,
               soft=None):
        """Export masks at the original resolution (formats and guarantees: util.export): soft
        masks use soft_probabilities. coco_images: 'write' the frames that the COCO /
        YouTube-VIS files name next to them, or 'source' (an image folder: point at its files).
        labels(t) -> (orig_height, orig_width) uint8 and soft(t) -> (K+1, h, w) probabilities
        export other label maps and probabilities of this video instead of the session's (a
        CLI that computed them at full resolution or averaged several runs).
        Returns True when complete, False when cancelled."""
        from util.export import export
        self._check_open()            # a closed session: UserError, and no folder is created
        store = self.store
        if labels is not None:
            from inference_core.store_io import LabelView
            store = LabelView(self.store, labels)
        return export(store, out_dir, formats=formats, frames=frames, fps=fps, alpha=alpha,
                      progress=progress, should_cancel=should_cancel, overwrite=overwrite,
                      inputs=inputs, soft=soft or self.soft_probabilities, coco_images=coco_images)

    def export_paths(self, formats=('png',), coco_images='write', out_dir='.'):
        """The files an `export` of `formats` writes, relative to its folder (out_dir matters
        only for coco_images='source', where nothing is written for the images)."""
        from util.export import output_paths
        return output_paths(self.store, out_dir, formats, coco_images)

    def existing_outputs(self, out_dir, formats=('png',), inputs=()):
        """The files an `export` to out_dir would replace (ask the person before replacing).
        Raises UserError first, creating nothing, when the export would write into or over
        the video's frames or one of `inputs` (as `export` would)."""
        from util.export import check_not_input, existing_outputs, output_paths
        self._check_open()
        out_dir = os.path.abspath(os.fspath(out_dir))
        check_not_input(out_dir, output_paths(self.store, out_dir, formats),
                        [self.store.source, *inputs])
        return existing_outputs(self.store, out_dir, formats)
