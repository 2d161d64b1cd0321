"""Memory and caches of the propagation engine.

MemoryBank        permanent memory (one entry per interacted frame) + the working memory of one
                  propagation pass (bounded by default) + a compact long-term memory of the
                  frames evicted from it, so per-frame cost and memory stay flat on long videos.
ProbabilityCache  per-frame soft probabilities (with background), float32 / float16 /
                  zlib-compressed uint8, bounded by a byte budget (LRU eviction).
FeatureCache      LRU of encoded key features per frame, bounded by a byte budget.

None of these touch the networks; the engine fills them.
"""
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

# The default memory policy (see MemoryBank). 20 working frames hold a whole ordinary clip at
# mem_freq 5 (DAVIS videos have <= 104 frames), so short videos are read exactly as MiVOS does;
# the long-term memory holds 2x2-pooled summaries of evicted frames, up to the positions of 8
# full frames (16 summaries at 1/4 the positions each), thinned evenly over the whole history.
DEFAULT_WORKING_FRAMES = 20
DEFAULT_LONG_TERM_FRAMES = 8


def _nbytes(obj):
    if isinstance(obj, torch.Tensor):
        return obj.element_size() * obj.nelement()
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, (bytes, bytearray)):
        return len(obj)
    if isinstance(obj, (tuple, list)):
        return sum(_nbytes(o) for o in obj)
    return 0


# ---------------------------------------------------------------------------------- memory bank
@dataclass
class MemoryEntry:
    frame: int
    key: torch.Tensor            # (1, Ck, 1, h, w)
    value: torch.Tensor | None   # (K, Cv, 1, h, w); None = must be re-encoded (objects changed)
    labels: np.ndarray | None = None   # padded uint8 label map the value was encoded from
    order: int = 0               # interaction counter (larger = more recent)


