"""The host GPU itself: its PTX against the PTX ISA's fragment tables (transcribed here a second
time, independently of shim/host_ptx.cpp), its conversions against torch's, and the misuse it
must report (a read before cp.async lands, a missing barrier between warps, divergent barriers and
collectives, copies left in flight)."""
import pytest
import torch

G = torch.arange(32) // 4  # groupID of each lane
T = torch.arange(32) % 4   # threadID_in_group


def bits16(x: torch.Tensor, dtype) -> torch.Tensor:
    return x.to(dtype).view(torch.int16).to(torch.int64) & 0xFFFF


def pack(lo: torch.Tensor, hi: torch.Tensor) -> torch.Tensor:
    """Two 16-bit patterns per 32-bit register, the first in the low half (as int32 storage)."""
    v = lo | (hi << 16)
    return torch.where(v >= 2 ** 31, v - 2 ** 32, v).to(torch.int32)


def unpack(regs: torch.Tensor):
    v = regs.to(torch.int64) & 0xFFFFFFFF
    return v & 0xFFFF, v >> 16


@pytest.mark.parametrize("trans", [False, True])
def test_ldmatrix_x4_follows_the_ptx_table(host, trans):
    rows = torch.randint(-2 ** 15, 2 ** 15, (32, 8), dtype=torch.int16)
    row_of_lane = torch.randperm(32).to(torch.int32)  # each lane names any row: addresses are honoured
    regs = host.probe_ldmatrix(rows, row_of_lane, trans)
    words = rows.to(torch.int64) & 0xFFFF
    for j in range(4):
        m = words[row_of_lane[8 * j:8 * j + 8].long()]  # matrix j: rows given by lanes 8j..8j+7
        if trans:  # lane holds (row 2t, col g) and (row 2t+1, col g)
            expect = pack(m[2 * T, G], m[2 * T + 1, G])
        else:      # lane holds (row g, col 2t) and (row g, col 2t+1)
            expect = pack(m[G, 2 * T], m[G, 2 * T + 1])
        assert torch.equal(regs[:, j], expect), f"matrix {j}"


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_mma_m16n8k16_follows_the_ptx_table(host, dtype):
    a = torch.randn(16, 16).to(dtype)
    b = torch.randn(16, 8).to(dtype)
    c = torch.randn(16, 8)
    ab, bb = bits16(a, dtype), bits16(b, dtype)
    a_regs = torch.stack([pack(ab[G, 2 * T], ab[G, 2 * T + 1]), pack(ab[G + 8, 2 * T], ab[G + 8, 2 * T + 1]),
                          pack(ab[G, 2 * T + 8], ab[G, 2 * T + 9]), pack(ab[G + 8, 2 * T + 8], ab[G + 8, 2 * T + 9])], 1)
    b_regs = torch.stack([pack(bb[2 * T, G], bb[2 * T + 1, G]), pack(bb[2 * T + 8, G], bb[2 * T + 9, G])], 1)
    c_regs = torch.stack([c[G, 2 * T], c[G, 2 * T + 1], c[G + 8, 2 * T], c[G + 8, 2 * T + 1]], 1)
    d_regs = host.probe_mma(a_regs, b_regs, c_regs.contiguous(), dtype == torch.bfloat16)
    d = torch.empty(16, 8)
    d[G, 2 * T], d[G, 2 * T + 1], d[G + 8, 2 * T], d[G + 8, 2 * T + 1] = d_regs.unbind(1)
    ref = a.double() @ b.double() + c.double()
    assert (d.double() - ref).abs().max() <= 1e-5 * max(1.0, ref.abs().max().item())


def test_conversions_round_to_nearest_even(host):
    x = torch.cat([torch.randn(20000) * 10 ** torch.randint(-9, 6, (20000,)).float(),
                   torch.tensor([0.0, -0.0, 65504.0, 65520.0, 65519.99, 1e-8, 6e-8, 3e-8, float("inf"), -float("inf")])])
    # exact ties between two neighbours of each format
    h = torch.randn(2000).half()
    x = torch.cat([x, (h.float() + torch.nextafter(h, torch.tensor(float("inf")).half()).float()) / 2])
    bf = torch.randn(2000).bfloat16()
    x = torch.cat([x, (bf.float() + torch.nextafter(bf, torch.tensor(float("inf")).bfloat16()).float()) / 2])
    assert torch.equal(host.half_bits(x), x.half().view(torch.int16))
    assert torch.equal(host.bf16_bits(x), x.bfloat16().view(torch.int16))
    nan = host.bf16_bits(torch.tensor([float("nan")])).view(torch.bfloat16)
    assert torch.isnan(nan).all()


@pytest.mark.parametrize("width", [32, 16, 4])
@pytest.mark.parametrize("mode,param", [(0, 5), (0, 37), (1, 3), (2, 3), (3, 1), (3, 6), (3, 16)])
def test_shuffles_and_votes(host, mode, param, width):
    """CUDA's rules: subsections of `width` lanes; up/down beyond the subsection, and xor into a
    later one, return the lane's own value."""
    out, votes = host.probe_shuffle(mode, param, width)
    expect = []
    for lane in range(32):
        base = lane - lane % width
        src = {0: base + param % width,
               1: lane - param if lane - param >= base else lane,
               2: lane + param if lane + param < base + width else lane,
               3: lane ^ param if (lane ^ param) < base + width else lane}[mode]
        expect.append(100.0 + src)
    assert out.tolist() == expect
    ballot = sum(1 << lane for lane in range(0, 32, 3))
    assert (votes[:, 0].to(torch.int64) & 0xFFFFFFFF == ballot).all()
    assert (votes[:, 1] == 1).all() and (votes[:, 2] == 0).all()


def test_cp_async_lands_at_the_wait_not_before(host):
    expect = torch.arange(1, 64 * 8 + 1, dtype=torch.int16)
    assert torch.equal(host.probe_cp_async(True), expect)
    early = host.probe_cp_async(False)
    assert (early == -1).all(), "a read before cp.async.wait_group must see the in-flight poison (NaN bits)"


def test_missing_barrier_between_warps_is_seen(host):
    """Warps run in a random order, each as far as its next barrier: without one, the reading warp
    runs first in about half of the launches and sees uninitialised (NaN) shared memory."""
    expect = torch.arange(1000, 1032, dtype=torch.int32)
    for _ in range(8):
        assert torch.equal(host.probe_cross_warp_handoff(True), expect)
    stale = sum(not torch.equal(host.probe_cross_warp_handoff(False), expect) for _ in range(40))
    assert stale > 0


@pytest.mark.parametrize("probe,message", [
    ("probe_divergent_barrier", "__syncthreads at"),
    ("probe_divergent_shuffle", "__shfl_xor_sync"),
    ("probe_collective_after_exit", "exited"),
    ("probe_cp_async_left_in_flight", "cp.async copies not waited for"),
    ("probe_misaligned_load", "misaligned address for a 16-byte aligned access"),
])
def test_misuse_fails_the_launch(host, probe, message):
    with pytest.raises(RuntimeError, match=message):
        getattr(host, probe)()
