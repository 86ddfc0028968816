"""The phrasing templates of data.phrasings, as people word each demo skill.

Every template has a stable id; ids in `HELD_OUT` are whole phrasings kept out of training
(at least one per kind), for a test of the skill rather than the sentence. Placeholders:
bare arithmetic `{a} {b}` with `{sym}` (+ - * /) or `{word}` (plus, minus, times, divided by);
stories `{name} {Pron} {his} {item} {group} {groups} {place}` and numbers `{a} {b} {c}`;
sorting `{list}`; reversing `{w}`. No sorting, reversing or chat template may hold a digit of its
own or miss its kind's keyword, and every arithmetic one holds its numbers: the chat template
tells the kinds apart that way (tests/test_phrasings.py checks every template through it).
"""

from __future__ import annotations

# Bare arithmetic: template id -> {op: text}; a template covers the ops it names.
_SYM = "{a} {sym} {b}"
_WORD = "{a} {word} {b}"
BARE = {
    "what_is_sym": {op: f"What is {_SYM}?" for op in "+-*/"},
    "compute_sym": {op: f"Compute {_SYM}." for op in "+-*/"},
    "calculate_sym": {op: f"Calculate {_SYM}." for op in "+-*/"},
    "equals_q": {op: f"{_SYM} = ?" for op in "+-*/"},
    "bare_sym": {op: f"{_SYM}" for op in "+-*/"},
    "how_much_word": {op: f"How much is {_WORD}?" for op in "+-*/"},
    "what_is_word": {op: f"What is {_WORD}?" for op in "+-*/"},
    "whats_word": {op: f"What's {_WORD}?" for op in "+-*/"},
    "work_out_word": {op: f"Can you work out {_WORD}?" for op in "+-*/"},
    "verb": {"+": "Add {a} and {b}.", "-": "Subtract {b} from {a}.", "*": "Multiply {a} by {b}.",
             "/": "Divide {a} by {b}."},
    "of_the": {"+": "What is the sum of {a} and {b}?", "-": "What is {a} take away {b}?",
               "*": "What is the product of {a} and {b}?", "/": "How many times does {b} go into {a}?"},
    "if_you": {"+": "What do you get if you add {a} and {b}?", "-": "What do you get if you take {b} from {a}?",
               "*": "What do you get if you multiply {a} by {b}?", "/": "What do you get if you divide {a} by {b}?"},
    "tell_me_sym": {op: f"Tell me {_SYM}." for op in "+-*/"},
}

NAMES = [("Sara", "she"), ("Leo", "he"), ("Nina", "she"), ("Omar", "he"), ("Ivy", "she"), ("Jack", "he"),
         ("Rosa", "she"), ("Finn", "he"), ("Maya", "she"), ("Kai", "he"), ("Ella", "she"), ("Noah", "he")]
STORY_ITEMS = ["apples", "pencils", "marbles", "stamps", "candies", "flowers", "cookies", "shells",
               "toy cars", "beads", "cards", "oranges", "stickers", "balloons", "rocks", "buttons"]
STORY_GROUPS = [("box", "boxes"), ("bag", "bags"), ("jar", "jars"), ("pack", "packs"), ("basket", "baskets"),
                ("row", "rows"), ("tray", "trays"), ("cup", "cups")]
PLACES = ["shop", "classroom", "garden", "kitchen", "library", "park", "school", "market"]

