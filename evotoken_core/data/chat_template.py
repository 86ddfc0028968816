"""The demo model's chat template: it adds the instruction line the model was trained with.

The demo model answers in its trained format (`<reasoning>…</reasoning>` then a boxed answer)
only when the user turn ends with the task's instruction line (`prompts.INSTRUCTIONS`). A
newcomer types the bare question, and the server is model-agnostic: it only applies the
checkpoint's chat template. So the template itself looks at each user turn and, when the
question is arithmetic (a word problem or a bare sum) or Countdown and no instruction is there
yet, appends the line training used. Sorting, reversing and chat were trained with no line, so
they pass through unchanged (they are detected first, so that `Sort 5, 2, 9.` is not taken
for arithmetic because it holds digits).

A turn that already carries an instruction (it holds `\\boxed{}`) is left exactly as it is:
`evotoken eval` appends the reference's line itself, so the published datasets are prompted
byte for byte as before and the line is never doubled. Every training item of the old mixture
renders the same under this template as under the plain LLaDA one (tests/test_chat_template.py).

Jinja in transformers has no regular expressions, so kinds are found by lower-case keywords
and by the presence of a digit; the rules are deliberately few, and a question they misjudge
still reaches the model (with or without the line), never an error.
"""

from __future__ import annotations

from .prompts import COUNTDOWN_INSTRUCTION, MATH_INSTRUCTION

# Keywords that mark a kind in the lower-cased user turn; checked in this order.
SORT_WORDS = ("sort", "in order", "order the", "order these", "order from", "smallest to", "least to",
              "largest to", "biggest to", "ascending", "increasing")
REVERSE_WORDS = ("reverse", "backward")
COUNTDOWN_WORDS = ("target",)  # with "numbers": the Countdown question `Numbers: 1, 2. Target: 3.`


def _jinja_list(words: tuple[str, ...]) -> str:
    return "[" + ", ".join(repr(w) for w in words) + "]"


def _jinja_string(text: str) -> str:
    # Single-quoted Jinja literal; the instructions hold a backslash and no quote.
    assert "'" not in text
    return "'" + text.replace("\\", "\\\\") + "'"


def build_chat_template() -> str:
    """LLaDA-8B-Instruct's turn layout, with the instruction line added to bare questions.
    Every tag trims the whitespace around it, so the template's own line breaks never reach
    the prompt."""
    return f"""{{%- set ns = namespace() -%}}
{{{{- bos_token -}}}}
{{%- for message in messages -%}}
  {{%- set content = message['content'] | trim -%}}
  {{%- if message['role'] == 'user' and '\\\\boxed{{}}' not in content -%}}
    {{%- set low = content | lower -%}}
    {{%- set ns.kind = 'chat' -%}}
    {{%- for digit in '0123456789' if digit in low -%}}{{%- set ns.kind = 'math' -%}}{{%- endfor -%}}
    {{%- for word in {_jinja_list(SORT_WORDS + REVERSE_WORDS)} if word in low -%}}
      {{%- set ns.kind = 'chat' -%}}
    {{%- endfor -%}}
    {{%- for word in {_jinja_list(COUNTDOWN_WORDS)} if word in low and 'numbers' in low -%}}
      {{%- set ns.kind = 'countdown' -%}}
    {{%- endfor -%}}
    {{%- if ns.kind == 'math' -%}}
      {{%- set content = content + '\\n' + {_jinja_string(MATH_INSTRUCTION)} -%}}
    {{%- elif ns.kind == 'countdown' -%}}
      {{%- set content = content + '\\n' + {_jinja_string(COUNTDOWN_INSTRUCTION)} -%}}
    {{%- endif -%}}
  {{%- endif -%}}
  {{{{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + content + '<|eot_id|>' -}}}}
{{%- endfor -%}}
{{%- if add_generation_prompt -%}}
  {{{{- '<|start_header_id|>assistant<|end_header_id|>\\n\\n' -}}}}
{{%- endif -%}}
"""


CHAT_TEMPLATE = build_chat_template()


def install_chat_template(tokenizer):
    """Give `tokenizer` the demo template (in place) and return it."""
    tokenizer.chat_template = CHAT_TEMPLATE
    return tokenizer
