"""End-to-end Hugging Face models: a Llama-style decoder (random weights) with attn_implementation
"maskattn" against "sdpa" and "eager", forward, forward+backward (loss over the non-padding
tokens) and greedy generation, on a padded batch and a packed one. Needs transformers.

padded: half the rows right-padded to a quarter of their length (generation: left-padded prompts).
packed: every row holds documents of random lengths (L/8 to L/2) back to back, position_ids
restarting at 0, no padding; sdpa and eager get transformers' packed mask built from them.
Rate: tokens/s, non-padding tokens per forward(+backward); new tokens for generation.
"""
from dataclasses import dataclass
from typing import List

import torch

from .harness import Case, Method

METHODS = ("maskattn", "sdpa", "eager")


@dataclass(frozen=True)
class ModelSize:
    name: str
    hidden: int
    layers: int
    heads: int
    batch: int
    seq: int
    prompt: int  # generation: prompt length, then NEW_TOKENS greedy tokens


SIZES = (ModelSize("tiny", 128, 2, 4, 8, 256, 64), ModelSize("small", 512, 8, 8, 8, 1024, 256))
VOCAB = 4096
NEW_TOKENS = 16


def build_model(size: ModelSize, impl: str, dtype: torch.dtype, device: torch.device):
    import transformers

    import maskattn.integrations.transformers as mat

    mat.register()
    config = transformers.LlamaConfig(vocab_size=VOCAB, hidden_size=size.hidden, intermediate_size=size.hidden * 8 // 3,
                                      num_hidden_layers=size.layers, num_attention_heads=size.heads,
                                      max_position_embeddings=size.seq)
    torch.manual_seed(0)
    model = transformers.AutoModelForCausalLM.from_config(config, attn_implementation=impl)
    return model.to(device=device, dtype=dtype)


def padded_rows(size: ModelSize, length: int, left: bool, device) -> torch.Tensor:
    """HF attention_mask: half the rows padded to a quarter of `length`."""
    mask = torch.ones(size.batch, length, dtype=torch.long, device=device)
    short = slice(size.batch // 2, None)
    if left:
        mask[short, :length - length // 4] = 0
    else:
        mask[short, length // 4:] = 0
    return mask


def packed_positions(size: ModelSize, device) -> torch.Tensor:
    rows = []
    for _ in range(size.batch):
        pos = []
        while len(pos) < size.seq:
            pos += range(int(torch.randint(size.seq // 8, size.seq // 2 + 1, ())))
        rows.append(torch.tensor(pos[:size.seq]))
    return torch.stack(rows).to(device)


def make_inputs(size: ModelSize, layout: str, mode: str, device: torch.device):
    def build():
        length = size.prompt if mode == "generate" else size.seq
        ids = torch.randint(3, VOCAB, (size.batch, length), device=device)
        x = {"input_ids": ids}
        if layout == "padded":
            x["attention_mask"] = padded_rows(size, length, left=mode == "generate", device=device)
            tokens = int(x["attention_mask"].sum())
        else:
            x["position_ids"] = packed_positions(size, device)
            tokens = ids.numel()
        if mode == "fwd+bwd":
            x["labels"] = ids.masked_fill(x["attention_mask"] == 0, -100) if layout == "padded" else ids
        return {"batch": x, "tokens": size.batch * NEW_TOKENS if mode == "generate" else tokens}

    return build


def timed(model, batch: dict, mode: str):
    if mode == "generate":
        model.eval()
        return lambda: model.generate(**batch, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS,
                                      do_sample=False, pad_token_id=0)
    if mode == "fwd":
        model.eval()

        def forward():
            with torch.no_grad():
                return model(**batch, use_cache=False).logits

        return forward
    model.train()

    def step():
        model.zero_grad(set_to_none=True)
        model(**batch, use_cache=False).loss.backward()

    return step


def methods(size: ModelSize, mode: str, dtype: torch.dtype, device: torch.device) -> List[Method]:
    def method(impl: str) -> Method:
        def build(x):
            return timed(build_model(size, impl, dtype, device), x["batch"], mode)

        return Method(impl, build, ours=impl == "maskattn")

    return [method(impl) for impl in METHODS]


def cases(device: torch.device, quick: bool) -> List[Case]:
    try:
        import transformers  # noqa: F401
    except ImportError:
        print("# models: transformers is not installed (pip install \"maskattn[transformers]\"): skipped")
        return []
    sizes = SIZES[:1] if quick else SIZES
    dtypes = (torch.float32,) if quick else (torch.float32, torch.bfloat16)
    plan = [(s, t, layout, mode) for s in sizes for t in dtypes for layout in ("padded", "packed")
            for mode in ("fwd", "fwd+bwd")]
    plan += [(s, t, "padded", "generate") for s in sizes for t in dtypes]
    out = []
    for size, dtype, layout, mode in plan:
        out.append(Case("models", f"llama {size.name} {layout}", device, dtype,
                        (size.batch, size.prompt if mode == "generate" else size.seq, size.hidden, size.layers),
                        mode, make_inputs(size, layout, mode, device), methods(size, mode, dtype, device),
                        work=lambda x: {"tokens": x["tokens"]}, extra={"seq_len": size.seq}))
    return out
