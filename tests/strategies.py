"""Hypothesis strategies of the property tests, and the builders that turn a drawn case into tensors.

A case is a plain dict (shapes, dtype, layout, scale, every mask argument, a seed), so a failing
example prints as something one can read and paste. Tensor values come from torch's generator
seeded by the drawn seed: hypothesis controls, shrinks and replays everything, and each run still
draws fresh inputs.

Profiles (``MASKATTN_HYPOTHESIS_PROFILE``): ``ci`` (default: a fixed number of examples per test,
a minute or two for all of them on 2 cores) and ``long`` (many more, for a nightly or a local hunt).
"""
import math
import os

import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

_SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.differing_executors]
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=_SLOW_OK, print_blob=True)
settings.register_profile("long", max_examples=2000, deadline=None, suppress_health_check=_SLOW_OK,
                          print_blob=True)
settings.load_profile(os.environ.get("MASKATTN_HYPOTHESIS_PROFILE", "ci"))

FLOAT_DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
HALF_DTYPES = (torch.float16, torch.bfloat16)
ALIGNS = ["top_left", "bottom_right"]
LAYOUTS = ["contiguous", "transposed", "permuted", "expanded", "sliced"]
# scales beyond this are "extreme": inputs then hold small integers, so that float32 products and
# sums are exact or monotone and no near-tie decides the answer differently from float64
EXTREME = 1e3


def dtypes_on(device):
    return [d for d in FLOAT_DTYPES if d != torch.float64 or device == "cpu"]


# ---------------------------------------------------------------- drawing cases

def lengths_around_tiles(high):
    """Sizes with the edges every kernel has (0, 1, a vector of 16, a tile of 64) drawn often."""
    edges = [n for n in (0, 1, 2, 7, 15, 16, 17, 31, 33, 63, 64, 65, 129) if n <= high]
    return st.one_of(st.sampled_from(edges), st.integers(0, high))


ORDINARY_SCALES = st.floats(-4.0, 4.0, allow_nan=False, allow_infinity=False)
EXTREME_SCALES = st.sampled_from([1e10, -1e10, 1e20, -3e7, 1e-10, 0.0])


def scales():
    return st.one_of(ORDINARY_SCALES, ORDINARY_SCALES, EXTREME_SCALES)


@st.composite
def bands(draw, q_len, k_len):
    """causal/align/window, windows reaching past either end of the keys included."""
    reach = st.integers(0, max(q_len, k_len) + 3)
    side = st.one_of(st.none(), reach)
    return {"causal": draw(st.booleans()), "align": draw(st.sampled_from(ALIGNS)),
            "window": draw(st.one_of(st.none(), st.tuples(side, side)))}


@st.composite
def lengths(draw, batch, limit):
    """(values, dtype) of a (batch,) lengths tensor: 0 and the full length drawn often."""
    value = st.one_of(st.just(0), st.just(limit), st.integers(0, limit))
    return draw(st.lists(value, min_size=batch, max_size=batch)), draw(st.sampled_from(["int32", "int64"]))


@st.composite
def key_masks(draw, batch):
    """(rows, density, step): rows 1 broadcasts over the batch; step 2 makes it strided."""
    return (draw(st.sampled_from([batch, 1])) if batch else 0, draw(st.sampled_from([0.0, 0.3, 0.8, 1.0])),
            draw(st.sampled_from([1, 2])))


@st.composite
def explicit_masks(draw, full_shape, max_magnitude=1e9):
    """(kind, shape, magnitude, inf_fraction, pattern): bool, or additive of some float dtype whose
    values are random up to `magnitude` ("random"), or 0 / -magnitude as TensorFlow's finite padding
    masks, whole rows included ("finite_padding"), with some -inf; shapes broadcast to full_shape."""
    ndim = draw(st.integers(1, len(full_shape)))
    shape = tuple(n if draw(st.booleans()) else 1 for n in full_shape[len(full_shape) - ndim:])
    kind = draw(st.sampled_from(["bool", "float32", "float16", "bfloat16", "float64"]))
    magnitude = draw(st.sampled_from([m for m in (1.0, 30.0, 1e4, 1e9) if m <= max_magnitude]))
    return (kind, shape, magnitude, draw(st.sampled_from([0.0, 0.2, 1.0])),
            draw(st.sampled_from(["random", "finite_padding"])))


@st.composite
def optional_masks(draw, batch, q_len, k_len, with_q_lengths=True):
    """Some of q_lengths, k_lengths, key_mask (each drawn or absent), as case entries."""
    case = {}
    if with_q_lengths and draw(st.booleans()):
        case["q_lengths"] = draw(lengths(batch, q_len))
    if draw(st.booleans()):
        case["k_lengths"] = draw(lengths(batch, k_len))
    if draw(st.booleans()):
        case["key_mask"] = draw(key_masks(batch))
    return case


@st.composite
def softmax_cases(draw, device):
    dims = draw(st.integers(2, 4))
    lead = [draw(st.integers(0, 3)) for _ in range(dims - 2)]
    q_len, k_len = draw(lengths_around_tiles(12)), draw(lengths_around_tiles(140))
    batch = lead[0] if dims >= 3 else 1
    shape = tuple(lead) + (q_len, k_len)
    case = {"shape": shape, "dtype": draw(st.sampled_from(dtypes_on(device))), "layout": draw(st.sampled_from(LAYOUTS)),
            "scale": draw(scales()), "seed": draw(st.integers(0, 2 ** 32 - 1))}
    case.update(draw(bands(q_len, k_len)))
    case.update(draw(optional_masks(batch, q_len, k_len, with_q_lengths=False)))
    if draw(st.booleans()):
        case["mask"] = draw(explicit_masks(shape))
    return case


