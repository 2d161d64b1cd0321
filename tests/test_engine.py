"""PropagationEngine, MemoryBank and ProbabilityCache on generated clips.

Behaviour tests (memory cap, cancellation, directions, object changes, caches) run the official
network architecture with seeded random weights at a small size: they check the engine's
bookkeeping, not segmentation quality. Quality checks need trained weights: they use the bundled
networks and skip while weights/ lacks them.
"""
import os

import numpy as np
import pytest
import torch

from inference_core.aggregate import aggregate_wbg
from inference_core.engine import PropagationEngine
from inference_core.memory_bank import MemoryBank, ProbabilityCache
from inference_core.networks import Networks
from inference_core.store import FrameStore
from util.errors import UserError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------ helpers shared with test_session
def make_clip(num_frames=12, height=64, width=96, seed=0, radius=(14, 10), speed=(3.0, 1.0)):
    """A smooth random background with a textured ellipse moving linearly.
    Returns frames (T,H,W,3) uint8 and ground-truth labels (T,H,W) uint8 (1 = ellipse)."""
    rng = np.random.default_rng(seed)
    small = rng.random((height // 8 + 2, width // 8 + 2, 3))
    import cv2
    bg = cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    bg = (np.clip(bg, 0, 1) * 120 + 40).astype(np.float32)
    tex = rng.random((height, width, 3)).astype(np.float32)
    yy, xx = np.mgrid[0:height, 0:width]
    frames = np.empty((num_frames, height, width, 3), np.uint8)
    labels = np.zeros((num_frames, height, width), np.uint8)
    for t in range(num_frames):
        cx = width * 0.3 + speed[0] * t
        cy = height * 0.5 + speed[1] * t
        inside = ((xx - cx) / radius[0]) ** 2 + ((yy - cy) / radius[1]) ** 2 <= 1
        img = bg.copy()
        stripes = 0.5 + 0.5 * np.sin((xx - cx) * 0.8)[..., None]
        img[inside] = (200 + 55 * stripes * tex)[inside] * np.array([1.0, 0.35, 0.25])
        frames[t] = np.clip(img, 0, 255).astype(np.uint8)
        labels[t] = inside
    return frames, labels


def official_random_networks(seed=0):
    """Official architectures with seeded random weights (no files needed)."""
    from model.fusion_net import FusionNet
    from model.propagation_net import PropagationNetwork
    from model.s2m_net import S2MNet
    torch.manual_seed(seed)
    return Networks('official', PropagationNetwork().eval(), FusionNet().eval(), S2MNet().eval(),
                    None, torch.device('cpu'))


def bundled_networks_or_skip():
    try:
        from inference_core.networks import load_networks
        return load_networks('bundled', device='cpu')
    except (UserError, ImportError, FileNotFoundError) as e:
        pytest.skip(f'bundled networks not available yet: {e}')


@pytest.fixture(scope='module')
def nets():
    # One intra-op thread: the test machine has 2 cores shared by several processes, and
    # oversubscribed OpenMP threads make small convolutions 20x slower.
    torch.set_num_threads(1)
    return official_random_networks()


def _store(frames, num_objects=1):
    store = FrameStore(frames, storage='memory')
    store.ensure_objects(num_objects)
    return store


def _engine(nets, store, **kw):
    kw.setdefault('device', 'cpu')
    return PropagationEngine(nets, store, **kw)


def _ellipse_labels(h, w, cx, cy, rx, ry, obj=1):
    yy, xx = np.mgrid[0:h, 0:w]
    return ((((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2) <= 1).astype(np.uint8) * obj


# ------------------------------------------------------------------ ProbabilityCache
@pytest.mark.parametrize('dtype,tol', [('float32', 0), ('float16', 1e-3), ('uint8', 0.5 / 255 + 1e-6)])
def test_probability_cache_round_trip(dtype, tol):
    torch.manual_seed(0)
    p = torch.softmax(torch.randn(3, 1, 32, 48) * 4, 0)
    cache = ProbabilityCache(dtype)
    cache.put(5, p)
    got = cache.get(5)
    assert got.dtype == torch.float32 and got.shape == p.shape
    assert (got - p).abs().max().item() <= tol
    assert cache.get(4) is None
    # new objects: padded with zero channels
    assert torch.equal(cache.get(5, num_channels=4)[3], torch.zeros(1, 32, 48))


def test_probability_cache_budget_and_compression():
    p = torch.zeros(3, 1, 64, 64)
    p[0] = 1                                    # saturated maps compress well in uint8 mode
    raw = p.numel() * 4
    cache = ProbabilityCache('uint8', max_bytes=raw)
    for t in range(50):
        cache.put(t, p)
    assert len(cache) == 50 and cache.nbytes < raw
    noisy = ProbabilityCache('float32', max_bytes=3 * raw)
    for t in range(10):
        noisy.put(t, p)
    assert len(noisy) == 3 and noisy.nbytes <= 3 * raw
    noisy.get(7)                                # LRU: 7 becomes most recent
    noisy.put(10, p)
    assert 7 in noisy and 8 not in noisy and 10 in noisy


def test_probability_cache_remove_channel():
    p = torch.tensor([0.2, 0.5, 0.3]).view(3, 1, 1, 1).expand(3, 1, 2, 2).clone()
    cache = ProbabilityCache('float32')
    cache.put(0, p)
    cache.remove_channel(1)
    got = cache.get(0)
    assert got.shape[0] == 2
    assert torch.allclose(got[:, 0, 0, 0], torch.tensor([0.7, 0.3]))


# ------------------------------------------------------------------ MemoryBank
def _kv(k=1):
    return torch.zeros(1, 4, 1, 2, 2), torch.zeros(k, 8, 1, 2, 2)


def test_memory_bank_cap_permanent_and_temporary():
    bank = MemoryBank(max_frames=3)
    for f in (0, 10, 20, 30, 40):
        bank.set_permanent(f, *_kv())
    bank.begin_pass(22)
    # 5 permanent frames > cap: the 2 nearest to frame 22 are used, one slot stays temporary
    assert sorted(bank.frames) == [20, 30]
    for t in range(23, 29):
        assert bank.add_temporary(t, *_kv())
        assert bank.size <= 3
        keys, values = bank.memory()
        assert keys.shape[2] == bank.size == values.shape[2]
    assert bank.frames[-1] == 28 and 23 not in bank.frames      # oldest temporary evicted
    bank.end_pass()
    assert bank.size == 0 and bank.peak_size == 3

    one = MemoryBank(max_frames=1)
    one.set_permanent(0, *_kv())
    one.set_permanent(9, *_kv())
    one.begin_pass(7)
    assert one.frames == [9] and not one.add_temporary(8, *_kv())


def test_memory_bank_replace_and_order():
    bank = MemoryBank()
    bank.set_permanent(3, *_kv())
    bank.set_permanent(5, *_kv())
    bank.set_permanent(3, *_kv())               # re-interaction replaces, becomes most recent
    assert bank.permanent_frames == [5, 3]
    bank.remove_permanent(5)
    assert bank.permanent_frames == [3]
    bank.begin_pass(3)
    assert bank.size == 1


# ------------------------------------------------------------------ engine on generated clips
def test_memory_cap_never_exceeded_on_long_clip(nets):
    frames, gt = make_clip(num_frames=24, height=48, width=64)
    store = _store(frames)
    eng = _engine(nets, store, mem_freq=1, max_memory_frames=3)
    sizes = []
    seen_frames = []

    def progress(done, total):
        sizes.append(eng.memory_size)
        seen_frames.append(list(eng.memory.frames))

    assert eng.interact(0, gt[0], progress=progress)
    assert eng.interact(23, gt[23], progress=progress)       # backward, fused with frame 0
    assert eng.interact(12, gt[12], progress=progress)       # both ways between two frames
    assert eng.interact(20, gt[20], progress=progress)       # 4 permanent frames > cap 3
    assert sizes and max(sizes) <= 3 and eng.peak_memory_frames == 3
    # temporary memory really rolls: frames other than the interacted ones were in memory
    assert any(set(f) - {0, 12, 20, 23} for f in seen_frames)
    assert eng.memory_size == 0
    assert len(eng.memory.permanent) == 4


def test_cancel_leaves_store_consistent_and_engine_usable(nets):
    frames, gt = make_clip(num_frames=10)
    full_store = _store(frames)
    full = _engine(nets, full_store, mem_freq=2)
    assert full.interact(0, gt[0]) is True
    want = np.stack([full_store.get_mask(t) for t in range(10)])

    store = _store(frames)
    eng = _engine(nets, store, mem_freq=2)
    calls = []
    cancel_after = 3

    def should_cancel():
        calls.append(1)
        return len(calls) > cancel_after

    assert eng.interact(0, gt[0], should_cancel=should_cancel) is False
    got = np.stack([store.get_mask(t) for t in range(10)])
    # frames 1..3 have the new labels (same computation as the full run), later ones the old
    assert np.array_equal(got[:cancel_after + 1], want[:cancel_after + 1])
    assert not got[cancel_after + 1:].any()
    assert eng.memory_size == 0
    # a later propagation completes and gives the full result
    assert eng.interact(0, gt[0]) is True
    assert np.array_equal(np.stack([store.get_mask(t) for t in range(10)]), want)


def test_directions_ranges_and_bounds(nets):
    frames, gt = make_clip(num_frames=12)
    store = _store(frames)
    eng = _engine(nets, store)
    written = []
    store.add_listener(lambda fr: written.extend(fr))

    assert eng.interact(5, gt[5], direction='forward', end=8)
    assert sorted(set(written)) == [5, 6, 7, 8]
    assert not store.masks[:5].any() and not store.masks[9:].any()

    written.clear()
    assert eng.interact(5, gt[5], direction='backward')
    assert sorted(set(written)) == [0, 1, 2, 3, 4]          # frame 5's labels did not change

    written.clear()
    assert eng.interact(9, gt[9], direction='both')           # backward stops before frame 5
    assert sorted(set(written)) == [6, 7, 8, 9, 10, 11]
    assert eng.pass_ranges(9, 'both') == [([10, 11], None), ([8, 7, 6], 5)]

    written.clear()
    assert eng.interact(5, gt[5], end=2)                      # end bounds its side only
    assert sorted(set(written)) == [2, 3, 4, 6, 7, 8]
    with pytest.raises(UserError):
        eng.interact(5, gt[5], direction='forward', end=2)
    with pytest.raises(UserError):
        eng.interact(5, gt[5], direction='sideways')


def test_fusion_only_between_interacted_frames(nets):
    frames, gt = make_clip(num_frames=8)
    store = _store(frames)
    eng = _engine(nets, store, prob_dtype='float32', prob_cache_bytes=None)
    fused = []
    real_fuse = eng._fuse
    eng._fuse = lambda tc, tr, ti, *a: fused.append((tc, tr, ti)) or real_fuse(tc, tr, ti, *a)
    eng.interact(0, gt[0])
    assert fused == []
    eng.interact(6, gt[6])
    assert fused == [(0, 6, 5), (0, 6, 4), (0, 6, 3), (0, 6, 2), (0, 6, 1)]


def test_objects_added_and_removed_between_interactions(nets):
    frames, gt = make_clip(num_frames=8)
    h, w = gt.shape[1:]
    store = _store(frames, num_objects=1)
    eng = _engine(nets, store)
    eng.interact(0, gt[0])
    assert set(np.unique(store.masks)) <= {0, 1}

    store.add_object()                                        # new object between interactions
    two = gt[4].copy()
    two[_ellipse_labels(h, w, 80, 12, 8, 6) > 0] = 2
    assert eng.interact(4, two)
    assert eng.num_objects == 2
    assert eng.prob(4).shape[0] == 3 and eng.prob(1).shape[0] == 3
    assert (store.masks[5:] == 2).any() and (store.masks[4] == 2).sum() == (two == 2).sum()
    assert all(e.value.shape[0] == 2 for e in eng.memory.permanent.values())

    # soft probabilities as input (K+1, 1, H, W)
    onehot = np.stack([(two == k) for k in range(3)])[:, None].astype(np.float32)
    assert eng.interact(2, torch.from_numpy(onehot))

    eng.remove_object(1)                                      # engine first, then the store
    store.remove_object(1)
    assert eng.num_objects == 1 and eng.prob(3).shape[0] == 2
    assert eng.interact(6, store.get_mask(6))
    assert set(np.unique(store.masks)) <= {0, 1}
    assert all(e.value.shape[0] == 1 for e in eng.memory.permanent.values())


def test_small_prob_budget_falls_back_to_labels(nets):
    frames, gt = make_clip(num_frames=10)
    store = _store(frames)
    eng = _engine(nets, store, prob_dtype='float16', prob_cache_bytes=1)   # keeps one frame
    assert eng.interact(0, gt[0]) and eng.interact(9, gt[9])
    assert len(eng.probs) == 1
    prev = eng.prob(3)                                        # evicted: one-hot of the labels
    lab = store.get_mask(3)
    l, r, t, b = eng.pad
    assert torch.equal(prev[1, 0, t:t + lab.shape[0], l:l + lab.shape[1]], torch.from_numpy(lab == 1).float())
    assert eng.interact(4, gt[4])


def test_feature_cache_reused_across_passes(nets):
    frames, gt = make_clip(num_frames=6)
    store = _store(frames)
    eng = _engine(nets, store)
    eng.interact(0, gt[0])
    misses = eng.features.misses
    eng.interact(0, gt[0])
    assert eng.features.misses == misses and eng.features.hits >= 6
    small = _engine(nets, store, feature_cache_bytes=0)
    small.interact(0, gt[0])
    assert len(small.features) == 0


def test_user_errors(nets):
    frames, gt = make_clip(num_frames=4)
    store = _store(frames)
    eng = _engine(nets, store)
    with pytest.raises(UserError, match='out of range'):
        eng.interact(4, gt[0])
    with pytest.raises(UserError):
        eng.interact(0, gt[0][:10])
    with pytest.raises(UserError, match='objects'):
        eng.interact(0, gt[0] * 3)
    with pytest.raises(UserError):
        _engine(nets, store, mem_freq=0)
    with pytest.raises(UserError):
        _engine(nets, store, max_memory_frames=0)


def test_amp_is_cpu_noop(nets):
    frames, gt = make_clip(num_frames=3)
    eng = _engine(nets, _store(frames), amp='fp16')
    assert eng.amp_dtype is None
    assert eng.interact(0, gt[0])


def test_networks_that_ask_get_the_previous_result_of_the_pass():
    """A network with `uses_previous_mask` gets, for each frame, the result of the frame before
    it in the pass (the interacted mask for the first one), in both directions."""
    from model.lite_networks import build
    prop = build('propagation').eval()
    seen = []
    real = prop.segment_with_query

    def spy(*args, prev_mask=None):
        out = real(*args, prev_mask=prev_mask)
        seen.append((prev_mask.clone(), out.clone()))
        return out

    prop.segment_with_query = spy
    nets = Networks('bundled', prop, build('fusion').eval(), None, None, torch.device('cpu'))
    frames, gt = make_clip(num_frames=6, height=96, width=128)
    # without the regional gate the stored result is the network's output, aggregated
    eng = _engine(nets, _store(frames), gate_regions=False)
    assert eng.interact(2, gt[2])
    assert len(seen) == 5                      # frames 3, 4, 5 then 1, 0
    first = eng._onehot(gt[2], 1)[1:]
    for pass_start in (0, 3):                  # forward pass, then backward pass
        assert torch.equal(seen[pass_start][0], first)
    for i in (1, 2, 4):
        prev_out = seen[i - 1][1]              # (K,1,H,W) network output ...
        expected = aggregate_wbg(prev_out, keep_bg=True)[1:]   # ... as stored by the engine
        assert torch.allclose(seen[i][0], expected)


# ------------------------------------------------------------------ quality (trained weights)
def _iou(a, b):
    return (a & b).sum() / max(1, (a | b).sum())


def test_bundled_propagation_follows_object():
    nets = bundled_networks_or_skip()
    frames, gt = make_clip(num_frames=16, height=240, width=320, radius=(40, 28), speed=(8, 2))
    store = _store(frames)
    eng = PropagationEngine(nets, store, device='cpu')
    assert eng.interact(0, gt[0])
    ious = [_iou(store.get_mask(t) == 1, gt[t] == 1) for t in range(1, 16)]
    assert min(ious) > 0.7, ious


# ------------------------------------------------------------------ load_networks
def test_load_networks_errors(tmp_path):
    from inference_core.networks import load_networks
    with pytest.raises(UserError, match='download_model.py'):
        load_networks('official', saves_dir=tmp_path, device='cpu')
    with pytest.raises(UserError, match='unknown model kind'):
        load_networks('huge', saves_dir=tmp_path)
    for name in ('stcn.pth', 'fusion_stcn.pth', 's2m.pth'):
        (tmp_path / name).write_bytes(b'<html>quota exceeded</html>')
    with pytest.raises(UserError, match='stcn.pth'):
        load_networks('official', saves_dir=tmp_path, device='cpu')
    empty = tmp_path / 'no_weights'
    empty.mkdir()
    # auto: broken official files -> bundled; with no bundled weights either, one clear error
    with pytest.raises(UserError, match='stcn.pth'):
        load_networks('auto', saves_dir=tmp_path, device='cpu', weights_dir=str(empty))
