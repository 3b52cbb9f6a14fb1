"""The Hugging Face transformers backend: tiny models (random weights from a fixed seed, fresh random
inputs each run) against the same models with attn_implementation="sdpa" and a float64 reference.

Rule (tests/tolerance.py): our error against the float64 model is at most twice sdpa's in the same
dtype. Padded query positions are left out of the comparison: transformers gives them no meaning
(sdpa fills them, its FlashAttention path gives zeros, and so do we for right padding).
"""
import warnings

import pytest
import torch

transformers = pytest.importorskip("transformers")

import maskattn as ma  # noqa: E402
import maskattn.integrations.transformers as mat  # noqa: E402
from maskattn.integrations.transformers import attention as hf_attention  # noqa: E402
from tolerance import SLACK  # noqa: E402

mat.register()

COMMON = dict(vocab_size=97, hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4)
FAMILIES = {
    "llama": ("LlamaConfig", dict(num_key_value_heads=2)),
    "mistral": ("MistralConfig", dict(num_key_value_heads=2, sliding_window=6)),
    # layer 0 full attention, layer 1 a sliding window: two masks per forward
    "qwen2": ("Qwen2Config", dict(num_key_value_heads=1, use_sliding_window=True, sliding_window=5, max_window_layers=1)),
    "gpt_neox": ("GPTNeoXConfig", dict()),
    "bert": ("BertConfig", dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)),
}
DECODERS = [f for f in FAMILIES if f != "bert"]
DTYPES = [torch.float32, torch.bfloat16]
BATCH, SEQ = 3, 21


def tiny_model(family: str, impl: str = "maskattn", dtype: torch.dtype = torch.float64) -> torch.nn.Module:
    """The family's tiny model, weights from a fixed seed (the same for every impl and dtype)."""
    name, extra = FAMILIES[family]
    config = getattr(transformers, name)(**COMMON, **extra)
    auto = transformers.AutoModelForMaskedLM if family == "bert" else transformers.AutoModelForCausalLM
    state = torch.random.get_rng_state()
    torch.manual_seed(0)
    model = auto.from_config(config, attn_implementation=impl).to(dtype).eval()
    torch.random.set_rng_state(state)  # inputs stay fresh random
    return model


def padding_mask(kind: str) -> torch.Tensor:
    """(B, L) HF mask (1 = token): row 0 full, the others padded by random amounts on one side."""
    mask = torch.ones(BATCH, SEQ, dtype=torch.long)
    for row in range(1, BATCH):
        pad = int(torch.randint(1, SEQ - 3, ()))
        if kind == "left":
            mask[row, :pad] = 0
        else:
            mask[row, SEQ - pad:] = 0
    return mask


def doc_lengths(total: int):
    lengths = []
    while total > 0:
        lengths.append(min(total, int(torch.randint(2, 9, ()))))
        total -= lengths[-1]
    return lengths


def packed_positions(batch: int):
    """position_ids restarting at 0 at each document, and the (B, 1, L, L) mask keeping each document to itself."""
    rows = [doc_lengths(SEQ) for _ in range(batch)]
    pos = torch.stack([torch.cat([torch.arange(n) for n in row]) for row in rows])
    docs = torch.stack([torch.cat([torch.full((n,), d) for d, n in enumerate(row)]) for row in rows])
    return pos, rows, docs[:, None, :, None] == docs[:, None, None, :]


def inputs_for(family: str, layout: str):
    """(model kwargs for maskattn, model kwargs for the sdpa/float64 reference, valid query positions)."""
    ids = torch.randint(3, COMMON["vocab_size"], (BATCH if family != "bert" or layout != "packed" else 1, SEQ))
    if layout in ("left", "right"):
        mask = padding_mask(layout)
        ours = ref = dict(input_ids=ids, attention_mask=mask)
        return ours, ref, mask.bool()
    pos, rows, blocks = packed_positions(ids.shape[0])
    valid = torch.ones(ids.shape, dtype=torch.bool)
    if family == "bert":  # one flattened row with FlashAttention-style cumulative lengths
        cu = torch.tensor([0] + rows[0]).cumsum(0).to(torch.int32)
        ours = dict(input_ids=ids, position_ids=pos, cu_seq_lens_q=cu, cu_seq_lens_k=cu,
                    max_length_q=max(rows[0]), max_length_k=max(rows[0]))
        return ours, dict(input_ids=ids, position_ids=pos, attention_mask=blocks), valid
    ours = ref = dict(input_ids=ids, position_ids=pos, use_cache=False)
    return ours, ref, valid