@st.composite
def attention_cases(draw, device, scale=ORDINARY_SCALES, max_additive=30.0):
    batch = draw(st.integers(0, 2))
    kv_heads = draw(st.sampled_from([1, 2]))
    heads = kv_heads * draw(st.sampled_from([1, 2, 3]))
    q_len, k_len = draw(lengths_around_tiles(70)), draw(lengths_around_tiles(140))
    head_dim, v_dim = draw(st.sampled_from([1, 3, 8, 16, 33, 64])), draw(st.sampled_from([1, 5, 16, 64]))
    dtype = draw(st.sampled_from(dtypes_on(device)))
    scale = draw(scale)
    if dtype in HALF_DTYPES and abs(scale) > EXTREME:
        scale = math.copysign(2.0, scale)  # q k^T * 1e10 overflows torch's own half-precision baseline
    case = {"batch": batch, "heads": heads, "kv_heads": kv_heads, "q_len": q_len, "k_len": k_len,
            "head_dim": head_dim, "v_dim": v_dim, "dtype": dtype, "layout": draw(st.sampled_from(LAYOUTS)),
            "scale": draw(st.one_of(st.none(), st.just(scale))), "seed": draw(st.integers(0, 2 ** 32 - 1))}
    case.update(draw(bands(q_len, k_len)))
    case.update(draw(optional_masks(batch, q_len, k_len)))
    if draw(st.booleans()):
        case["mask"] = draw(explicit_masks((batch, heads, q_len, k_len), max_additive))
    return case


@st.composite
def mask_builder_cases(draw):
    batch = draw(st.integers(0, 3))
    q_len, k_len = draw(lengths_around_tiles(70)), draw(lengths_around_tiles(140))
    case = {"q_len": q_len, "k_len": k_len, "seed": draw(st.integers(0, 2 ** 32 - 1)),
            "dtype": draw(st.sampled_from([torch.bool] + FLOAT_DTYPES)),
            "masked_value": draw(st.sampled_from([float("-inf"), -1e9, -1e4, -3.0])),
            "batch": draw(st.one_of(st.none(), st.just(batch)))}  # None: from the tensors, or 1
    case.update(draw(bands(q_len, k_len)))
    case.update(draw(optional_masks(batch, q_len, k_len)))
    return case


# ---------------------------------------------------------------- building tensors

def generator(case):
    return torch.Generator().manual_seed(case["seed"])


def values(shape, gen, integers: bool, magnitude: float = 1.0) -> torch.Tensor:
    """float64 values on CPU: normal, or small integers (exact in every dtype) for extreme scales."""
    if integers:
        return torch.randint(-8, 9, shape, generator=gen).double()
    return torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude


def laid_out(x: torch.Tensor, layout: str, dtype, device) -> torch.Tensor:
    """x (dtype, on device) with the given memory layout and the same values."""
    x = x.to(device=device, dtype=dtype)
    if layout == "transposed" and x.dim() >= 2:
        return x.transpose(-1, -2).contiguous().transpose(-1, -2)
    if layout == "permuted" and x.dim() >= 3:
        return x.transpose(0, 1).contiguous().transpose(0, 1)
    if layout == "expanded" and x.dim() >= 3 and x.shape[0] >= 1:
        # every batch entry a view of the first: stride 0 in dim 0
        return x[:1].expand(x.shape)
    if layout == "sliced":
        # inside a larger buffer, at an offset, every other key
        big = torch.zeros([n + 2 for n in x.shape[:-1]] + [2 * x.shape[-1] + 1], dtype=dtype, device=device)
        view = big[tuple(slice(1, 1 + n) for n in x.shape[:-1]) + (slice(1, 1 + 2 * x.shape[-1], 2),)]
        view.copy_(x)
        return view
    return x


def lengths_tensor(spec, device):
    vals, dt = spec
    return torch.tensor(vals, dtype=getattr(torch, dt), device=device)


def key_mask_tensor(spec, k_len, gen, device):
    rows, density, step = spec
    km = torch.rand(rows, k_len * step, generator=gen) < density
    return km[:, ::step].to(device)


def explicit_mask_tensor(spec, gen, device):
    kind, shape, magnitude, inf_fraction, pattern = spec
    if kind == "bool":
        return (torch.rand(shape, generator=gen) > 0.3).to(device)
    dtype = getattr(torch, kind)
    if pattern == "finite_padding":
        m = torch.where(torch.rand(shape, generator=gen) < 0.5, -magnitude, 0.0).double()
        if len(shape) >= 2 and shape[-2] > 0:
            m[..., torch.randint(0, shape[-2], (1,), generator=gen), :] = -magnitude  # a row wholly "masked"
    else:
        m = torch.randn(shape, generator=gen, dtype=torch.float64) * magnitude
    # large finite values stay finite (+inf would be a NaN row in torch too); below the range is -inf
    m = m.clamp(max=torch.finfo(dtype).max)
    m[torch.rand(shape, generator=gen) < inf_fraction * 0.5] = float("-inf")
    return m.to(device=device, dtype=dtype)


def mask_kwargs(case, k_len, gen, device):
    """The op's keyword arguments for the drawn masks (explicit mask excluded)."""
    kw = {"causal": case["causal"], "align": case["align"], "window": case["window"]}
    for name in ("q_lengths", "k_lengths"):
        if name in case:
            kw[name] = lengths_tensor(case[name], device)
    if "key_mask" in case:
        kw["key_mask"] = key_mask_tensor(case["key_mask"], k_len, gen, device)
    return kw


def has_extreme_scale(case):
    return case.get("scale") is not None and abs(case["scale"]) > EXTREME