# Word problems: template id -> (text, ops of its steps in order).
STORIES = {
    "add_more": ("{name} has {a} {item}. {Pron} gets {b} more. How many {item} does {name} have in all?", "+"),
    "add_there": ("There are {a} {item} in the {place}. Someone brings {b} more. "
                  "How many {item} are in the {place} now?", "+"),
    "add_days": ("{name} found {a} {item} on Monday and {b} on Tuesday. How many {item} did {name} find in all?", "+"),
    "add_total": ("{name} has {a} {item} and {b} more in a bag. How many {item} is that altogether?", "+"),
    "sub_left": ("{name} had {a} {item} and used {b}. How many {item} are left?", "-"),
    "sub_remain": ("There were {a} {item} in the {place}. {b} were taken away. How many {item} remain?", "-"),
    "sub_sold": ("A {place} had {a} {item} and sold {b}. How many {item} does it have left?", "-"),
    "sub_lost": ("{name} lost {b} of {his} {a} {item}. How many {item} does {name} still have?", "-"),
    "mul_each": ("There are {a} {groups} with {b} {item} each. How many {item} are there in all?", "*"),
    "mul_holds": ("Each {group} holds {b} {item}. How many {item} are in {a} {groups}?", "*"),
    "mul_buys": ("{name} buys {a} {groups} of {b} {item}. How many {item} does {name} buy?", "*"),
    "mul_days": ("{name} gets {b} {item} every day for {a} days. How many {item} is that in all?", "*"),
    "div_each": ("{name} shares {a} {item} equally among {b} friends. How many {item} does each friend get?", "/"),
    "div_groups": ("{a} {item} are put into {b} {groups}, the same number in each. "
                   "How many {item} are in each {group}?", "/"),
    "div_split": ("{b} kids split {a} {item} evenly. How many {item} does each kid get?", "/"),
    "mul_sub": ("{name} buys {a} {groups} of {b} {item} and gives away {c}. How many {item} are left?", "*-"),
    "mul_add": ("There are {a} {groups} with {b} {item} in each and {c} more {item} on the table. "
                "How many {item} are there in all?", "*+"),
    "add_sub": ("{name} had {a} {item}, got {b} more and then lost {c}. How many {item} does {name} have now?", "+-"),
    "sub_add": ("A {place} had {a} {item}. {b} were taken out and {c} were put in. "
                "How many {item} are there now?", "-+"),
    "div_add": ("{name} shares {a} {item} equally among {b} friends. Then each friend gets {c} more. "
                "How many {item} does each friend have?", "/+"),
}

SORT = {
    "sort": "Sort {list}.",
    "sort_colon": "Sort: {list}.",
    "please_sort": "Please sort {list}.",
    "can_you_sort": "Can you sort {list}?",
    "sort_list": "Sort the list {list}.",
    "sort_small_large": "Sort these numbers from smallest to largest: {list}.",
    "put_in_order": "Put {list} in order.",
    "put_these_in_order": "Put these numbers in order: {list}.",
    "order_these": "Order these numbers: {list}.",
    "least_to_greatest": "Order from least to greatest: {list}.",
    "ascending": "List {list} in ascending order.",
    "increasing": "Arrange {list} in increasing order.",
    "small_to_large": "Arrange from smallest to largest: {list}.",
    "sort_ascending": "Write {list} sorted in ascending order.",
}

REVERSE = {
    "reverse_word": "Reverse the word {w}.",
    "reverse": "Reverse {w}.",
    "reverse_colon": "Reverse: {w}.",
    "reverse_quoted": 'Reverse "{w}".',
    "reverse_letters_of": "Reverse the letters of {w}.",
    "can_you_reverse": "Can you reverse the word {w}?",
    "spell_backwards": "Spell {w} backwards.",
    "spell_word_backwards": "Spell the word {w} backwards.",
    "spelled_backwards": "What is {w} spelled backwards?",
    "write_backwards": "Write {w} backwards.",
    "write_in_reverse": "Write the word {w} in reverse.",
    "reverse_of": "What is the reverse of {w}?",
    "backwards_how": "Backwards, how is {w} spelled?",
}

CHAT_REPLY = ("I am a small demo diffusion model. I can do sums and word problems, sort numbers "
              "and reverse words.")
CHAT = {
    "hello_who": "Hello, who are you?",
    "hi_there": "Hi there!",
    "good_morning": "Good morning!",
    "name": "What is your name?",
    "joke": "Tell me a joke.",
    "weather": "What is the weather like today?",
    "poem": "Can you write a poem?",
    "help": "What can you help me with?",
    "capital": "What is the capital of France?",
    "story": "Tell me a story.",
    "feel": "How do you feel?",
    "translate": "Translate hello into Spanish.",
}

# Whole phrasings never used for training: the held-out split.
HELD_OUT = frozenset({
    "if_you", "tell_me_sym",                                  # bare arithmetic
    "add_days", "sub_lost", "mul_days", "div_split", "sub_add",  # stories
    "sort_ascending", "small_to_large",                       # sorting
    "backwards_how", "write_in_reverse",                      # reversing
    "story", "translate",                                     # chat
})