class MemoryBank:
    """Permanent + working + long-term memory of the propagation engine.

    Permanent entries are the interacted frames (MiVOS "certain memory"). Interacting again with
    a frame replaces its entry (MiVOS appends a second copy; the old mask is outdated, so we drop
    it). During a pass, temporary entries are appended every `mem_freq` frames by the engine.

    Two policies:
      * the default (`working_frames` set, `max_frames` None): all permanent frames, at most
        `working_frames` temporary frames (the oldest is evicted first), and, when
        `long_term_frames` > 0, a long-term memory: each evicted frame is consolidated into
        prototypes (its keys and values average-pooled 2x2: a quarter of the positions, still
        covering the whole frame) kept across the rest of the pass. When the prototypes exceed
        `long_term_frames` frames' worth of positions, every other summary of the older half is
        dropped, so what is kept spans the whole history evenly (an object that left the view
        minutes ago can still be matched). With `working_frames=None` memory grows without bound
        (MiVOS behaviour).
      * `max_frames` (the expert cap, --max_memory_frames) caps the total number of frames:
        permanent frames are kept; when they alone reach the cap, only the ones nearest to the
        pass start (ties: the more recent interaction) are used, and one slot is left for
        temporary memory when the cap is at least 2; temporaries are evicted oldest-first.
        No long-term memory.
    `size` is the number of frames in the current pass memory (long-term prototypes not
    counted; see `long_term_positions`); `peak_size` its maximum since the last `reset_peak()`.
    """

    def __init__(self, max_frames=None, working_frames=DEFAULT_WORKING_FRAMES,
                 long_term_frames=DEFAULT_LONG_TERM_FRAMES):
        if max_frames is not None and int(max_frames) < 1:
            raise ValueError(f'max_frames must be >= 1 or None, got {max_frames}')
        if working_frames is not None and int(working_frames) < 1:
            raise ValueError(f'working_frames must be >= 1 or None, got {working_frames}')
        if int(long_term_frames) < 0:
            raise ValueError(f'long_term_frames must be >= 0, got {long_term_frames}')
        self.max_frames = None if max_frames is None else int(max_frames)
        self.working_frames = None if working_frames is None or max_frames is not None \
            else int(working_frames)
        self.long_term_frames = int(long_term_frames) if self.working_frames is not None else 0
        self.permanent = OrderedDict()       # frame -> MemoryEntry, interaction order
        self._counter = 0
        self._pass_perm = []                 # permanent entries used by the current pass
        self._temp = []                      # (frame, key, value) of the current pass
        self._long = []                      # (frame, keys (Ck, n), values (K, Cv, n)) prototypes
        self._cat = None                     # cached (keys, values) concatenation
        self.peak_size = 0

    # ------------------------------------------------------------ permanent memory
    def set_permanent(self, frame, key, value, labels=None):
        """Add (or replace) the entry of an interacted frame; it becomes the most recent."""
        self._counter += 1
        self.permanent.pop(int(frame), None)
        self.permanent[int(frame)] = MemoryEntry(int(frame), key, value, labels, self._counter)
        self._cat = None

    def remove_permanent(self, frame):
        if self.permanent.pop(int(frame), None) is not None:
            self._cat = None
            self._pass_perm = [e for e in self._pass_perm if e.frame != int(frame)]

    def clear(self):
        self.permanent.clear()
        self._pass_perm = []
        self._temp = []
        self._long = []
        self._cat = None

    @property
    def permanent_frames(self):
        """Interacted frames in memory, in interaction order."""
        return list(self.permanent.keys())

    def stale_entries(self):
        """Permanent entries whose value must be re-encoded (None)."""
        return [e for e in self.permanent.values() if e.value is None]

    def certain_memory(self):
        """All permanent keys/values concatenated in interaction order (MiVOS certain_mem_k/v)."""
        entries = list(self.permanent.values())
        if not entries:
            return None, None
        return (torch.cat([e.key for e in entries], 2), torch.cat([e.value for e in entries], 2))

    # ------------------------------------------------------------ passes
    def begin_pass(self, start_frame):
        """Select the permanent entries for a pass that starts at `start_frame`."""
        entries = list(self.permanent.values())
        if any(e.value is None for e in entries):
            raise RuntimeError('memory has stale entries; re-encode them before a pass')
        cap = self.max_frames
        if cap is not None and len(entries) >= cap:
            keep = cap - 1 if cap >= 2 else cap
            # nearest to the pass start first, then the most recent interaction
            ranked = sorted(entries, key=lambda e: (abs(e.frame - start_frame), -e.order))
            chosen = set(id(e) for e in ranked[:keep])
            entries = [e for e in entries if id(e) in chosen]   # keep interaction order
        self._pass_perm = entries
        self._temp = []
        self._long = []
        self._cat = None
        self._update_peak()

    def can_add_temporary(self):
        """Whether a temporary frame can be added (possibly by evicting an older one)."""
        if self.max_frames is None:
            return True
        return len(self._pass_perm) < self.max_frames

    def add_temporary(self, frame, key, value):
        """Append a temporary frame, evicting the oldest temporaries to respect the cap (into
        the long-term memory under the default policy). Returns False (and adds nothing) when
        the cap leaves no room for temporaries."""
        if not self.can_add_temporary():
            return False
        if self.max_frames is not None:
            while self._temp and len(self._pass_perm) + len(self._temp) >= self.max_frames:
                self._temp.pop(0)
        elif self.working_frames is not None:
            while len(self._temp) >= self.working_frames:
                self._consolidate(*self._temp.pop(0))
        self._temp.append((int(frame), key, value))
        self._cat = None
        self._update_peak()
        return True

    def _consolidate(self, frame, key, value):
        """Move an evicted working frame into the long-term memory as pooled prototypes."""
        if self.long_term_frames <= 0:
            return
        ck, h, w = key.shape[1], key.shape[-2], key.shape[-1]
        kk, cv = value.shape[:2]
        pk = F.avg_pool2d(key.reshape(ck, h, w)[None].float(), 2, ceil_mode=True)[0]
        pv = F.avg_pool2d(value.reshape(kk * cv, h, w)[None].float(), 2, ceil_mode=True)[0]
        self._long.append((frame, pk.reshape(ck, -1).to(key.dtype),
                           pv.reshape(kk, cv, -1).to(value.dtype)))
        budget = self.long_term_frames * h * w
        while sum(e[1].shape[1] for e in self._long) > budget and len(self._long) > 1:
            old = len(self._long) // 2 or 1
            # drop every other summary of the older half: the kept ones still span the history
            self._long = [e for i, e in enumerate(self._long) if i >= old or i % 2 == 0] \
                if old > 1 else self._long[1:]

    @property
    def long_term_frames_kept(self):
        """Frames summarised in the long-term memory of the current pass."""
        return [e[0] for e in self._long]

    @property
    def long_term_positions(self):
        return sum(e[1].shape[1] for e in self._long)

    def end_pass(self):
        self._pass_perm = []
        self._temp = []
        self._long = []
        self._cat = None

    @property
    def frames(self):
        """Frames in the current pass memory (permanent first, then temporary)."""
        return [e.frame for e in self._pass_perm] + [t[0] for t in self._temp]

    @property
    def size(self):
        return len(self._pass_perm) + len(self._temp)

    def reset_peak(self):
        self.peak_size = self.size

    def _update_peak(self):
        self.peak_size = max(self.peak_size, self.size)

    def memory(self):
        """(keys (1, Ck, T, h, w), values (K, Cv, T, h, w)) of the current pass memory. With
        long-term prototypes the positions are flattened: (1, Ck, 1, 1, N), (K, Cv, 1, 1, N)
        (the readout flattens memory positions anyway)."""
        if self._cat is None:
            keys = [e.key for e in self._pass_perm] + [t[1] for t in self._temp]
            values = [e.value for e in self._pass_perm] + [t[2] for t in self._temp]
            if not keys:
                raise RuntimeError('memory is empty')
            if self._long:
                ck, kk, cv = keys[0].shape[1], values[0].shape[0], values[0].shape[1]
                fk = [k.reshape(ck, -1) for k in keys] + [e[1] for e in self._long]
                fv = [v.reshape(kk, cv, -1) for v in values] + [e[2] for e in self._long]
                self._cat = (torch.cat(fk, 1).reshape(1, ck, 1, 1, -1),
                             torch.cat(fv, 2).reshape(kk, cv, 1, 1, -1))
            else:
                self._cat = (torch.cat(keys, 2) if len(keys) > 1 else keys[0],
                             torch.cat(values, 2) if len(values) > 1 else values[0])
        return self._cat

    def nbytes(self):
        n = sum(_nbytes(e.key) + _nbytes(e.value) for e in self.permanent.values())
        n += sum(_nbytes(e[1]) + _nbytes(e[2]) for e in self._long)
        return n + sum(_nbytes(t[1]) + _nbytes(t[2]) for t in self._temp)


