"""Train a tiny Llama-style causal language model from scratch through maskattn's Hugging Face backend.

Character-level, on a toy corpus generated on the spot (tiny_text.py), with packed sequences: each
row of the batch holds several documents back to back and ``position_ids`` restart at 0 at each
document, so attention stays within a document (maskattn receives document ids, ``segments``, and
never an L x L mask). About a minute on a CPU:

    pip install "maskattn[transformers]"
    python examples/train_tiny_lm.py            # --steps, --device cuda, --plot PATH
"""
import argparse
import sys
import time

import torch
from tqdm import tqdm
from transformers import AutoModelForCausalLM, LlamaConfig

import maskattn.integrations.transformers as mat
from loss_plot import save_loss_svg
from tiny_text import documents


def pack(docs, stoi, row_len: int):
    """The documents as one token stream cut into rows: ids, position_ids (restarting at 0 where a
    document or a row starts) and labels (-100 where a document starts: nothing predicts it)."""
    ids, starts, labels = [], [], []
    for doc in docs:
        tokens = [stoi[c] for c in doc]
        ids += tokens
        starts += [True] + [False] * (len(tokens) - 1)
        labels += [-100] + tokens[1:]
    rows = len(ids) // row_len
    ids, starts, labels = (torch.tensor(x[:rows * row_len]).view(rows, row_len) for x in (ids, starts, labels))
    starts[:, 0] = True
    labels[:, 0] = -100
    index = torch.arange(row_len).expand(rows, row_len)
    last_start = torch.where(starts, index, 0).cummax(dim=1).values
    return ids, index - last_start, labels


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--row-len", type=int, default=128)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--plot", default="tiny_lm_loss.svg", help="where to save the loss curve (SVG)")
    parser.add_argument("--check", action="store_true", help="exit 1 unless the loss went down")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    docs = documents(4000)
    chars = sorted(set("".join(docs)))
    stoi = {c: i for i, c in enumerate(chars)}
    ids, pos, labels = pack(docs, stoi, args.row_len)
    print(f"corpus: {len(docs)} documents, {ids.numel()} characters, vocabulary {len(chars)}, "
          f"{ids.shape[0]} packed rows of {args.row_len}")

    mat.register()
    config = LlamaConfig(vocab_size=len(chars), hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=args.row_len)
    # randomly initialised: trained from scratch
    model = AutoModelForCausalLM.from_config(config, attn_implementation="maskattn").to(args.device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=0.01)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=3e-3, total_steps=args.steps, pct_start=0.1)

    losses = []
    start = time.perf_counter()
    model.train()
    with tqdm(range(args.steps), desc="training", unit="step", disable=None) as bar:  # no bar in logs (not a terminal)
        for step in bar:
            rows = torch.randint(0, ids.shape[0], (args.batch,))
            batch = {"input_ids": ids[rows], "position_ids": pos[rows], "labels": labels[rows]}
            loss = model(**{k: v.to(args.device) for k, v in batch.items()}, use_cache=False).loss
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
            losses.append(loss.item())
            bar.set_postfix(loss=f"{losses[-1]:.3f}")
            tqdm.write(f"step {step + 1:4d}  loss {losses[-1]:.4f}")
    print(f"{args.steps} steps in {time.perf_counter() - start:.1f} s")

    save_loss_svg(losses, args.plot, "tiny causal LM (packed rows, maskattn backend): training loss")
    print(f"loss curve saved to {args.plot}")

    model.eval()
    prompt = torch.tensor([[stoi[c] for c in "the cat "]], device=args.device)
    out = model.generate(prompt, max_new_tokens=60, do_sample=False, pad_token_id=0)
    print("sample:", "".join(chars[i] for i in out[0].tolist()))

    first, last = sum(losses[:5]) / 5, sum(losses[-5:]) / 5
    print(f"loss: first 5 steps {first:.3f}, last 5 steps {last:.3f}")
    if args.check and not last < first:
        print("the loss did not go down", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
