"""The CPU paths chosen at run time (avx2, avx512, avx512bf16, amx): every path this CPU supports
runs the ops against the float64 reference; a path it lacks is refused with a clear error (and its
tests are skipped, saying so). Also: out= and in-place masked_softmax, and scratch memory reused
across calls of different shapes and from several Python threads."""
import contextlib
import os
import subprocess
import sys
import threading

import pytest
import torch

import maskattn as ma
from maskattn import _C
from maskattn.reference import reference_dropout_keep, reference_masked_softmax

from test_attention import check_against_reference, qkv
from test_masked_softmax import torch_same_precision
from tolerance import assert_rule

PATHS = ["avx2", "avx512", "avx512bf16", "amx"]
SUPPORTED = ma.build_info()["cpu_isa_supported"]


@pytest.fixture
def cpu_path(request):
    """Selects a CPU path for one test and restores the previous one afterwards."""
    name = request.param
    if name not in SUPPORTED:
        pytest.skip(f"this CPU does not support the {name} path (supported: {', '.join(SUPPORTED)}); "
                    "it runs on a CPU that has it")
    before = ma.build_info()["cpu_isa"]
    _C._set_cpu_isa(name)
    yield name
    _C._set_cpu_isa(before)


@pytest.mark.parametrize("cpu_path", PATHS, indirect=True)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_attention_on_every_path(cpu_path, dtype):
    assert ma.build_info()["cpu_isa"] == cpu_path
    b, h, hkv = 2, 4, 2
    for lq, lk, d, dv, kw in [(150, 150, 64, 64, {"causal": True, "k_lengths": torch.tensor([150, 71])}),
                              (70, 211, 80, 48, {"mask": torch.rand(b, 1, 70, 211) > 0.3}),
                              (3, 300, 128, 128, {"align": "bottom_right", "causal": True}),
                              (97, 97, 40, 24, {}),
                              # row halves of partial tiles over their own keys: a half with none, one
                              # starting mid-tile (left window edge), one ending mid-tile (causal edge)
                              (200, 230, 64, 32, {"window": (10, 0), "align": "bottom_right"})]:
        q, k, v = qkv(b, h, hkv, lq, lk, d, dv, "cpu", dtype)
        check_against_reference(q, k, v, f"{cpu_path} {dtype} {lq}x{lk} d={d}", **kw)


