"""Outside clients against a live server on loopback, used the way their users use them:
langchain-openai (the chat model and the completions LLM), litellm, and lm-eval's
`local-chat-completions` backend.

Each client's answer is compared with the same request sent as raw HTTP, so a failure here is
the client and the server disagreeing about the protocol (a field sent that we refuse, a field
we return that the client cannot parse), not a decoding difference; the decoding itself is
pinned against the core elsewhere. The lm-eval run is scored against `evotoken eval` on the
same 20 shipped arithmetic items: the two harnesses must report the same accuracy.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import httpx
import pytest

from evotoken_core import assets
from server import Settings
from tests.live_server import LiveServer

# litellm fetches a price list from the internet when it is imported, unless told not to.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

pytestmark = pytest.mark.timeout(300)
KEY = "sk-compat-test"
AUTH = {"authorization": f"Bearer {KEY}"}
QUESTIONS = ["What is 12 + 30?", "Sort the list: 5, 3, 9, 1.", "Hello! How are you today?"]
EXTRAS = {"block_length": 4, "steps": 6}  # diffusion settings, sent the way each client sends extras


@pytest.fixture(scope="module")
def live(tiny_checkpoint):
    """float64, so batched and solo decoding agree token for token (`batch` is compared with
    one-by-one answers)."""
    s = LiveServer(Settings(model=str(tiny_checkpoint), served_model_name="tiny",
                            api_key=[KEY], dtype="float64", block_length=8, max_tokens=16,
                            max_batch_size=8))
    yield s
    s.close()


def raw_chat(live, question: str, **extra) -> str:
    body = {"model": "tiny", "messages": [{"role": "user", "content": question}], "max_tokens": 12,
            "temperature": 0, **extra}
    r = httpx.post(f"{live.url}/v1/chat/completions", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["message"]["content"]


def raw_completion(live, prompt: str, **extra) -> str:
    body = {"model": "tiny", "prompt": prompt, "max_tokens": 12, "temperature": 0, **extra}
    r = httpx.post(f"{live.url}/v1/completions", json=body, headers=AUTH, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["choices"][0]["text"]


# --- the OpenAI SDK: model retrieval -----------------------------------------------------------

def test_openai_sdk_retrieves_the_served_model_and_gets_404_for_another(live):
    import openai

    client = openai.OpenAI(base_url=live.url + "/v1", api_key=KEY, max_retries=0, timeout=60)
    model = client.models.retrieve("tiny")
    assert model.id == "tiny" and model.object == "model"
    with pytest.raises(openai.NotFoundError) as missing:
        client.models.retrieve("gpt-4")
    assert missing.value.code == "model_not_found"


# --- langchain-openai ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def chat_model(live):
    langchain_openai = pytest.importorskip("langchain_openai")
    return langchain_openai.ChatOpenAI(model="tiny", base_url=live.url + "/v1", api_key=KEY, temperature=0,
                                       max_tokens=12, max_retries=0, timeout=60)


def test_langchain_chat_invoke_equals_the_raw_answer(live, chat_model):
    message = chat_model.invoke(QUESTIONS[0])
    assert message.content == raw_chat(live, QUESTIONS[0])
    assert message.response_metadata["finish_reason"] in ("stop", "length")
    usage = message.usage_metadata
    assert usage["output_tokens"] > 0 and usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    tuned = chat_model.bind(extra_body=EXTRAS).invoke(QUESTIONS[0])  # diffusion settings as extras
    assert tuned.content == raw_chat(live, QUESTIONS[0], **EXTRAS)


def test_langchain_chat_stream_concatenates_to_the_answer(live, chat_model):
    chunks = list(chat_model.stream(QUESTIONS[1]))
    assert len(chunks) > 1
    assert "".join(c.content for c in chunks) == raw_chat(live, QUESTIONS[1])


def test_langchain_chat_batch_equals_one_by_one(live, chat_model):
    answers = chat_model.batch(QUESTIONS)  # sent concurrently: the server batches them
    assert [a.content for a in answers] == [raw_chat(live, q) for q in QUESTIONS]


def test_langchain_completions_llm_invoke_and_stream(live):
    langchain_openai = pytest.importorskip("langchain_openai")
    llm = langchain_openai.OpenAI(model="tiny", base_url=live.url + "/v1", api_key=KEY, temperature=0,
                                  max_tokens=12, max_retries=0, timeout=60)
    prompt = "The quick brown fox"
    assert llm.invoke(prompt) == raw_completion(live, prompt)
    assert "".join(llm.stream(prompt)) == raw_completion(live, prompt)


# --- litellm -------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def litellm():
    return pytest.importorskip("litellm")


def test_litellm_completion_and_stream(live, litellm):
    ask = dict(model="openai/tiny", api_base=live.url + "/v1", api_key=KEY, max_tokens=12, temperature=0,
               messages=[{"role": "user", "content": QUESTIONS[0]}])
    response = litellm.completion(**ask)
    assert response.choices[0].message.content == raw_chat(live, QUESTIONS[0])
    assert response.usage.completion_tokens > 0
    streamed = "".join(chunk.choices[0].delta.content or "" for chunk in litellm.completion(**ask, stream=True))
    assert streamed == raw_chat(live, QUESTIONS[0])
    tuned = litellm.completion(**ask, extra_body=EXTRAS)
    assert tuned.choices[0].message.content == raw_chat(live, QUESTIONS[0], **EXTRAS)


def test_litellm_text_completion(live, litellm):
    prompt = "The quick brown fox"
    response = litellm.text_completion(model="text-completion-openai/tiny", api_base=live.url + "/v1",
                                       api_key=KEY, prompt=prompt, max_tokens=12, temperature=0)
    assert response.choices[0].text == raw_completion(live, prompt)


# --- lm-eval ---------------------------------------------------------------------------------------

ITEMS = 20

TASK_YAML = """\
task: evotoken_arith20
dataset_path: json
dataset_kwargs:
  data_files:
    test: {data}
