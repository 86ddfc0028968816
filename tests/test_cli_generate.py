"""`evotoken generate`, in-process."""

from __future__ import annotations

import json

from evotoken_core.cli import main


def test_generate_json_has_the_promised_keys(tiny_checkpoint, capsys):
    code = main(["generate", "--model", str(tiny_checkpoint), "--prompt", "What is 12 + 30?",
                 "--gen-length", "16", "--block-length", "8", "--steps", "8", "--json", "--no-early-end"])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"text", "generated_ids", "nfe", "steps", "seconds"}
    assert len(out["generated_ids"]) == 16 and out["nfe"] == 8 and out["steps"] == 8


def test_prompt_ids_bypass_the_tokenizer_and_equal_the_templated_prompt(tiny_checkpoint, tiny_tokenizer, capsys):
    ids = tiny_tokenizer.apply_chat_template([{"role": "user", "content": "hi"}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False)
    common = ["--model", str(tiny_checkpoint), "--gen-length", "16", "--block-length", "8", "--steps", "8", "--json"]
    main(["generate", "--prompt", "hi", *common])
    by_text = json.loads(capsys.readouterr().out)
    main(["generate", "--prompt-ids", ",".join(map(str, ids)), *common])
    by_ids = json.loads(capsys.readouterr().out)
    assert by_text["generated_ids"] == by_ids["generated_ids"]
    main(["generate", "--prompt", "hi", "--no-chat-template", *common])
    raw = json.loads(capsys.readouterr().out)
    assert raw["generated_ids"] != by_text["generated_ids"]


def test_task_flag_sends_the_prompt_evaluation_sends(tiny_checkpoint, tiny_tokenizer, capsys):
    """`--task arith` renders the user turn exactly as `evotoken eval` does (question +
    instruction line), so the demo model sees the layout it was trained on."""
    from evotoken_core.data.prompts import render_prompt

    question = "Tom has 3 bags with 4 pens in each. How many pens does Tom have?"
    ids = tiny_tokenizer(render_prompt(tiny_tokenizer, question, "arith"), add_special_tokens=False).input_ids
    common = ["--model", str(tiny_checkpoint), "--gen-length", "16", "--block-length", "8", "--steps", "8", "--json"]
    main(["generate", "--prompt", question, "--task", "arith", *common])
    with_task = json.loads(capsys.readouterr().out)
    main(["generate", "--prompt-ids", ",".join(map(str, ids)), *common])
    assert with_task["generated_ids"] == json.loads(capsys.readouterr().out)["generated_ids"]
    main(["generate", "--prompt", question, *common])
    assert json.loads(capsys.readouterr().out)["generated_ids"] != with_task["generated_ids"]


def test_show_steps_prints_each_step_when_not_a_terminal(tiny_checkpoint, capsys):
    main(["generate", "--model", str(tiny_checkpoint), "--prompt", "hi", "--gen-length", "16",
          "--block-length", "8", "--steps", "8", "--show-steps", "--no-early-end"])
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[step")]
    assert len(lines) == 8 and "▒" in lines[0]


def test_bad_settings_and_paths_exit_2_with_a_message(tiny_checkpoint, tmp_path, capsys):
    assert main(["generate", "--model", str(tiny_checkpoint), "--prompt", "x", "--gen-length", "30"]) == 2
    assert "not divisible" in capsys.readouterr().err
    assert main(["generate", "--model", str(tmp_path / "nope"), "--prompt", "x"]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert main(["generate", "--model", str(tiny_checkpoint), "--prompt", "x", "--alpha-soft-mask", "1"]) == 2
    assert "alpha_soft_mask" in capsys.readouterr().err