def test_avx2_and_avx512_paths_agree_bit_for_bit():
    """The attention tiles' softmax steps, masked_softmax's exp pass, the decoding forward's P V, the
    16-bit row conversions (and the fp32 tile products) of the avx512 path do the avx2 path's
    operations in the same order in wider or more registers: on fresh inputs with masked rows, an
    additive mask, scores large enough to exercise exp's range, both give the same bits."""
    if "avx512" not in SUPPORTED:
        pytest.skip("this CPU does not support the avx512 path")
    before = ma.build_info()["cpu_isa"]
    q, k, v = qkv(2, 4, 2, 150, 131, 64, 48, "cpu", torch.float32)
    q.data *= 4
    kw = {"mask": torch.randn(2, 1, 150, 131) * 5, "causal": True, "k_lengths": torch.tensor([131, 40])}
    scores, scores_mask = torch.randn(3, 5, 37, 203) * 20, torch.rand(3, 1, 37, 203) > 0.3
    scores_mask[1, :, 4] = False
    decode_inputs = [qkv(2, h, hkv, 1, 300, 64, dv, "cpu", dtype, requires_grad=False)
                     for h, hkv, dv, dtype in [(4, 4, 128, torch.float32), (8, 2, 128, torch.bfloat16),
                                               (8, 1, 64, torch.float16), (6, 2, 72, torch.float32)]]
    results = {}
    try:
        for path in ("avx2", "avx512"):
            _C._set_cpu_isa(path)
            tiles = ma.build_info()["cpu_kernels"]["attention softmax tiles"]
            assert tiles.startswith("avx512") if path == "avx512" else "baseline" in tiles
            out, w, lse = ma.masked_attention(q, k, v, return_weights=True, return_lse=True, **kw)
            grads = torch.autograd.grad((out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum(), (q, k, v))
            # masked_softmax's exp pass, rows of odd length (a vector tail) and wholly masked rows
            probs = ma.masked_softmax(scores, mask=scores_mask, scale=0.7)
            # and in 16 bits: the row conversions, 8 lanes or 16
            probs16 = [ma.masked_softmax(scores.to(dtype), mask=scores_mask, scale=0.7)
                       for dtype in (torch.bfloat16, torch.float16)]
            # decoding: output rows in registers (avx512: up to 128 values) or in L1 (avx2: over 64)
            decoded = [ma.masked_attention(dq, dk, dv, k_lengths=torch.tensor([300, 77]))
                       for dq, dk, dv in decode_inputs]
            results[path] = (out, w, lse, *grads, probs, *probs16, *decoded)
    finally:
        _C._set_cpu_isa(before)
    names = ("out", "weights", "lse", "dq", "dk", "dv", "masked_softmax", "masked_softmax bf16", "masked_softmax fp16",
             "decode 1 row dv 128", "decode 4 rows bf16", "decode 8 rows fp16", "decode 3 rows dv 72")
    for name, a, b in zip(names, results["avx2"], results["avx512"]):
        assert torch.equal(a, b), f"{name}: the paths differ by {(a - b).abs().max().item():.3g}"


def test_amx_kernel_executes_its_tiles():
    """The AMX path's bf16 forward runs its tile kernel: on a CPU with AMX, or in the test build that
    emulates the tiles in software (MASKATTN_EMULATE_AMX=1, .ci/sanitize: under AddressSanitizer every
    tile load and store is checked), where each executed tdpbf16ps is counted."""
    info = ma.build_info()
    if "amx" not in SUPPORTED:
        pytest.skip("neither AMX here nor the emulated-AMX test build (.ci/sanitize builds one)")
    before_isa, before = info["cpu_isa"], _C._amx_emulated_tile_products()
    _C._set_cpu_isa("amx")
    try:
        q, k, v = qkv(2, 6, 3, 75, 130, 80, 48, "cpu", torch.bfloat16)
        check_against_reference(q, k, v, "amx bf16 75x130 d=80 dv=48", causal=True, k_lengths=torch.tensor([130, 61]))
    finally:
        _C._set_cpu_isa(before_isa)
    executed = _C._amx_emulated_tile_products() - before
    if info["cpu_amx_emulated"]:
        assert "emulated" in info["cpu_kernels"]["attention bfloat16 products"]
        assert executed > 0
    else:
        assert executed == 0


def test_bf16_pair_layouts_on_avx2():
    """The bf16 k-pair operand layouts (packing, bf16 q and probabilities, the scale on S) that the
    AVX512-BF16 and AMX kernels read, run here by the AVX2 kernel that widens pairs in registers;
    the backward's too (q^T and dO^T tiles, P and dS as pairs over rows, dK and dV transposed), in
    both schedules (split below 4 (batch, kv head) items a thread, fused from there)."""
    before = ma.build_info()["cpu_isa"]
    _C._set_cpu_isa("avx2")
    _C._use_avx2_bf16_pairs(True)
    try:
        assert "pairs" in ma.build_info()["cpu_kernels"]["attention bfloat16 products"]
        for b, h, hkv, lq, lk, d, dv, kw in [(2, 4, 2, 150, 150, 64, 64, {"causal": True}),
                                             (2, 6, 2, 37, 211, 80, 48, {"k_lengths": torch.tensor([211, 90])}),
                                             (1, 8, 1, 97, 97, 40, 24, {"mask": torch.rand(97, 97) > 0.4}),
                                             (2, 2, 2, 70, 33, 128, 16, {"window": (20, 3)}),
                                             (4 * torch.get_num_threads(), 2, 1, 45, 70, 24, 40,
                                              {"causal": True, "q_lengths": torch.arange(4 * torch.get_num_threads()) % 45 + 1})]:
            q, k, v = qkv(b, h, hkv, lq, lk, d, dv, "cpu", torch.bfloat16)
            check_against_reference(q, k, v, f"pairs {lq}x{lk} d={d} dv={dv}", **kw)
    finally:
        _C._use_avx2_bf16_pairs(False)
        _C._set_cpu_isa(before)


@contextlib.contextmanager
def bf16_pairs_path(pairs_path):
    """Selects a path that multiplies bf16 as bf16 ("avx2 pairs": the AVX2 kernel on the pair
    layouts), skipping where this CPU lacks it, and restores the previous path."""
    name = "avx2" if pairs_path == "avx2 pairs" else pairs_path
    if name not in SUPPORTED:
        pytest.skip(f"this CPU does not support the {name} path")
    before = ma.build_info()["cpu_isa"]
    _C._set_cpu_isa(name)
    _C._use_avx2_bf16_pairs(pairs_path == "avx2 pairs")
    try:
        assert not ma.build_info()["cpu_kernels"]["attention bfloat16 products"].startswith("bf16 widened")
        yield
    finally:
        _C._use_avx2_bf16_pairs(False)
        _C._set_cpu_isa(before)


@pytest.mark.parametrize("pairs_path", ["avx2 pairs", "avx512bf16", "amx"])
def test_bf16_products_backward_with_dropout_weights_and_masks(pairs_path):
    """The backward on bf16 products: gradients through the weights and lse with dropout, and an
    additive mask with dropout, on every path that multiplies bf16 as bf16."""
    from test_dropout import test_forward_backward_against_reference, test_gradients_through_weights_and_lse_with_dropout
    with bf16_pairs_path(pairs_path):
        test_gradients_through_weights_and_lse_with_dropout("cpu")
        test_forward_backward_against_reference("cpu", "additive", 4, 2, 70, 70)
        test_forward_backward_against_reference("cpu", "causal_padding", 2, 2, 129, 129)


@pytest.mark.parametrize("pairs_path", ["avx2 pairs", "avx512bf16", "amx"])
def test_bf16_key_packing_every_layout(pairs_path):
    """K and V packed into bf16 k-pairs (8x8 word transposes and row interleaves, scalar edges): odd
    key counts, head sizes off 16 and odd, rows off 4-byte alignment, keys strided through memory."""
    with bf16_pairs_path(pairs_path):
        for lk, d, dv, layout in [(77, 48, 40, "contiguous"), (129, 33, 17, "off alignment"),
                                  (64, 130, 64, "keys strided"), (9, 16, 18, "off alignment")]:
            q = torch.randn(2, 4, 50, d).bfloat16()
            if layout == "off alignment":  # one element into the storage: rows start 2 bytes off
                k = torch.randn(2 * 2 * lk * d + 1).bfloat16()[1:].view(2, 2, lk, d)
                v = torch.randn(2 * 2 * lk * dv + 1).bfloat16()[1:].view(2, 2, lk, dv)
            elif layout == "keys strided":  # (B, L, H, D) memory seen as (B, H, L, D)
                k = torch.randn(2, lk, 2, d).bfloat16().transpose(1, 2)
                v = torch.randn(2, lk, 2, dv).bfloat16().transpose(1, 2)
            else:
                k, v = torch.randn(2, 2, lk, d).bfloat16(), torch.randn(2, 2, lk, dv).bfloat16()
            q, k, v = (t.requires_grad_() for t in (q, k, v))
            check_against_reference(q, k, v, f"{pairs_path} {layout} lk={lk} d={d} dv={dv}",
                                    causal=True, align="bottom_right")


@pytest.mark.parametrize("cpu_path", PATHS, indirect=True)
def test_masked_softmax_on_every_path(cpu_path):
    x = torch.randn(2, 3, 37, 300) * 2
    mask = torch.rand(2, 1, 37, 300) > 0.5
    for dtype in (torch.float32, torch.bfloat16, torch.float16):
        xd = x.to(dtype)
        got = ma.masked_softmax(xd, mask, scale=0.8, causal=True)
        ref = reference_masked_softmax(xd, mask, scale=0.8, causal=True)
        assert_rule(got, ref, torch_same_precision(xd, mask, 0.8, causal=True), f"{cpu_path} {dtype}")


@pytest.mark.parametrize("cpu_path", PATHS, indirect=True)
def test_dropout_draws_on_every_path(cpu_path):
    """Each path's Philox draw (AVX2: 8 counters a register, AVX-512: 16) drops exactly the positions
    of the written rule: whole 64-key rows (4 a draw, a short last batch), rows starting mid-group,
    short rows."""
    for shape in [(1, 2, 5, 320), (2, 3, 7, 64), (1, 2, 3, 100), (2, 1, 9, 13)]:
        seed, offset = int(torch.randint(-2 ** 63, 2 ** 63 - 1, (), dtype=torch.int64)), int(torch.randint(0, 2 ** 62, ()))
        keep = torch.ops.maskattn.dropout_keep_mask(*shape, 0.3, seed, offset, torch.device("cpu"))
        assert torch.equal(keep, reference_dropout_keep(*shape, 0.3, seed, offset)), f"{cpu_path} {shape}"


def test_paths_are_reported_and_refused_clearly():
    info = ma.build_info()
    assert info["cpu_isa"] in PATHS and info["cpu_isa_best"] in PATHS
    assert "avx2" in info["cpu_isa_supported"]
    assert info["cpu_arch"] and isinstance(info["cpu_kernels"], dict) and info["cpu_kernels"]
    # why AMX is usable or not is said, never silent (a refused tile permission falls back)
    assert isinstance(info["cpu_amx"], str) and info["cpu_amx"]
    usable = ("tiles granted", "emulated in software (a test build)")
    assert ("amx" in info["cpu_bf16_self_checks"]) == (info["cpu_amx"] in usable)
    with pytest.raises(ValueError, match="unknown CPU path 'avx9'"):
        _C._set_cpu_isa("avx9")
    for name in PATHS:
        if name not in SUPPORTED:
            with pytest.raises(ValueError, match=f"does not support the '{name}' path"):
                _C._set_cpu_isa(name)
    assert ma.build_info()["cpu_isa"] == info["cpu_isa"]  # a refused path leaves the selection alone


def test_bf16_product_kernels_prove_themselves_before_use():
    """A bf16 product path is offered only after its kernel matched a scalar product bit for bit on
    this CPU (the AVX512-BF16 and AMX kernels cannot all run where the package is built and tested):
    the check passes for the kernels this CPU runs and refuses a kernel one unit off in one element,
    or a rounding to bf16 one bit off."""
    info = ma.build_info()
    checks = info["cpu_bf16_self_checks"]
    for name, result in checks.items():
        assert result in ("passed", "failed")
        assert (name in info["cpu_isa_supported"]) == (result == "passed")
        assert _C._bf16_self_check(name) == (result == "passed")
    for name in ("avx512bf16", "amx"):
        if name in info["cpu_isa_supported"]:
            assert checks[name] == "passed"
    assert _C._bf16_self_check("avx2 pairs") is True
    assert _C._bf16_self_check("planted fault") is False
    # AVX512-BF16's rounding of probabilities and dS (vcvtne2ps2bf16) is proven with its product
    assert _C._bf16_self_check("planted rounding fault") is False
    with pytest.raises(ValueError, match="_bf16_self_check takes"):
        _C._bf16_self_check("avx9")


@pytest.mark.parametrize("value", ["avx9", "avx2"] + [p for p in PATHS if p not in SUPPORTED][:1])
def test_environment_variable_selects_or_refuses(value):
    code = ("import torch, maskattn as ma\n"
            "print(ma.build_info()['cpu_isa'])\n"
            "try:\n"
            "    ma.masked_attention(*(torch.randn(1, 1, 4, 8) for _ in range(3)))\n"
            "    print('ran')\n"
            "except RuntimeError as e:\n"
            "    print('refused:', e)\n")
    env = dict(os.environ, MASKATTN_CPU_ISA=value, PYTHONPATH=os.pathsep.join(sys.path))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    if value in SUPPORTED:
        assert out.stdout.split() == [value, "ran"]
    else:
        assert "refused:" in out.stdout and "MASKATTN_CPU_ISA" in out.stdout and value in out.stdout


def test_masked_softmax_out_and_in_place():
    x = torch.randn(3, 2, 40, 70)
    kl = torch.tensor([70, 33, 1])
    want = ma.masked_softmax(x, causal=True, k_lengths=kl, scale=0.5)
    out = torch.full_like(x, float("nan"))
    assert ma.masked_softmax(x, causal=True, k_lengths=kl, scale=0.5, out=out) is out
    assert torch.equal(out, want)
    y = x.clone()
    assert ma.masked_softmax_(y, causal=True, k_lengths=kl, scale=0.5) is y
    assert torch.equal(y, want)
    for dtype in (torch.float64, torch.bfloat16, torch.float16):
        xd = x.to(dtype)
        yd = xd.clone()
        ma.masked_softmax_(yd, x > 0)
        assert torch.equal(yd, ma.masked_softmax(xd, x > 0))
    with pytest.raises(RuntimeError, match="out must have"):
        ma.masked_softmax(x, out=torch.empty(3, 2, 40, 71))
    with pytest.raises(RuntimeError, match="out must be contiguous"):
        ma.masked_softmax(x, out=torch.empty(3, 2, 70, 40).transpose(-1, -2))
    with pytest.raises(ValueError, match="contiguous"):
        ma.masked_softmax_(x.transpose(-1, -2))
    with pytest.raises(RuntimeError, match="autograd"):
        ma.masked_softmax(x.requires_grad_(), out=out)


def test_scratch_reused_across_shapes_and_threads():
    shapes = [(2, 4, 2, 130, 130, 64), (1, 2, 1, 700, 300, 32), (3, 2, 2, 64, 64, 128), (2, 4, 4, 1, 513, 64)]
    cases = []
    for b, h, hkv, lq, lk, d in shapes:
        q, k, v = qkv(b, h, hkv, lq, lk, d, d, "cpu", torch.float32)
        kl = torch.randint(1, lk + 1, (b,))
        cases.append((q, k, v, kl))

    def run(case):
        q, k, v, kl = case
        out = ma.masked_attention(q, k, v, causal=True, k_lengths=kl, align="bottom_right")
        grads = torch.autograd.grad(out, (q, k, v), torch.ones_like(out))
        return [out.detach()] + list(grads)

    _C._trim_cpu_scratch()
    serial = [run(c) for c in cases]
    assert _C._cpu_scratch_bytes() > 0  # blocks were kept for the next call
    for case, want in zip(cases, serial):  # again, from pooled blocks that held other shapes
        assert all(torch.equal(a, b) for a, b in zip(run(case), want))
    results, errors = {}, []

    def worker(t):
        try:
            for r in range(3):
                idx = (t + r) % len(cases)
                results[(t, r)] = (idx, run(cases[idx]))
        except Exception as exc:  # noqa: BLE001  (reported by the assert below)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors, errors
    for idx, got in results.values():
        assert all(torch.equal(a, b) for a, b in zip(got, serial[idx]))
    # the pool is kept per OpenMP thread number: trimming empties every part of it
    pooled = _C._cpu_scratch_bytes()
    assert pooled > 0
    assert _C._trim_cpu_scratch() == pooled
    assert _C._cpu_scratch_bytes() == 0


def test_wide_instructions_only_in_their_microkernels():
    """Built for the x86-64-v3 baseline: AVX-512 and AMX instructions appear only in the functions of
    the microkernels compiled for them (called after the run-time check), so any AVX2 CPU can load
    and run the rest."""
    import re
    import shutil

    objdump = shutil.which("objdump")
    if objdump is None:
        pytest.skip("objdump (binutils) is not installed")
    out = subprocess.run([objdump, "-d", "--no-show-raw-insn", "-C", _C.__file__], capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stderr
    # (%[xy]mm16-31: the registers only AVX-512 encodings reach)
    wide = re.compile(r"%zmm|%tmm|%k[1-7]\b|%[xy]mm(1[6-9]|2[0-9]|3[01])\b|tdpbf16ps|vdpbf16ps|ldtilecfg")
    function, offenders = None, set()
    for line in out.stdout.splitlines():
        if line.endswith(">:"):
            function = line
        elif wide.search(line) and not re.search(r"Avx512|avx512|amx", function or ""):
            offenders.add(function)
    assert not offenders, sorted(offenders)[:5]