def assert_matches(ours, ref64, sdpa, what):
    """tests/tolerance.py's rule on whole models: our error against float64 at most twice sdpa's in
    the same dtype, the error measured as root-mean-square (the maximum over thousands of chained
    roundings is too noisy in its tail: median ratio 1.0, yet 2 in 800 tensors above 2), the slack
    relative to the tensor's magnitude (gradients summed over a batch reach tens)."""
    def rms(x):
        return (x.double() - ref64).pow(2).mean().sqrt().item()

    assert not torch.isnan(ours).any(), f"{what}: NaN"
    bound = 2 * rms(sdpa) + SLACK[ours.dtype] * max(1.0, ref64.abs().max().item())
    assert rms(ours) <= bound, f"{what}: rms error {rms(ours):.3g} > bound {bound:.3g} (sdpa {rms(sdpa):.3g})"


def run(model, kwargs, valid, weights, device="cpu"):
    """Logits at the valid positions and every parameter's gradient of a weighted sum of them (on the CPU)."""
    model.to(device).zero_grad(set_to_none=True)
    kwargs = {k: v.to(device=device, dtype=model.dtype if v.is_floating_point() else v.dtype)
              if isinstance(v, torch.Tensor) else v for k, v in kwargs.items()}
    logits = model(**kwargs).logits.cpu()
    (logits.double()[valid] * weights[valid]).sum().backward()
    grads = {n: p.grad.detach().cpu() for n, p in model.named_parameters() if p.grad is not None}
    return logits.detach()[valid], grads


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("layout", ["left", "right", "packed"])
@pytest.mark.parametrize("family", list(FAMILIES))
def test_logits_and_gradients_match_sdpa(family, layout, dtype, device):
    ours_kwargs, ref_kwargs, valid = inputs_for(family, layout)
    weights = torch.randn(*valid.shape, COMMON["vocab_size"], dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a materialised-mask fallback would warn
        ours = run(tiny_model(family, "maskattn", dtype), ours_kwargs, valid, weights, device)
    ref64 = run(tiny_model(family, "sdpa"), ref_kwargs, valid, weights)
    sdpa = run(tiny_model(family, "sdpa", dtype), ref_kwargs, valid, weights, device)
    what = f"{family} {layout} {dtype} {device}"
    assert_matches(ours[0], ref64[0], sdpa[0], what=f"{what} logits")
    assert ours[1].keys() == ref64[1].keys()
    for name in ref64[1]:
        assert_matches(ours[1][name], ref64[1][name], sdpa[1][name], what=f"{what} grad {name}")


def greedy(model, ids, mask, steps, device="cpu", **kwargs):
    out = model.to(device).generate(input_ids=ids.to(device), attention_mask=mask.to(device), max_new_tokens=steps,
                                    do_sample=False, pad_token_id=0, output_scores=True, return_dict_in_generate=True,
                                    **kwargs)
    return out.sequences[:, ids.shape[1]:], torch.stack(out.scores, 1)


@pytest.mark.parametrize("family,cache", [(f, "dynamic") for f in DECODERS] + [("llama", "static"), ("mistral", "static")])
def test_generate_matches_sdpa(family, cache, device):
    """Greedy decoding of a left-padded batch, with the default (dynamic) cache and a static one
    (keys of the whole cache length: integer alignment): identical tokens. A row may part only
    where sdpa itself has a near-tie between its two best tokens."""
    ids = torch.randint(3, COMMON["vocab_size"], (BATCH, SEQ))
    mask = padding_mask("left")
    kwargs = {} if cache == "dynamic" else {"cache_implementation": "static"}
    ours, _ = greedy(tiny_model(family, "maskattn", torch.float32), ids, mask, 12, device, **kwargs)
    ref, ref_scores = greedy(tiny_model(family, "sdpa", torch.float32), ids, mask, 12, device, **kwargs)
    for row in range(BATCH):
        differ = (ours[row] != ref[row]).nonzero()
        if len(differ):
            step = int(differ[0])
            top2 = ref_scores[row, step].topk(2).values
            assert top2[0] - top2[1] < 1e-4, f"{family} row {row}: tokens part at step {step}: {ours[row]} vs {ref[row]}"


class RecordAttention:
    """Records the keyword arguments masked_attention receives from the backend."""

    def __init__(self, monkeypatch):
        self.calls = []
        original = hf_attention.masked_attention

        def recording(q, k, v, **kwargs):
            self.calls.append(kwargs)
            return original(q, k, v, **kwargs)

        monkeypatch.setattr(hf_attention, "masked_attention", recording)


class RecordShapes(torch.utils._python_dispatch.TorchDispatchMode):
    """Shapes of every tensor any op produces."""

    def __init__(self):
        super().__init__()
        self.shapes = []

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else (out,):
            if isinstance(t, torch.Tensor):
                self.shapes.append(tuple(t.shape))
        return out


@pytest.mark.parametrize("layout", ["left", "right"])
def test_padded_causal_mask_reaches_kernel_compactly(layout, device, monkeypatch):
    """No (B, 1, L, L) tensor exists anywhere in forward and backward; padding arrives as a key mask
    (left; right on CUDA, where telling them apart would cost a device sync) or lengths (right, CPU)."""
    model = tiny_model("llama", "maskattn", torch.float32).to(device)
    mask = padding_mask(layout).to(device)
    ids = torch.randint(3, COMMON["vocab_size"], (BATCH, SEQ), device=device)
    calls = RecordAttention(monkeypatch).calls
    with RecordShapes() as record:
        model(input_ids=ids, attention_mask=mask, use_cache=False).logits.sum().backward()
    assert not [s for s in record.shapes if s[-2:] == (SEQ, SEQ)], "an L x L tensor was built"
    assert len(calls) == COMMON["num_hidden_layers"]
    for call in calls:
        assert call.get("mask") is None and call["causal"] and call["align"] == "top_left"
        if layout == "left" or device == "cuda":
            assert call["key_mask"].shape == (BATCH, SEQ)
        else:
            assert torch.equal(call["k_lengths"], mask.sum(-1)) and torch.equal(call["q_lengths"], mask.sum(-1))


def test_decoding_steps_use_bottom_right_and_key_mask(monkeypatch):
    model = tiny_model("llama", "maskattn", torch.float32)
    calls = RecordAttention(monkeypatch).calls
    greedy(model, torch.randint(3, COMMON["vocab_size"], (BATCH, SEQ)), padding_mask("left"), 3)
    decode = [c for c in calls if c["align"] != "top_left"]
    assert len(decode) == 2 * COMMON["num_hidden_layers"]  # every step after the prefill
    assert all(c["align"] == "bottom_right" and c["key_mask"].shape == (BATCH, SEQ + 1 + i // 2)
               for i, c in enumerate(decode))


@pytest.mark.parametrize("kind", ["bool", "float"])
def test_user_4d_mask_passes_through(kind, monkeypatch):
    ids = torch.randint(3, COMMON["vocab_size"], (BATCH, SEQ))
    allowed = torch.rand(BATCH, 1, SEQ, SEQ) < 0.7
    allowed |= torch.eye(SEQ, dtype=torch.bool)  # every query keeps a key
    valid = torch.ones(BATCH, SEQ, dtype=torch.bool)
    weights = torch.randn(BATCH, SEQ, COMMON["vocab_size"], dtype=torch.float64)

    def mask_for(dtype):
        return allowed if kind == "bool" else torch.zeros(allowed.shape, dtype=dtype).masked_fill(
            ~allowed, torch.finfo(dtype).min)

    calls = RecordAttention(monkeypatch).calls
    ours = run(tiny_model("llama", "maskattn", torch.float32), dict(input_ids=ids, attention_mask=mask_for(torch.float32)),
               valid, weights)
    ref64 = run(tiny_model("llama", "sdpa"), dict(input_ids=ids, attention_mask=mask_for(torch.float64)),
                valid, weights)
    sdpa = run(tiny_model("llama", "sdpa", torch.float32), dict(input_ids=ids, attention_mask=mask_for(torch.float32)),
               valid, weights)
    assert all(c["mask"].shape == (BATCH, 1, SEQ, SEQ) and "causal" not in c for c in calls)
    assert_matches(ours[0], ref64[0], sdpa[0], what=f"4-D {kind} mask logits")
    for name in ref64[1]:
        assert_matches(ours[1][name], ref64[1][name], sdpa[1][name], what=f"4-D {kind} mask grad {name}")


def test_unrecognised_mask_pattern_is_materialised_exactly():
    from transformers import masking_utils as mu

    padding = padding_mask("left").bool()
    chunked = mu.chunked_causal_mask_function(4, torch.zeros(BATCH, dtype=torch.long))
    kwargs = dict(q_length=SEQ, kv_length=SEQ, q_offset=0, kv_offset=0, mask_function=chunked, attention_mask=padding)
    with pytest.warns(UserWarning, match="materialised"):
        ours = mat.compact_mask(BATCH, **kwargs)
    assert torch.equal(ours, mu.sdpa_mask(batch_size=BATCH, allow_is_causal_skip=False, **kwargs))


def tiny_config(name: str, **extra):
    return getattr(transformers, name)(**COMMON, num_key_value_heads=2, head_dim=16, **extra)


@pytest.mark.parametrize("feature", ["softcap", "sinks"])
def test_unsupported_features_raise(feature):
    if feature == "softcap":
        config, match = tiny_config("Gemma2Config", attn_logit_softcapping=30.0), "soft-capping"
    else:
        config, match = tiny_config("GptOssConfig", num_local_experts=2, num_experts_per_tok=1), "sinks"
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="maskattn").eval()
    with pytest.raises(NotImplementedError, match=match):
        model(torch.randint(3, COMMON["vocab_size"], (1, 8)))


def test_training_dropout(monkeypatch):
    """Attention dropout in training runs the fused dropout: the same seed gives the same result,
    and training differs from evaluation."""
    config = getattr(transformers, "LlamaConfig")(**COMMON, attention_dropout=0.25)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation="maskattn").train()
    ids = torch.randint(3, COMMON["vocab_size"], (2, SEQ))
    calls = RecordAttention(monkeypatch).calls
    seed = int(torch.randint(0, 2**31, ()))
    logits = []
    for _ in range(2):
        torch.manual_seed(seed)
        logits.append(model(input_ids=ids, use_cache=False).logits)
    assert calls and all(c["dropout_p"] == 0.25 for c in calls)
    assert torch.equal(logits[0], logits[1])
    assert not torch.allclose(logits[0], model.eval()(input_ids=ids, use_cache=False).logits)



