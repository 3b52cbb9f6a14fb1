"""CUDA attention kernels, forward and backward, executed on the host against the float64
reference with the accuracy rule of tests/test_attention.py: every path the launchers can pick
(tensor cores at head buckets 64/128/256 in float16 and bfloat16, the SIMT kernels for float32 and
as the half-precision fallback, every SIMT tile edge, the weights and dweights kernels), every mask
kind, odd lengths, GQA, fully masked rows. Each test also checks which kernels ran.

How this suite was shown to fail (each one-line bug planted, the whole of tests/cuda_host run
(335 tests), then reverted):
  * fragment map, attention_fragments.h: ldm_n_major_col(lane) = (lane >> 4) << 3 instead of
    ((lane >> 3) & 1) << 3 (the B operand's k-halves swapped): 66 failed, e.g. "weights causal
    1x130 torch.float16: max error 1.94 > bound 0.0002";
  * barrier, attention_fwd_tc.cuh: the __syncthreads() after cp_async_wait<0>() at the top of the
    key-tile loop removed: 71 failed, "out ...: NaN in output" (a warp read tiles other warps'
    copies had not landed: the host GPU's in-flight cp.async reads as NaN);
  * tail guard, attention_warp_mma.cuh copy_tile_async: `ok = col < valid_cols` without
    `row < valid_rows`: 50 failed, "out/dk ...: NaN in output" (rows past the keys read the NaN
    guards around the inputs).
The slowest cases are the head-size-256 tensor-core ones (about 5 s each on a 2-core EPYC), marked
slow.
"""
from unittest import mock

import pytest
import torch
from torch.utils._python_dispatch import _disable_current_modes

import maskattn as ma
import test_attention
from maskattn.reference import reference_allowed
from test_attention import MASK_KINDS, check_against_reference, mask_kwargs

from .host_helpers import guarded, launched

HALF = [torch.float16, torch.bfloat16]
ELEM = {torch.float16: "__half", torch.bfloat16: "__nv_bfloat16", torch.float32: "float"}


def qkv(b, h, hkv, lq, lk, d, dv, dtype, offset=0):
    """q, k, v in NaN-guarded buffers (reads outside them poison the results); `offset` elements
    shift each start off 16-byte alignment."""
    out = []
    for shape in ((b, h, lq, d), (b, hkv, lk, d), (b, hkv, lk, dv)):
        n = torch.Size(shape).numel()
        out.append(guarded(torch.randn(n + offset).to(dtype))[offset:].view(shape).requires_grad_())
    return out


def assert_ran(host, *expected):
    names = launched(host)
    for e in expected:
        assert any(n.startswith(e) for n in names), f"{e} not launched: {names}"
    return names


def tc_kernels(dtype, bucket, q_len=None):
    """The tensor-core kernels of a call; with q_len <= 64 at buckets 64 and 128 (decoding rows)
    the forward runs in the key-split kernel's smaller blocks."""
    e = ELEM[dtype]
    few_rows = q_len is not None and q_len <= 64 and bucket <= 128
    return [f"attention_fwd_tc_kernel<{e}, {bucket}, {'true' if few_rows else 'false'}>",
            f"attention_bwd_dq_tc_kernel<{e}, {bucket}>", f"attention_bwd_dkdv_tc_kernel<{e}, {bucket}>"]


def simt_kernels(dtype):
    e = ELEM[dtype]
    return [f"attention_fwd_simt_kernel<{e}>", f"attention_bwd_dq_simt_kernel<{e}>",
            f"attention_bwd_dkdv_simt_kernel<{e}>"]


def split_kernels(dtype, bucket):
    e = ELEM[dtype]
    return [f"attention_fwd_tc_kernel<{e}, {bucket}, true>", f"attention_fwd_merge_kernel<{e}, {bucket}>"]


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("lq,lk", [(1, 1100), (70, 600)])
def test_tensor_cores_key_splits_every_mask_kind(on_host, dtype, kind, lq, lk):
    """Few query tiles against many keys (a decoding step): the keys run in several blocks of at
    least 256 keys each, merged after; with random lengths some runs of a sequence are empty."""
    b, h, hkv = 2, 2, 1
    q, k, v = qkv(b, h, hkv, lq, lk, 64, 64, dtype)
    check_against_reference(q, k, v, f"{kind} {lq}x{lk} {dtype}", **mask_kwargs(kind, b, h, lq, lk, "cpu"))
    assert_ran(on_host, *split_kernels(dtype, 64))


