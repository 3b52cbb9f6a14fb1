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

import torch
from transformers import AutoModelForCausalLM, LlamaConfig

import maskattn.integrations.transformers as mat
from tiny_text import documents
from training import add_arguments, exit_status, train


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
    add_arguments(parser, steps=200, batch=8, plot="tiny_lm_loss.svg")
    parser.add_argument("--row-len", type=int, default=128)
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

    def next_batch():
        rows = torch.randint(0, ids.shape[0], (args.batch,))
        # no cache in training: transformers looks for packed rows in position_ids only then
        return {"input_ids": ids[rows], "position_ids": pos[rows], "labels": labels[rows], "use_cache": False}

    losses = train(model, next_batch, args, lr=3e-3,
                   title="tiny causal LM (packed rows, maskattn backend): training loss")

    prompt = torch.tensor([[stoi[c] for c in "the cat "]], device=args.device)
    out = model.generate(prompt, max_new_tokens=60, do_sample=False, pad_token_id=0)
    print("sample:", "".join(chars[i] for i in out[0].tolist()))

    return exit_status(losses, args.check)


if __name__ == "__main__":
    sys.exit(main())