test_split: test
output_type: generate_until
doc_to_text: !function scoring.doc_to_text
doc_to_target: !function scoring.doc_to_target
process_results: !function scoring.process_results
generation_kwargs:
  until: []
  max_gen_toks: {max_tokens}
  do_sample: false
  temperature: 0
metric_list:
  - metric: acc
    aggregation: mean
    higher_is_better: true
"""

# Prompt and score as `evotoken eval` does, by calling the same functions.
TASK_FUNCTIONS = textwrap.dedent('''\
    from evotoken_core.data.prompts import user_message
    from evotoken_core.eval.scoring import gsm8k_reference, score_numeric


    def doc_to_text(doc):
        return user_message(doc["question"].strip(), "arith")


    def doc_to_target(doc):
        return gsm8k_reference(doc["answer"])


    def process_results(doc, results):
        return {"acc": float(score_numeric(results[0], gsm8k_reference(doc["answer"])))}
''')


@pytest.fixture(scope="module")
def shipped():
    """The shipped demo model, whose arithmetic accuracy means something (a random tiny model
    scores 0 on every harness). float64 on both sides, so however the server and the local
    engine batch the 20 rows, they decode the same tokens."""
    s = LiveServer(Settings(served_model_name="evotoken", dtype="float64", threads=1,
                            max_batch_size=8))
    yield s
    s.close()


def offline_env() -> dict[str, str]:
    return {**os.environ, "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
            "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}


@pytest.mark.timeout(900)  # two harnesses over 20 items each, on two shared cores
def test_lm_eval_through_chat_completions_scores_like_evotoken_eval(shipped, tmp_path):
    pytest.importorskip("lm_eval")
    card = httpx.get(f"{shipped.url}/v1/models/evotoken", timeout=30).json()
    max_tokens = card["evotoken_defaults"]["max_tokens"]
    data = tmp_path / "arith20.jsonl"
    rows = (Path(assets.__file__).parent / "data" / "arith_test.jsonl").read_text().splitlines()[:ITEMS]
    data.write_text("\n".join(rows) + "\n")
    tasks = tmp_path / "tasks"
    tasks.mkdir()
    (tasks / "evotoken_arith20.yaml").write_text(TASK_YAML.format(data=data, max_tokens=max_tokens))
    (tasks / "scoring.py").write_text(TASK_FUNCTIONS)

    out = tmp_path / "lm_eval_out"
    model_args = (f"model=evotoken,base_url={shipped.url}/v1/chat/completions,num_concurrent=4,"
                  "max_retries=1,tokenized_requests=False")
    result = subprocess.run(
        [sys.executable, "-m", "lm_eval", "--model", "local-chat-completions", "--model_args", model_args,
         "--tasks", "evotoken_arith20", "--include_path", str(tasks), "--apply_chat_template",
         "--output_path", str(out), "--log_samples"],
        capture_output=True, text=True, timeout=420, env=offline_env(), cwd=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    (report,) = out.rglob("results_*.json")
    lm_eval_acc = json.loads(report.read_text())["results"]["evotoken_arith20"]["acc,none"]

    ours = subprocess.run(
        [sys.executable, "-m", "evotoken_core.cli", "eval", "--task", "arith", "--data", str(data),
         "--dtype", "float64", "--threads", "1", "--json", "--no-progress"],
        capture_output=True, text=True, timeout=420, env=offline_env())
    assert ours.returncode == 0, ours.stderr[-3000:]
    evotoken_acc = json.loads(ours.stdout)["results"]["arith"]["evotoken"]["0.7"]["accuracy"]
    assert 0 < evotoken_acc
    assert lm_eval_acc == pytest.approx(evotoken_acc), (lm_eval_acc, evotoken_acc)