@pytest.mark.parametrize("d,dv,bucket,lk", [(128, 96, 128, 700), pytest.param(256, 200, 256, 600, marks=pytest.mark.slow)])
def test_tensor_cores_key_splits_head_buckets(on_host, d, dv, bucket, lk):
    b, h, hkv, lq = 1, 4, 2, 3
    q, k, v = qkv(b, h, hkv, lq, lk, d, dv, torch.bfloat16)
    check_against_reference(q, k, v, f"d={d} dv={dv}", scale=0.3,
                            **mask_kwargs("causal_padding_bottom_right", b, h, lq, lk, "cpu"))
    assert_ran(on_host, *split_kernels(torch.bfloat16, bucket))


def test_key_splits_follow_the_multiprocessor_count(on_host):
    """Blocks that fill the GPU are not split; the same call on a GPU with more multiprocessors is."""
    q, k, v = qkv(1, 2, 2, 100, 1100, 64, 64, torch.float16)
    on_host.set_multiprocessors(2)  # the call's 2 blocks of 128 rows fill them
    unsplit = ma.masked_attention(q, k, v)
    names = launched(on_host)
    assert "attention_fwd_tc_kernel<__half, 64, false>" in names and not any("merge" in n for n in names)
    on_host.set_multiprocessors(132)
    split = ma.masked_attention(q, k, v)
    assert_ran(on_host, *split_kernels(torch.float16, 64))
    torch.testing.assert_close(split, unsplit, rtol=0, atol=2e-3)


@pytest.mark.parametrize("dtype", HALF)
def test_few_query_rows_take_the_smaller_blocks_on_a_full_gpu(on_host, dtype):
    """Decoding rows (at most 64) would leave a 128-row block mostly padding: they run in the split
    kernel's 64-row blocks even where the blocks fill the GPU (one run, merged), forward and
    backward against the float64 reference."""
    b, h, hkv, lq, lk = 2, 4, 2, 5, 300
    on_host.set_multiprocessors(2)  # 8 blocks: more than the GPU holds, so one run each
    q, k, v = qkv(b, h, hkv, lq, lk, 64, 64, dtype)
    check_against_reference(q, k, v, f"{lq}x{lk} {dtype}",
                            **mask_kwargs("causal_padding_bottom_right", b, h, lq, lk, "cpu"))
    names = assert_ran(on_host, *split_kernels(dtype, 64))
    assert not any(n.startswith(f"attention_fwd_tc_kernel<{ELEM[dtype]}, 64, false>") for n in names), names


