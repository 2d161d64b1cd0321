"""Official MiVOS-STCN networks against the reference fixtures (../shared/reference/mivos)."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from inference_core.aggregate import aggregate_wbg
from model import memory_reader as mr
from model.checkpoint import load_checked
from model.fusion_net import FusionNet
from model.propagation_net import PropagationNetwork, others_channel
from model.s2m_net import S2MNet, s2m_input
from tests.conftest import load_det_state_dict


def _fx(ref, name):
    d = np.load(ref / f'{name}.npz')
    return {k: d[k] for k in d.files}


def _t(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def _maxabs(out, ref):
    return float(np.abs(out.detach().float().numpy() - ref).max())


def _rel_ok(out, ref, rel=2e-4):
    err = _maxabs(out, ref)
    assert err <= rel * max(1.0, float(np.abs(ref).max())), err


def _abs_ok(out, ref, tol):
    err = _maxabs(out, ref)
    assert err <= tol, err


@pytest.fixture(scope='module')
def stcn(mivos_ref):
    net = PropagationNetwork()
    load_checked(net, load_det_state_dict('stcn'))
    return net.eval()


@pytest.fixture(scope='module')
def fusion(mivos_ref):
    net = FusionNet()
    load_checked(net, load_det_state_dict('fusion_stcn'))
    return net.eval()


@pytest.fixture(scope='module')
def s2m(mivos_ref):
    net = S2MNet()
    load_checked(net, load_det_state_dict('s2m'))
    return net.eval()


# --- key listings ----------------------------------------------------------------------------

@pytest.mark.parametrize('name,cls', [('stcn', PropagationNetwork), ('fusion_stcn', FusionNet), ('s2m', S2MNet)])
def test_state_dict_matches_key_listing(mivos_ref, name, cls):
    expected = {}
    for line in (mivos_ref / 'keys' / f'{name}.txt').read_text().splitlines():
        key, shape, dtype = line.split('\t')
        expected[key] = (tuple(int(s) for s in shape.split(',')) if shape else (), dtype)
    got = {k: (tuple(v.shape), str(v.dtype).replace('torch.', '')) for k, v in cls().state_dict().items()}
    assert got == expected


# --- STCN ------------------------------------------------------------------------------------

@torch.no_grad()
def test_encode_key(stcn, mivos_ref):
    r = _fx(mivos_ref, 'stcn_encode_key')
    outs = stcn.encode_key(_t(r['in_frame']))
    for name, out in zip(('k16', 'f16_thin', 'f16', 'f8', 'f4'), outs):
        assert out.shape == r[f'out_{name}'].shape, name
        _rel_ok(out, r[f'out_{name}'])


@torch.no_grad()
@pytest.mark.parametrize('kind', ['soft', 'hard'])
def test_encode_value(stcn, mivos_ref, kind):
    r = _fx(mivos_ref, 'stcn_encode_value')
    masks = _t(r[f'in_masks_{kind}'])
    _abs_ok(others_channel(masks), r[f'out_others_{kind}'], 1e-6)
    v16 = stcn.encode_value(_t(r['in_frame']), _t(r['in_f16']), masks)
    assert v16.shape == (2, 512, 1, 6, 8)
    _rel_ok(v16, r[f'out_v16_{kind}'])


def test_others_channel_single_object_is_zero():
    m = torch.rand(1, 1, 16, 16)
    assert torch.equal(others_channel(m), torch.zeros_like(m))


@torch.no_grad()
def test_segment_with_query(stcn, mivos_ref):
    r = _fx(mivos_ref, 'stcn_segment')
    g = {k: _t(v) for k, v in r.items()}
    assert int(r['in_top_k']) == stcn.top_k == 20
    aff = mr.dense_topk_affinity(g['in_mk16'], g['in_qk16'], stcn.top_k)
    _abs_ok(aff[None], r['out_affinity'], 5e-5)
    # exactly top_k non-zeros per query column, the rest exact zeros
    assert ((aff != 0).sum(0) == 20).all()
    readout = stcn.read_memory(g['in_mk16'], g['in_mv16'], g['in_qk16'])
    _rel_ok(readout, r['out_readout'])
    logits = stcn.decode(readout, g['in_qv16'], g['in_qf8'], g['in_qf4'])
    _abs_ok(logits, r['out_logits'], 1e-4)
    prob = stcn.segment_with_query(g['in_mk16'], g['in_mv16'], g['in_qf8'], g['in_qf4'],
                                   g['in_qk16'], g['in_qv16'])
    _abs_ok(prob, r['out_prob'], 5e-5)
    _abs_ok(aggregate_wbg(prob), r['out_prob_with_bg'], 5e-5)


@torch.no_grad()
def test_get_attention(stcn, mivos_ref):
    r = _fx(mivos_ref, 'stcn_attention')
    g = {k: _t(v) for k, v in r.items()}
    W = mr.full_softmax_affinity(g['in_mk16'], g['in_qk16'])
    _abs_ok(W[None], r['out_W'], 5e-5)
    attn = stcn.get_attention(g['in_mk16'], g['in_pos_mask'], g['in_neg_mask'], g['in_qk16'])
    assert attn.shape == (3, 2, 96, 128)
    _abs_ok(attn, r['out_attn'], 5e-5)


# --- fusion ----------------------------------------------------------------------------------

@torch.no_grad()
def test_fusion(fusion, mivos_ref):
    r = _fx(mivos_ref, 'fusion_stcn')
    g = {k: _t(v) for k, v in r.items()}
    tc, tr, ti = (int(v) for v in r['in_tc_tr_ti'])
    dist = torch.tensor([[abs(tc - ti) / abs(tc - tr), abs(tr - ti) / abs(tc - tr)]])
    assert torch.equal(dist, g['in_dist'])
    # one object at a time, as MiVOS does
    logits = torch.cat([fusion(g['in_im'], g['in_prev_mask'][k:k + 1], g['in_curr_mask'][k:k + 1],
                               g['in_attn'][k:k + 1], g['in_dist']) for k in (1, 2)])
    _abs_ok(logits, r['out_logits'], 1e-4)
    prob = torch.sigmoid(logits)
    _abs_ok(prob, r['out_prob'], 5e-5)
    _abs_ok(aggregate_wbg(prob), r['out_fused_with_bg'], 5e-5)
    # all objects batched at once gives the same result
    batched = fusion(g['in_im'], g['in_prev_mask'][1:], g['in_curr_mask'][1:], g['in_attn'][1:], g['in_dist'])
    _abs_ok(batched, r['out_logits'], 1e-4)


# --- S2M -------------------------------------------------------------------------------------

@torch.no_grad()
def test_s2m(s2m, mivos_ref):
    r = _fx(mivos_ref, 's2m')
    image = _t(r['in_image'])
    prev = _t(r['in_prev_mask'])
    scr = _t(r['in_scr_mask'])
    pad = tuple(int(v) for v in r['in_pad'])
    xs = []
    for k in (1, 2):    # the GUI's S2M controller rule (negative = any other labelled scribble)
        pos = F.pad((scr == k).float(), pad)[None, None]
        neg = F.pad(((scr != k) & (scr != 255)).float(), pad)[None, None]
        xs.append(s2m_input(image, (prev == k)[None].float(), pos, neg))
    x = torch.cat(xs)
    assert np.array_equal(x.numpy(), r['out_net_input'])
    logits = torch.cat([s2m(x[i:i + 1]) for i in range(2)])
    _abs_ok(logits, r['out_net_logits'], 1e-4)
    prob = torch.sigmoid(logits)
    _abs_ok(prob, r['out_interact_out'], 5e-5)
    # hard x1000 aggregation: compare where the top-2 margin is >= 1e-3
    gui = aggregate_wbg(prob, hard=True).numpy()
    p = r['out_interact_out']
    q = np.sort(np.concatenate([np.prod(1 - p, 0, keepdims=True), p]), 0)
    ok = (q[-1] - q[-2]) >= 1e-3
    assert ok.sum() > 10000
    assert np.abs(gui - r['out_gui_mask']).max(0)[ok].max() <= 1e-2


# --- memory reader ---------------------------------------------------------------------------

def _rand_memory(seed, t=4, h=12, w=16, ck=64, cv=32, k=3):
    g = torch.Generator().manual_seed(seed)
    mk = torch.randn(1, ck, t, h, w, generator=g)
    mv = torch.randn(k, cv, t, h, w, generator=g)
    qk = torch.randn(1, ck, h, w, generator=g)
    return mk, mv, qk


def test_readout_chunked_matches_unchunked_and_dense():
    mk, mv, qk = _rand_memory(0, t=3, h=24, w=23)          # 552 query positions: 2 blocks + a rest
    full = mr.memory_readout(mk, mv, qk, top_k=20, max_bytes=None)
    n = 3 * 24 * 23
    for rows in (mr.BLOCK, 2 * mr.BLOCK):                 # budgets giving 256- and 512-row chunks
        budget = rows * (n * 4 + 20 * 16 + 96 * 4 + 20 * 96 * 4)
        assert mr._chunk_rows(552, budget // rows, budget) == rows
        assert torch.equal(mr.memory_readout(mk, mv, qk, top_k=20, max_bytes=budget), full)
    # a budget too small for one block still gives the same result up to float rounding
    assert torch.allclose(mr.memory_readout(mk, mv, qk, top_k=20, max_bytes=1), full, atol=1e-5)
    # the sparse top-k readout equals the dense (K*Cv, THW) @ (THW, HW) product
    aff = mr.dense_topk_affinity(mk, qk, 20)
    assert ((aff != 0).sum(0) == 20).all()
    dense = (mv.reshape(3 * 32, -1) @ aff).reshape(full.shape)
    assert torch.allclose(full, dense, atol=1e-5)


def test_readout_gather_path_matches_sparse_path():
    mk, mv, qk = _rand_memory(4)
    sparse = mr.memory_readout(mk, mv, qk)
    gathered = mr.memory_readout(mk, mv.double(), qk)      # non-float32 values take the gather path
    assert gathered.dtype == torch.float64
    assert torch.allclose(gathered.float(), sparse, atol=1e-5)


def test_readout_topk_larger_than_memory_is_full_softmax():
    mk, mv, qk = _rand_memory(1, t=1, h=3, w=4)     # 12 memory positions < top_k
    out = mr.memory_readout(mk, mv, qk, top_k=20)
    W = mr.full_softmax_affinity(mk, qk)
    assert torch.allclose(out, (mv.reshape(mv.shape[0] * mv.shape[1], -1) @ W).reshape(out.shape), atol=1e-5)
    assert torch.allclose(mr.memory_readout(mk, mv, qk, top_k=None), out, atol=1e-6)


def test_attention_readout_chunked_identical():
    mk, _, qk = _rand_memory(2, t=1, h=24, w=23)
    vals = torch.rand(5, 24 * 23)
    full = mr.attention_readout(mk, qk, vals, max_bytes=None)
    assert torch.equal(mr.attention_readout(mk, qk, vals, max_bytes=mr.BLOCK * 552 * 8), full)
    assert torch.allclose(mr.attention_readout(mk, qk, vals, max_bytes=1), full, atol=1e-6)
    assert torch.allclose(full, vals @ mr.full_softmax_affinity(mk, qk), atol=1e-6)


def test_readout_under_autocast_computes_softmax_in_float32():
    mk, mv, qk = _rand_memory(3)
    ref = mr.memory_readout(mk, mv, qk)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        aff = mr.l2_affinity(mk[0].reshape(64, -1), qk[0].reshape(64, -1))
        assert aff.dtype == torch.float32
        out = mr.memory_readout(mk.bfloat16(), mv.bfloat16(), qk.bfloat16())
    assert out.dtype == torch.bfloat16
    # keys rounded to bf16 change the affinities a little; the readout stays close
    assert (out.float() - ref).abs().mean() < 0.05


@torch.no_grad()
def test_propagation_net_runs_under_autocast(stcn, mivos_ref):
    r = _fx(mivos_ref, 'stcn_segment')
    g = {k: _t(v) for k, v in r.items()}
    with torch.autocast('cpu', dtype=torch.bfloat16):
        prob = stcn.segment_with_query(g['in_mk16'], g['in_mv16'], g['in_qf8'], g['in_qf4'],
                                       g['in_qk16'], g['in_qv16'])
    assert torch.isfinite(prob.float()).all()
    assert (prob.float().numpy() - r['out_prob']).__abs__().mean() < 0.02