def mask_scenarios():
    """(name, mask interface kwargs) as transformers >= 5 passes them: caches, windows, packing."""
    from transformers import masking_utils as mu

    left, right = padding_mask("left").bool(), padding_mask("right").bool()
    pos = packed_positions(BATCH)[0]
    causal, sliding = mu.causal_mask_function, mu.sliding_window_causal_mask_function(4)
    full = dict(q_length=SEQ, kv_length=SEQ, q_offset=0, kv_offset=0)
    past = SEQ - 5
    return [
        ("causal", dict(full, mask_function=causal)),
        ("causal left", dict(full, mask_function=causal, attention_mask=left)),
        ("causal right", dict(full, mask_function=causal, attention_mask=right)),
        ("decode step", dict(q_length=1, kv_length=SEQ, q_offset=SEQ - 1, kv_offset=0, mask_function=causal,
                             attention_mask=left)),
        ("prefill chunk", dict(q_length=5, kv_length=SEQ, q_offset=past, kv_offset=0, mask_function=causal,
                               attention_mask=right)),
        ("static cache", dict(q_length=5, kv_length=SEQ + 7, q_offset=torch.tensor(past), kv_offset=0,
                              mask_function=causal, attention_mask=left)),
        ("sliding", dict(full, mask_function=sliding, attention_mask=left)),
        ("sliding cache", dict(q_length=2, kv_length=5, q_offset=past, kv_offset=past - 3, mask_function=sliding,
                               attention_mask=torch.cat([left, left[:, :2]], 1))),
        ("bidirectional right", dict(full, mask_function=mu.bidirectional_mask_function, attention_mask=right)),
        ("bidirectional sliding", dict(full, mask_function=mu.sliding_window_bidirectional_mask_function(3),
                                       attention_mask=left)),
        ("cross-attention", dict(q_length=7, kv_length=SEQ, q_offset=0, kv_offset=0,
                                 mask_function=mu.bidirectional_mask_function, attention_mask=left)),
        ("packed", dict(full, mask_function=packed_mask_function(mu, causal, pos))),
        ("packed sliding", dict(full, mask_function=packed_mask_function(mu, sliding, pos))),
    ]