# ---------------------------------------------------------------------------------- probabilities
PROB_DTYPES = ('float32', 'float16', 'uint8')


class ProbabilityCache:
    """Soft per-frame probabilities with background, (C, 1, H, W) float, stored compactly on the CPU.

    dtype: 'float32' (exact), 'float16', or 'uint8' (round(p*255), zlib-compressed: mostly
    saturated maps compress 10-50x). `max_bytes` bounds the stored bytes; the least recently
    used frames are evicted and `get` returns None for them (the engine then falls back to the
    one-hot of the store's label map). Thread-safe.
    """

    def __init__(self, dtype='uint8', max_bytes=None):
        if dtype not in PROB_DTYPES:
            raise ValueError(f'prob dtype must be one of {PROB_DTYPES}, got {dtype!r}')
        self.dtype = dtype
        self.max_bytes = None if max_bytes is None else int(max_bytes)
        self._data = OrderedDict()     # frame -> (payload, shape)
        self._bytes = 0
        self._lock = threading.Lock()

    def __contains__(self, t):
        return int(t) in self._data

    def __len__(self):
        return len(self._data)

    @property
    def nbytes(self):
        return self._bytes

    def frames(self):
        with self._lock:
            return list(self._data.keys())

    def _encode(self, prob):
        p = prob.detach().float().cpu()
        if self.dtype == 'float32':
            return p.clone().contiguous()
        if self.dtype == 'float16':
            return p.half().contiguous()
        q = torch.round(p.clamp(0, 1) * 255).to(torch.uint8).numpy()
        return zlib.compress(q.tobytes(), 1)

    def _decode(self, payload, shape):
        if isinstance(payload, torch.Tensor):
            return payload.float()
        q = np.frombuffer(zlib.decompress(payload), np.uint8).reshape(shape)
        return torch.from_numpy(q.astype(np.float32)) / 255

    def put(self, t, prob):
        t = int(t)
        payload = self._encode(prob)
        with self._lock:
            old = self._data.pop(t, None)
            if old is not None:
                self._bytes -= _nbytes(old[0])
            self._data[t] = (payload, tuple(prob.shape))
            self._bytes += _nbytes(payload)
            self._evict()

    def get(self, t, num_channels=None, device=None):
        """float32 (C, 1, H, W) on `device`, or None when not cached. Missing object channels
        (objects added since the frame was stored) are zero-padded up to `num_channels`."""
        t = int(t)
        with self._lock:
            item = self._data.get(t)
            if item is None:
                return None
            self._data.move_to_end(t)
        p = self._decode(*item)
        if num_channels is not None and p.shape[0] < num_channels:
            p = torch.cat([p, p.new_zeros((num_channels - p.shape[0],) + tuple(p.shape[1:]))], 0)
        elif num_channels is not None and p.shape[0] > num_channels:
            raise ValueError(f'cached probability of frame {t} has {p.shape[0]} channels, '
                             f'expected at most {num_channels}')
        return p if device is None else p.to(device)

    def discard(self, t):
        with self._lock:
            old = self._data.pop(int(t), None)
            if old is not None:
                self._bytes -= _nbytes(old[0])

    def clear(self):
        with self._lock:
            self._data.clear()
            self._bytes = 0

    def remove_channel(self, c):
        """Drop channel c (an object id) from every entry; its probability goes to background."""
        with self._lock:
            items = list(self._data.items())
        for t, (payload, shape) in items:
            p = self._decode(payload, shape)
            if c >= p.shape[0]:
                continue
            p[0] += p[c]
            p = torch.cat([p[:c], p[c + 1:]], 0)
            self.put(t, p)

    def _evict(self):
        if self.max_bytes is None:
            return
        while self._bytes > self.max_bytes and len(self._data) > 1:
            _, (payload, _) = self._data.popitem(last=False)
            self._bytes -= _nbytes(payload)


# ---------------------------------------------------------------------------------- features
class FeatureCache:
    """LRU of per-frame encoded key features (tuples of tensors) under a byte budget.

    Key features never change for a frame, so repeated passes over the same frames reuse them.
    max_bytes=0 disables caching. Thread-safe.
    """

    def __init__(self, max_bytes=1 << 30):
        self.max_bytes = int(max_bytes)
        self._data = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get(self, t):
        with self._lock:
            item = self._data.get(int(t))
            if item is None:
                self.misses += 1
                return None
            self._data.move_to_end(int(t))
            self.hits += 1
            return item

    def put(self, t, feats):
        size = _nbytes(feats)
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._data.pop(int(t), None)
            if old is not None:
                self._bytes -= _nbytes(old)
            self._data[int(t)] = feats
            self._bytes += size
            while self._bytes > self.max_bytes and self._data:
                _, ev = self._data.popitem(last=False)
                self._bytes -= _nbytes(ev)

    def clear(self):
        with self._lock:
            self._data.clear()
            self._bytes = 0

    @property
    def nbytes(self):
        return self._bytes

    def __len__(self):
        return len(self._data)
