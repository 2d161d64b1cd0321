"""End-to-end MiVOS InferenceCore fixture (../shared/reference/mivos/inference_core.npz).

Drives PropagationEngine exactly like the reference: 8 pre-normalised 91x123 frames, 2 objects,
mem_freq 2, top-k 20, interactions at frame 0 then frame 6, float32 probability cache. Checks
(README §5): stored probabilities after each call within 2e-4, labels identical wherever the
reference top-2 margin is >= 1e-3, the mask differences and the permanent memory.

IVOS_TEST_DEVICE (default cpu; e.g. cuda) and IVOS_TEST_AMP (off | fp16 | bf16) run the same
checks on another device (scripts/device_check.sh). fp32 keeps the tolerances above; under AMP
the stated looser ones apply: probabilities, mask differences and memory within 3e-2, labels
identical where the reference margin is >= 0.1.
"""
import os

import numpy as np
import pytest
import torch

from tests.conftest import load_det_state_dict

DEVICE = os.environ.get('IVOS_TEST_DEVICE', 'cpu')
AMP = os.environ.get('IVOS_TEST_AMP', 'off')
AMP = False if AMP in ('', 'off', '0') else AMP
TOL = 3e-2 if AMP else 2e-4            # probabilities, mask differences, memory (relative)
MARGIN = 0.1 if AMP else 1e-3          # labels must match where the reference is this sure


def _top2_margin(prob):
    s = np.sort(prob, axis=0)
    return s[-1] - s[-2]


@pytest.fixture(scope='module')
def run(mivos_ref):
    from inference_core.engine import PropagationEngine
    from inference_core.networks import Networks
    from inference_core.store import FrameStore
    from model.fusion_net import FusionNet
    from model.propagation_net import PropagationNetwork

    ref = dict(np.load(mivos_ref / 'inference_core.npz'))
    prop = PropagationNetwork(top_k=int(ref['in_top_k']))
    prop.load_state_dict(load_det_state_dict('stcn'), strict=True)
    fuse = FusionNet()
    fuse.load_state_dict(load_det_state_dict('fusion_stcn'), strict=True)
    if DEVICE.startswith('cuda') and not torch.cuda.is_available():
        pytest.skip('IVOS_TEST_DEVICE asks for CUDA, which is not available')
    dev = torch.device(DEVICE)
    nets = Networks('official', prop.eval().to(dev), fuse.eval().to(dev), None, None, dev)

    images = torch.from_numpy(ref['in_images'][0])            # (8, 3, 91, 123) normalised
    t, _, h, w = images.shape
    store = FrameStore(np.zeros((t, h, w, 3), np.uint8), storage='memory')
    store.ensure_objects(int(ref['in_num_objects']))
    engine = PropagationEngine(nets, store, mem_freq=int(ref['in_mem_freq']),
                               top_k=int(ref['in_top_k']), prob_dtype='float32',
                               prob_cache_bytes=None, device=dev, amp=AMP, keep_confident=False,
                               frame_loader=lambda i: images[i:i + 1])
    out = {'ref': ref, 'engine': engine, 'store': store}
    frames = [int(f) for f in ref['in_interact_frames']]
    for call, (f, key) in enumerate(zip(frames, ('in_mask_frame0', 'in_mask_frame6')), 1):
        assert engine.interact(f, torch.from_numpy(ref[key])) is True
        out[f'prob_{call}'] = torch.stack([engine.prob(i) for i in range(t)], 1).numpy()
        out[f'labels_{call}'] = np.stack([store.get_mask(i) for i in range(t)])
        out[f'diff_{call}'] = engine.last_mask_diff.float().cpu().numpy()
        out[f'peak_{call}'] = engine.peak_memory_frames
    out['mem_k'], out['mem_v'] = (x.float().cpu().numpy() for x in engine.memory.certain_memory())
    return out


def test_pad(run):
    assert tuple(run['engine'].pad) == tuple(int(v) for v in run['ref']['out_pad'])


@pytest.mark.parametrize('call', [1, 2])
def test_probabilities(run, call):
    ref = run['ref'][f'out_prob_after_{call}']
    got = run[f'prob_{call}']
    assert got.shape == ref.shape
    assert np.abs(got - ref).max() <= TOL


@pytest.mark.parametrize('call', [1, 2])
def test_masks(run, call):
    ref = run['ref']
    pad = ref['out_pad']
    prob = ref[f'out_prob_after_{call}'][:, :, 0]                     # (3, 8, 96, 128)
    margin = _top2_margin(prob)[:, pad[2]:prob.shape[-2] - pad[3], pad[0]:prob.shape[-1] - pad[1]]
    want = ref[f'out_np_masks_after_{call}']
    got = run[f'labels_{call}']
    assert got.shape == want.shape
    sure = margin >= MARGIN
    assert sure.mean() > (0.8 if AMP else 0.9)
    assert np.array_equal(got[sure], want[sure])
    # all three labels present on every frame (non-degenerate run)
    assert all(len(np.unique(got[i])) == 3 for i in range(got.shape[0]))


@pytest.mark.parametrize('call', [1, 2])
def test_mask_diff(run, call):
    assert np.abs(run[f'diff_{call}'] - run['ref'][f'out_mask_diff_{call}']).max() <= TOL


def test_certain_memory(run):
    ref = run['ref']
    for got, want in ((run['mem_k'], ref['out_certain_mem_k']), (run['mem_v'], ref['out_certain_mem_v'])):
        assert got.shape == want.shape
        assert np.abs(got - want).max() <= TOL * max(1.0, np.abs(want).max())


def test_memory_trace(run):
    # call 1: forward 1..7 with memory up to {0,2,4,6}; call 2: backward 5..1 up to {0,6,4,2}
    assert run['peak_1'] == 4
    assert run['peak_2'] == 4
    assert run['engine'].memory_size == 0          # temporary memory is dropped after a pass
    assert sorted(run['engine'].interacted) == [0, 6]


# ------------------------------------------------------------------ S2M GUI controller (s2m.npz)
def test_scribble_controller_matches_reference(mivos_ref):
    from inference_core.interaction import ScribbleController
    from model.s2m_net import S2MNet

    ref = np.load(mivos_ref / 's2m.npz')
    net = S2MNet()
    net.load_state_dict(load_det_state_dict('s2m'), strict=True)
    ctrl = ScribbleController(net.eval(), 'cpu')
    k = ref['out_net_input'].shape[0]
    image = torch.from_numpy(ref['in_image'])

    x = ctrl.net_inputs(image, ref['in_prev_mask'], ref['in_scr_mask'], k)
    assert np.array_equal(x.numpy(), ref['out_net_input'])

    probs = ctrl.interact(image, ref['in_prev_mask'], ref['in_scr_mask'], k).numpy()
    assert np.abs(probs - ref['out_interact_out']).max() <= 5e-5

    gui = ctrl.predict(image, ref['in_prev_mask'], ref['in_scr_mask'], k).numpy()
    p = ref['out_interact_out']
    q = np.concatenate([np.prod(1 - p, axis=0, keepdims=True), p], 0)
    sure = _top2_margin(q) >= 1e-3
    assert sure.mean() > 0.9
    assert np.abs(gui - ref['out_gui_mask'])[:, sure].max() <= 1e-2
