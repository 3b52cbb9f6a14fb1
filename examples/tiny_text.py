"""A small English-like corpus made up on the spot (no download): documents of a few sentences
from a toy grammar in which each subject has its own verbs and each verb its own objects, so a
tiny model has structure to learn within a minute on a CPU."""
import random
from typing import List

VERBS_OF = {
    "the cat": ("chases", "watches"), "a dog": ("finds", "carries"), "the old man": ("paints", "forgets"),
    "my sister": ("counts", "likes"), "a small bird": ("follows", "sees"), "the baker": ("carries", "counts"),
}
OBJECTS_OF = {
    "chases": ("the red ball", "a tired fox"), "watches": ("the moon", "the river"),
    "finds": ("a wooden box", "three apples"), "carries": ("a long letter", "two blue kites"),
    "paints": ("the garden gate", "the empty chair"), "forgets": ("a quiet song", "the moon"),
    "counts": ("three apples", "the stars"), "likes": ("a quiet song", "the river"),
    "follows": ("the river", "a tired fox"), "sees": ("the stars", "the garden gate"),
}
ENDINGS = ("", "", " today", " at night", " again", " in the rain")


def sentence(rng: random.Random) -> str:
    subject = rng.choice(sorted(VERBS_OF))
    verb = rng.choice(VERBS_OF[subject])
    return f"{subject} {verb} {rng.choice(OBJECTS_OF[verb])}{rng.choice(ENDINGS)}."


def documents(count: int, seed: int = 0, max_sentences: int = 4) -> List[str]:
    """`count` documents of 1 to `max_sentences` sentences each."""
    rng = random.Random(seed)
    return [" ".join(sentence(rng) for _ in range(rng.randint(1, max_sentences))) for _ in range(count)]


def split_words(text: str) -> List[str]:
    return text.replace(".", " .").split()


def words() -> List[str]:
    """Every word the grammar uses, sorted, for a word-level vocabulary."""
    phrases = list(VERBS_OF) + list(OBJECTS_OF) + [o for objs in OBJECTS_OF.values() for o in objs] + list(ENDINGS)
    return sorted({w for p in phrases for w in split_words(p + ".")})
