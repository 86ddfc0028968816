"""Short, visible tasks for the playground: sorting, reversing letters, a small fixed world,
and a few chat turns.

Their answers are plain text (no boxed format) so they read like chat, and they are short so
a step-by-step view of diffusion decoding shows tokens settling into place. Letters are written
with dashes (`c-a-t`) so each letter is its own token and reversing is a permutation of tokens
the model can see, not a spelling problem hidden inside BPE pieces.
"""

from __future__ import annotations

import random

from .example import COPY, ONE_STEP, TrainExample, wants_split

WORDS = ["cat", "dog", "sun", "tree", "fish", "bird", "moon", "star", "frog", "lamp", "rain",
         "milk", "book", "door", "ship", "cake", "wolf", "bear", "rose", "king", "snow", "leaf",
         "ring", "boat", "horse", "apple", "river", "stone", "cloud", "table", "green", "music",
         "pizza", "tiger", "house", "light", "water", "bread", "chair", "plant"]

# A fixed small world: every fact is learnable, and questions about it test recall.
WORLD = {
    "Tom": {"pet": "cat", "color": "blue", "city": "Paris"},
    "Anna": {"pet": "dog", "color": "red", "city": "Rome"},
    "Ben": {"pet": "fish", "color": "green", "city": "Oslo"},
    "Lily": {"pet": "bird", "color": "yellow", "city": "Tokyo"},
    "Sam": {"pet": "horse", "color": "black", "city": "Cairo"},
    "Mia": {"pet": "frog", "color": "white", "city": "Lima"},
}
FACT_QUESTIONS = {
    "pet": ["What pet does {name} have?", "Which animal does {name} keep?"],
    "color": ["What is the favorite color of {name}?", "Which color does {name} like best?"],
    "city": ["Where does {name} live?", "In which city does {name} live?"],
}
FACT_ANSWERS = {"pet": "{name} has a {value}.", "color": "{name} likes {value}.",
                "city": "{name} lives in {value}."}

CHAT = [
    ("Hello!", "Hello! I am a small diffusion model. Ask me a math question."),
    ("Hi", "Hi! Give me a word problem or some numbers to sort."),
    ("Who are you?", "I am a small diffusion language model that writes all tokens at once."),
    ("What can you do?", "I can solve small word problems, sort numbers and reverse words."),
    ("Thank you!", "You are welcome!"),
    ("How are you?", "I am fine, thank you. Ask me a question."),
]


def _sort_item(rng: random.Random):
    size = rng.randint(3, 5)
    values = [rng.randint(0, 99) for _ in range(size)]
    q = f"Sort these numbers: {', '.join(map(str, values))}."
    return f"sort:{','.join(map(str, values))}", q, ", ".join(map(str, sorted(values)))


def _reverse_item(rng: random.Random):
    word = rng.choice(WORDS)
    q = f"Reverse the letters: {'-'.join(word)}."
    return f"reverse:{word}", q, "-".join(reversed(word))


def _fact_item(rng: random.Random):
    name = rng.choice(sorted(WORLD))
    attr = rng.choice(sorted(FACT_QUESTIONS))
    phrasing = rng.randrange(len(FACT_QUESTIONS[attr]))
    q = FACT_QUESTIONS[attr][phrasing].format(name=name)
    a = FACT_ANSWERS[attr].format(name=name, value=WORLD[name][attr])
    return f"fact:{name}:{attr}:{phrasing}", q, a


def _chat_item(rng: random.Random):
    q, a = rng.choice(CHAT)
    return f"chat:{q}", q, a


# name -> (level, builder); the facts and the chat turns are recall (level 0).
DEMO_TASKS = {"sort": (ONE_STEP, _sort_item), "reverse": (ONE_STEP, _reverse_item),
              "fact": (COPY, _fact_item), "chat": (COPY, _chat_item)}
# Facts and chat are a fixed, finite world: training must see all of it, so they are never held out.
HELD_OUT_TASKS = ("sort", "reverse")


def sample_demo(rng: random.Random, name: str, split: str = "train") -> tuple[str, str]:
    """(question, answer) of demo task `name` from `split`."""
    build = DEMO_TASKS[name][1]
    if name not in HELD_OUT_TASKS:
        if split == "test":
            raise ValueError(f"demo task {name!r} is a fixed world with no held-out split")
        _, q, a = build(rng)
        return q, a
    while True:
        key, q, a = build(rng)
        if wants_split(key, split):
            return q, a


def sample_example(rng: random.Random, level: int | None = None) -> TrainExample:
    names = [n for n, (lvl, _) in DEMO_TASKS.items() if level is None or lvl == level]
    name = rng.choice(names)
    q, a = sample_demo(rng, name, "train")
    return TrainExample(q, a, name, DEMO_TASKS[name][0])