def test_key_splits_drop_what_the_cpu_drops(on_host):
    """Dropout in split runs: the same Philox numbers keyed by (b, h, i, j) as the CPU kernel."""
    q, k, v = (t.detach() for t in qkv(2, 2, 1, 1, 900, 64, 64, torch.float16))
    lengths = torch.tensor([900, 333])
    ours = ma.masked_attention(q, k, v, k_lengths=lengths, dropout_p=0.3, generator=torch.Generator().manual_seed(5))
    assert_ran(on_host, *split_kernels(torch.float16, 64))
    with _disable_current_modes():  # the CPU kernel, not its CUDA twin
        cpu = ma.masked_attention(q, k, v, k_lengths=lengths, dropout_p=0.3,
                                  generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(ours.float(), cpu.float(), rtol=0, atol=4e-3)


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kind", MASK_KINDS)
@pytest.mark.parametrize("lq,lk", [(97, 70), (1, 130), (300, 260)])
def test_tensor_cores_every_mask_kind(on_host, dtype, kind, lq, lk):
    """(300 query rows: three blocks of the forward's 128, each warp's two row groups, the last
    block part padding.)"""
    b, h, hkv = 2, 2, 1
    q, k, v = qkv(b, h, hkv, lq, lk, 64, 64, dtype)
    check_against_reference(q, k, v, f"{kind} {lq}x{lk} {dtype}", **mask_kwargs(kind, b, h, lq, lk, "cpu"))
    assert_ran(on_host, *tc_kernels(dtype, 64, lq))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("kind", ["causal_padding_bottom_right", "segments_causal", "additive_mask_causal"])
def test_tensor_cores_head_bucket_128_over_several_query_blocks(on_host, dtype, kind):
    """The 128 bucket's forward: 128-row blocks, Q read from shared memory every key tile by both
    row groups of a warp (the 64 bucket keeps its fragments in registers)."""
    b, h, hkv, lq, lk = 2, 2, 1, 270, 230
    q, k, v = qkv(b, h, hkv, lq, lk, 112, 128, dtype)
    check_against_reference(q, k, v, f"d=112 {kind} {lq}x{lk} {dtype}", **mask_kwargs(kind, b, h, lq, lk, "cpu"))
    assert_ran(on_host, *tc_kernels(dtype, 128))


@pytest.mark.parametrize("dtype", HALF)
def test_bucket_128_backward_through_mask_weights_and_dropout(on_host, dtype):
    """The 128 bucket's dq pass (two row groups a warp, 128-row blocks) over several query blocks:
    the additive mask's gradient and a gradient through the weights against the float64
    reference, and dropout against the CPU kernel's Philox stream (the same keep decisions)."""
    from maskattn._grads import reduce_to
    from maskattn.reference import reference_attention
    from test_attention import assert_accurate
    from test_mask_grad import bound
    from tolerance import max_err

    b, h, hkv, lq, lk, d, dv = 2, 2, 1, 200, 150, 112, 128
    kw = {"causal": True, "align": "bottom_right", "k_lengths": torch.tensor([lk, 97])}
    q, k, v = qkv(b, h, hkv, lq, lk, d, dv, dtype)
    mask = torch.randn(b, 1, lq, lk)
    mask[torch.rand(b, 1, lq, lk) > 0.85] = float("-inf")
    mask = mask.to(dtype if dtype != torch.float16 else torch.float32).requires_grad_()
    out, w = ma.masked_attention(q, k, v, mask=mask, return_weights=True, **kw)
    ref_out, ref_w, _ = reference_attention(q, k, v, mask=mask, **kw)
    same_out, same_w, _ = reference_attention(q, k, v, mask=mask, upcast=False, **kw)
    g_out, g_w = torch.randn_like(out), torch.randn_like(w)

    def loss(o, ww):
        return (o * g_out.to(o.dtype)).sum() + (ww * g_w.to(ww.dtype)).sum()

    ours = torch.autograd.grad(loss(out, w), (q, k, v, mask))
    assert_ran(on_host, *tc_kernels(dtype, 128))
    ref = torch.autograd.grad(loss(ref_out, ref_w), (q, k, v, mask))
    same = torch.autograd.grad(loss(same_out, same_w), (q, k, v, mask))
    for name, o, r, sm in zip("qkv", ours, ref, same):
        assert_accurate(o, r, sm, f"d{name} through mask and weights {dtype}")
    # the mask's gradient inherits delta's rounding (out stored in its dtype) summed over a row
    e = ((out.detach().double() - ref_out.detach()) * g_out.double()).sum(-1).abs()
    inherited = reduce_to(ref_w.detach() * e.unsqueeze(-1), mask.detach().double()).abs().max().item()
    assert max_err(ours[3], ref[3]) <= bound(ref[3], same[3], mask.dtype) + inherited, f"mask grad {dtype}"
    assert (ours[3][torch.isinf(mask.detach())] == 0).all()

    def dropped(gen_seed):
        o = ma.masked_attention(q, k, v, dropout_p=0.25, generator=torch.Generator().manual_seed(gen_seed), **kw)
        return (o, *torch.autograd.grad(o, (q, k, v), g_out))

    gpu = dropped(11)
    with _disable_current_modes():  # the CPU kernel, not its CUDA twin
        cpu = dropped(11)
    for name, x, y in zip(("out", "dq", "dk", "dv"), gpu, cpu):
        scale = max(1.0, y.abs().max().item())
        assert (x.float() - y.float()).abs().max() <= 2e-2 * scale, f"dropout {name} {dtype}"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("d,dv,bucket", [(40, 40, 64), (64, 24, 64), (96, 96, 128), (128, 72, 128), (80, 128, 128),
                                         (256, 256, 256), (136, 248, 256)])
def test_tensor_cores_head_sizes(on_host, dtype, d, dv, bucket):
    b, h, hkv, lq, lk = 2, 4, 2, 77, 83
    for kind in ("causal_padding_bottom_right", "window_padding"):
        q, k, v = qkv(b, h, hkv, lq, lk, d, dv, dtype)
        check_against_reference(q, k, v, f"d={d} dv={dv} {kind} {dtype}", scale=0.3,
                                **mask_kwargs(kind, b, h, lq, lk, "cpu"))
        assert_ran(on_host, *tc_kernels(dtype, bucket))


@pytest.mark.parametrize("d,dv", [(40, 40), (64, 64), (96, 96), (128, 128), (256, 256), (64, 24), (33, 70)])
def test_simt_float32(on_host, d, dv):
    b, h, hkv, lq, lk = 2, 4, 2, 45, 71
    for kind in ("causal_padding", "window_left_bottom_right", "bool_mask", "additive_mask_causal"):
        q, k, v = qkv(b, h, hkv, lq, lk, d, dv, torch.float32)
        check_against_reference(q, k, v, f"d={d} dv={dv} {kind}", **mask_kwargs(kind, b, h, lq, lk, "cpu"))
        assert_ran(on_host, *simt_kernels(torch.float32))


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize("why", ["head size not a multiple of 8", "head size above 256", "misaligned rows",
                                 "kernels built for sm_75", "sm_75 device"])
def test_half_precision_falls_back_to_simt(on_host, dtype, why):
    b, h, hkv, lq, lk, d, dv, offset = 2, 2, 1, 37, 50, 64, 64, 0
    if why == "head size not a multiple of 8":
        d = 36
    elif why == "head size above 256":
        d, dv = 264, 40
    elif why == "misaligned rows":
        offset = 1
    elif why == "kernels built for sm_75":
        on_host.set_device(9, 0, 232448, 75)  # TORCH_CUDA_ARCH_LIST=7.5+PTX on an H100
    else:
        on_host.set_device(7, 5, 65536, 75)
    q, k, v = qkv(b, h, hkv, lq, lk, d, dv, dtype, offset=offset)
    check_against_reference(q, k, v, why, **mask_kwargs("causal_padding", b, h, lq, lk, "cpu"))
    names = assert_ran(on_host, *simt_kernels(dtype))
    assert not any("_tc_kernel" in n for n in names)


@pytest.mark.parametrize("smem,edge", [(100 * 1024, 16), (64 * 1024, 8)])
def test_simt_smaller_tiles_where_shared_memory_is_short(on_host, smem, edge):
    """At head size 256 the forward's 32-row tiles take 136 KB of shared memory, its 16-row tiles
    67 KB: a device with less opt-in shared memory gets the 16- or 8-row tiles."""
    on_host.set_device(8, 0, smem, 80)
    b, h, lq, lk = 1, 2, 21, 30
    q, k, v = qkv(b, h, 1, lq, lk, 256, 256, torch.float32)
    check_against_reference(q, k, v, f"edge {edge}", **mask_kwargs("causal_padding_bottom_right", b, h, lq, lk, "cpu"))
    assert_ran(on_host, *simt_kernels(torch.float32))


def test_misaligned_dout_runs_the_simt_backward(on_host):
    b, h, lq, lk = 2, 2, 40, 40
    q, k, v = qkv(b, h, h, lq, lk, 64, 64, torch.float16)
    out = ma.masked_attention(q, k, v, causal=True)
    assert_ran(on_host, tc_kernels(torch.float16, 64, lq)[0])
    g = guarded(torch.randn(out.numel() + 1).half())[1:].view(out.shape)  # data_ptr 2 bytes off alignment
    grads = torch.autograd.grad(out, (q, k, v), g)
    assert_ran(on_host, *simt_kernels(torch.float16)[1:])
    from maskattn.reference import reference_attention
    ref = torch.autograd.grad(reference_attention(q, k, v, causal=True)[0], (q, k, v), g.double())
    for name, o, r in zip("qkv", grads, ref):
        assert (o.double() - r).abs().max() <= 2e-2 * max(1.0, r.abs().max().item()), f"d{name}"


@pytest.mark.parametrize("dtype", HALF + [torch.float32])
@pytest.mark.parametrize("d,dv", [(32, 48), (136, 64)])
def test_weights_and_lse_gradients(on_host, dtype, d, dv):
    """return_weights runs attention_probs_kernel (head dims in chunks of 64); a gradient through
    the weights runs it again to fold sum_j P dweights into delta. tests/test_attention.py's test,
    with this dtype and these head sizes in guarded buffers."""
    def inputs(b, h, hkv, lq, lk, _d, _dv, _device, _dtype):
        return qkv(b, h, hkv, lq, lk, d, dv, dtype)

    with mock.patch.object(test_attention, "dtypes_for", lambda device: [dtype]), \
            mock.patch.object(test_attention, "qkv", inputs):
        test_attention.test_gradients_through_weights_and_lse("cpu")
    e = ELEM[dtype]
    assert_ran(on_host, f"attention_probs_kernel<{e}, false>", f"attention_probs_kernel<{e}, true>",
               f"attention_bwd_rows_kernel<{e}>")


@pytest.mark.parametrize("dtype", HALF + [torch.float32])
@pytest.mark.parametrize("h,hkv,lq", [(8, 2, 67), (6, 1, 1), (4, 4, 1)])
def test_gqa_and_decoding(on_host, dtype, h, hkv, lq):
    b, lk = 2, 150
    q, k, v = qkv(b, h, hkv, lq, lk, 64, 64, dtype)
    check_against_reference(q, k, v, f"h={h} hkv={hkv} lq={lq}", **mask_kwargs("causal_padding_bottom_right", b, h,
                                                                               lq, lk, "cpu"))


@pytest.mark.parametrize("dtype", HALF + [torch.float32])
def test_fully_masked_rows(on_host, dtype):
    b, h, lq, lk = 3, 2, 6, 70
    q, k, v = qkv(b, h, 1, lq, lk, 16, 8, dtype)
    key_mask = torch.ones(b, lk, dtype=torch.bool)
    key_mask[1] = False  # sequence 1 may attend nothing
    additive = torch.zeros(lq, lk)
    additive[2] = float("-inf")  # row 2 of every sequence is masked by the explicit mask
    q_lengths = torch.tensor([lq, lq, 4])
    kw = {"mask": additive, "key_mask": key_mask, "q_lengths": q_lengths}
    out, w, lse = ma.masked_attention(q, k, v, return_weights=True, return_lse=True, **kw)
    dead = ~reference_allowed(b, h, lq, lk, key_mask=key_mask, q_lengths=q_lengths).any(-1)
    dead[:, :, 2] = True
    assert not any(torch.isnan(t).any() for t in (out, w, lse))
    assert out[dead].abs().max() == 0 and w[dead].abs().max() == 0
    assert (lse[dead] == float("-inf")).all() and torch.isfinite(lse[~dead]).all()
    loss = (out * torch.randn_like(out)).sum() + (w * torch.randn_like(w)).sum()
    dq, dk, dv = torch.autograd.grad(loss + (lse.masked_fill(dead, 0) * torch.randn_like(lse)).sum(), (q, k, v))
    assert all(torch.isfinite(t).all() for t in (dq, dk, dv))
    assert dq[dead].abs().max() == 0 and dq[1].abs().max() == 0 and dk[1].abs().max() == 0
    # no key at all
    q0, k0, v0 = qkv(2, 2, 1, 5, 4, 8, 8, dtype)
    out0, lse0 = ma.masked_attention(q0, k0, v0, k_lengths=torch.zeros(2, dtype=torch.int32), return_lse=True)
    assert out0.abs().max() == 0 and (lse0 == float("-inf")).all()
    grads = torch.autograd.grad(out0.sum(), (q0, k0, v0))
    assert all(g.abs().max() == 0 for g in grads)


@pytest.mark.parametrize("dtype", HALF + [torch.float32])
def test_garbage_past_the_lengths_is_never_read(on_host, dtype):
    b, h, lq, lk = 2, 2, 70, 150
    q_lengths, k_lengths = torch.tensor([lq, lq // 2]), torch.tensor([150, 81])
    clean = qkv(b, h, 1, lq, lk, 64, 64, dtype)
    dirty = [t.detach().clone() for t in clean]
    dirty[0][1, :, lq // 2:] = float("nan")
    dirty[1][1, :, 81:] = float("nan")
    dirty[2][1, :, 81:] = float("nan")
    dirty = [guarded(t).requires_grad_() for t in dirty]
    kw = {"q_lengths": q_lengths, "k_lengths": k_lengths, "causal": True, "align": "bottom_right"}
    outs = [ma.masked_attention(*t, **kw) for t in (clean, dirty)]
    assert torch.equal(outs[0], outs[1])
    g = torch.randn_like(outs[0])
    for gc, gd in zip(*[torch.autograd.grad(o, t, g) for o, t in zip(outs, (clean, dirty))]):
        assert torch.equal(gc, gd)


@pytest.mark.parametrize("dtype", HALF + [torch.float32])
def test_strided_inputs(on_host, dtype):
    b, h, hkv, lq, lk, d = 2, 4, 2, 70, 90, 32
    q = guarded(torch.randn(b, lq, h, d).to(dtype)).transpose(1, 2).requires_grad_()
    k = guarded(torch.randn(b, hkv, lk, d + 16).to(dtype))[..., 8:8 + d].requires_grad_()
    v = guarded(torch.randn(b, hkv, lk, d).to(dtype))
    v = v.detach().requires_grad_()
    check_against_reference(q, k, v, f"strided {dtype}", **mask_kwargs("causal_padding_bottom_right", b, h, lq, lk,
                                                                        "cpu"))
    if dtype != torch.float32:
        assert_ran(on_host, *tc_kernels(dtype, 64))


@pytest.mark.parametrize("dtype", HALF + [torch.float32])
@pytest.mark.parametrize("lq,lk", [(0, 9), (9, 0)])
def test_empty_queries_or_keys(on_host, dtype, lq, lk):
    q, k, v = qkv(2, 2, 1, lq, lk, 64, 64, dtype)
    out, lse = ma.masked_attention(q, k, v, return_lse=True)
    assert out.shape == (2, 2, lq, 64) and (out == 0).all() and (lse == float("-inf")).all()
    grads = torch.autograd.grad(out, (q, k, v), torch.randn_like(out))
    assert all((g == 0).all() for g in grads)


@pytest.mark.parametrize("d", [128, 256])
def test_float32_probabilities_match_the_saved_lse(on_host, d):
    """Unnormalised scores (scale 1, |s| up to ~70): the weights and the backward recompute P from
    the forward's lse, so every kernel must scale the q.k dot product alike. (The SIMT forward
    scaled q before the dot product, the others after: the recomputed rows summed to 1 +- 6e-5.)"""
    b, h, lq, lk = 2, 2, 33, 65
    kw = mask_kwargs("causal_padding", b, h, lq, lk, "cpu")
    q, k, v = qkv(b, h, 1, lq, lk, d, d, torch.float32)
    _, w = ma.masked_attention(q, k, v, scale=1.0, return_weights=True, **kw)
    sums = w.double().sum(-1)
    assert (sums - 1)[sums > 0].abs().max() <= 1e-5
    if d == 128:  # at 256 the flash accumulation of such scores misses 2x torch's error on CPU too
        check_against_reference(q, k, v, f"d={d}", scale=1.0, **kw)


@pytest.mark.parametrize("dtype", HALF + [torch.float32])
@pytest.mark.parametrize("value", ["-1e9", "finfo.min"])
def test_large_finite_masks(on_host, dtype, value):
    """tests/test_large_finite_masks.py's rows of -1e9 / finfo.min on every path: the kernels take
    exp in base 2, and finfo(float32).min * log2(e) rounds to -inf, which masked those keys outright
    (zero rows where torch gives uniform weights) until the mask's base-2 value was clamped."""
    import test_large_finite_masks

    with mock.patch.object(test_large_finite_masks, "dtypes_for", lambda device: [dtype]):
        for lq, lk in ((6, 9), (70, 131)):
            test_large_finite_masks.test_against_reference_in_the_kernels_precision("cpu", value, lq, lk)
    assert_ran(on_host, "attention_bwd_dq_" + ("simt" if dtype == torch.float32 else "tc"))