def packed_mask_function(mu, mask_function, position_ids):
    """The mask function transformers composes for packed rows, in the installed version's own way:
    one compatibility wrapper up to 5.23, positions remapped and documents and-ed in from 5.24."""
    documents = mu.find_packed_sequence_indices(position_ids)
    if hasattr(mu, "packed_sequence_compatibility_function"):
        return mu.packed_sequence_compatibility_function(mask_function, position_ids, documents)
    remapped = mu.remap_positions_for_packed_sequence(mask_function, position_ids)
    return mu.and_masks(remapped, mu.packed_sequence_mask_function(documents))


def test_compact_masks_allow_what_sdpa_masks_allow():
    """Each CompactMask lets exactly the (query, key) pairs through that transformers' own sdpa mask
    does: read off the probabilities (positive where allowed). Padded query rows given as
    q_lengths are the exception by design: they attend nothing."""
    from transformers import masking_utils as mu

    for name, kwargs in mask_scenarios():
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            compact = mat.compact_mask(BATCH, **kwargs)
        assert isinstance(compact, mat.CompactMask), name
        assert not any(isinstance(v, torch.Tensor) and v.dim() > 2 for v in compact.kwargs.values()), name
        want = mu.sdpa_mask(batch_size=BATCH, allow_is_causal_skip=False, **kwargs)[:, 0]
        q_len, k_len = want.shape[-2:]
        q, k, v = (torch.randn(BATCH, 2, n, 8, dtype=torch.float64) for n in (q_len, k_len, k_len))
        _, weights = ma.masked_attention(q, k, v, return_weights=True, **compact.kwargs)
        got = (weights > 0).all(1)
        if "q_lengths" in compact.kwargs:
            rows = torch.arange(q_len) < compact.kwargs["q_lengths"][:, None]
            assert not got[~rows].any(), name
            want = want & rows[:, :, None]
        assert torch.equal(got, want), f"{name}: {compact}"


def test_output_attentions_match_eager():
    """output_attentions=True returns the probabilities (sdpa returns none), as eager's at valid queries
    (right padding: eager in float64 turns fully masked rows into NaN)."""
    ids, mask = torch.randint(3, COMMON["vocab_size"], (BATCH, SEQ)), padding_mask("right")
    ours, eager, ref64 = (tiny_model("llama", impl, dtype)(input_ids=ids, attention_mask=mask,
                                                            output_attentions=True).attentions
                          for impl, dtype in (("maskattn", torch.float32), ("eager", torch.float32),
                                              ("eager", torch.float64)))
    rows = mask.bool()[:, None, :, None].expand(-1, COMMON["num_attention_heads"], -1, SEQ)
    assert len(ours) == COMMON["num_hidden_layers"]
    for a, b, r in zip(ours, eager, ref64):
        assert_matches(a.detach()[rows], r.detach()[rows], b.detach()[rows], what="attention probabilities")
