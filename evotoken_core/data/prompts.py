"""The chat prompt of an item, shared by training and evaluation.

Training renders a `TrainExample` and evaluation renders a dataset row through the same
function, so the model is scored on exactly the text layout it was trained on, and a server
run (`--base-url`) sends the same user message for the server's chat template to wrap.
"""

from __future__ import annotations

# One line appended to the question, like the reference's format instruction but short,
# because every prompt token costs the small model attention at every decoding step.
MATH_INSTRUCTION = "Think step by step and put the final answer in \\boxed{}."
COUNTDOWN_INSTRUCTION = "Use each number once with + - * / and put the expression in \\boxed{}."
INSTRUCTIONS = {
    "arith": MATH_INSTRUCTION,
    "gsm8k": MATH_INSTRUCTION,
    "svamp": MATH_INSTRUCTION,
    "math500": MATH_INSTRUCTION,
    "countdown": COUNTDOWN_INSTRUCTION,
}


def user_message(question: str, task: str) -> str:
    """The user turn: the question, then the task's instruction line (none for chat tasks)."""
    instruction = INSTRUCTIONS.get(task)
    return f"{question}\n{instruction}" if instruction else question


def chat_messages(question: str, task: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": user_message(question, task)}]


def render_prompt(tokenizer, question: str, task: str) -> str:
    """The full prompt text up to the assistant header, from the tokenizer's chat template."""
    return tokenizer.apply_chat_template(chat_messages(question, task), tokenize=False,
                                         add_generation_prompt=True)
