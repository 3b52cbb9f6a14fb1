"""Pretrain a tiny BERT-style encoder on the masked-word task through maskattn's Hugging Face backend.

Word-level, on a toy corpus generated on the spot (tiny_text.py). Each batch holds documents of
different lengths, right-padded; ``maskattn.random_token_mask`` picks 15% of the words and writes
[MASK] there, and the encoder learns to restore them. The padding reaches the kernels as lengths
(on CPU) or a key mask, never as an L x L mask. Well under a minute on a CPU:

    pip install "maskattn[transformers]"
    python examples/pretrain_tiny_bert.py       # --steps, --device cuda, --plot PATH
"""
import argparse
import sys

import torch
from transformers import AutoModelForMaskedLM, BertConfig

import maskattn as ma
import maskattn.integrations.transformers as mat
from tiny_text import documents, split_words, words
from training import add_arguments, exit_status, train

PAD, CLS, SEP, MASK = 0, 1, 2, 3
SPECIALS = ["[PAD]", "[CLS]", "[SEP]", "[MASK]"]


def encode(docs, vocab):
    """[CLS] words [SEP], right-padded to the longest document: ids (B, L) and attention_mask."""
    rows = [[CLS] + [vocab[w] for w in split_words(d)] + [SEP] for d in docs]
    length = max(map(len, rows))
    ids = torch.tensor([r + [PAD] * (length - len(r)) for r in rows])
    return ids, (ids != PAD).long()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_arguments(parser, steps=200, batch=32, plot="tiny_bert_loss.svg")
    args = parser.parse_args(argv)

    torch.manual_seed(0)
    vocab = {w: i for i, w in enumerate(SPECIALS + words())}
    docs = documents(4000, seed=1, max_sentences=3)
    print(f"corpus: {len(docs)} documents, vocabulary {len(vocab)} words")

    mat.register()
    config = BertConfig(vocab_size=len(vocab), hidden_size=128, intermediate_size=256, num_hidden_layers=4,
                        num_attention_heads=4, max_position_embeddings=128, hidden_dropout_prob=0.0,
                        attention_probs_dropout_prob=0.0, pad_token_id=PAD)
    model = AutoModelForMaskedLM.from_config(config, attn_implementation="maskattn").to(args.device)
    generator = torch.Generator().manual_seed(0)

    def next_batch():
        picked = torch.randint(0, len(docs), (args.batch,), generator=generator).tolist()
        ids, attention_mask = encode([docs[i] for i in picked], vocab)
        masked_ids, selected = ma.random_token_mask(ids, MASK, p=0.15, special_ids=[PAD, CLS, SEP], generator=generator)
        labels = ids.masked_fill(~selected, -100)  # the loss is over the masked words only
        return {"input_ids": masked_ids, "attention_mask": attention_mask, "labels": labels}

    losses = train(model, next_batch, args, lr=2e-3,
                   title="tiny BERT, masked-word task (maskattn backend): training loss")

    ids, attention_mask = encode(["the old man paints the garden gate at night."], vocab)
    ids[0, 4] = MASK  # [CLS] the old man -> paints
    words_of = {i: w for w, i in vocab.items()}
    guess = model(input_ids=ids.to(args.device), attention_mask=attention_mask.to(args.device)).logits[0, 4].argmax()
    print(f"fill in: the old man [MASK] the garden gate at night. -> {words_of[int(guess)]}")

    return exit_status(losses, args.check)


if __name__ == "__main__":
    sys.exit(main())
