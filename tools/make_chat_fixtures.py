#!/usr/bin/env python3
"""Build the chat-template fixtures and the ids transformers gives for them.

    .venv/bin/python tools/make_chat_fixtures.py   # (re)writes the files below

Nothing is downloaded. Three checkpoints carry a chat template, each stored
the way the Hub stores one:

* fixtures/models/tiny-qwen3-chat/  the tiny-qwen3 checkpoint (same weights,
  same tokenizer) with a Qwen3-style ChatML template (system prompt, <think>
  handling, `enable_thinking`) as a string in tokenizer_config.json; used by the
  CLI tests and docs/own-model-and-data.md;
* fixtures/chat/llama3/  a tokenizer only, with a Llama-3-style template in
  chat_template.jinja (which must win over the decoy string in
  tokenizer_config.json, as in transformers) and `bos_token` written as an
  AddedToken dict;
* fixtures/chat/unusual/  a tokenizer only, with HF's list of named templates
  ("default" and "tool_use") and a template that uses macros, loop controls,
  namespaces, Python string methods, `tojson` with non-ASCII text and `<`,
  `raise_exception` behind a branch not taken, and whitespace control.

The tokenizer of the two tokenizer-only fixtures is tiny-qwen3's, extended by
the upper-case letters, a few punctuation marks and the Llama-3 control
tokens (the tiny model's vocabulary has none of them).

fixtures/chat/expected.json lists, for every checkpoint and conversation, the
rendered text and transformers' `apply_chat_template(messages,
add_generation_prompt=True, tokenize=True)["input_ids"]`, with
`enable_thinking` absent, true and false. The Rust test
crates/rhythm-model/tests/chat_template.rs compares token for token.
"""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import transformers
from transformers import AutoTokenizer

ROOT = Path(__file__).resolve().parent.parent
MODELS = ROOT / "fixtures" / "models"
CHAT = ROOT / "fixtures" / "chat"

# A ChatML template in the style of Qwen3's: the last real user turn is
# found by walking the messages backwards, assistant turns after it keep
# their reasoning in <think> blocks, earlier ones lose it, and the generation
# prompt opens an empty think block when thinking is switched off.
QWEN3_STYLE = r"""{%- if tools %}
    {{- '<|im_start|>system\n' }}
    {%- if messages[0].role == 'system' %}
        {{- messages[0].content + '\n\n' }}
    {%- endif %}
    {{- 'tools:' }}
    {%- for tool in tools %}
        {{- '\n' + (tool | tojson) }}
    {%- endfor %}
    {{- '<|im_end|>\n' }}
{%- elif messages[0].role == 'system' %}
    {{- '<|im_start|>system\n' + messages[0].content + '<|im_end|>\n' }}
{%- endif %}
{%- set ns = namespace(multi_step_tool=true, last_query_index=messages|length - 1) %}
{%- for message in messages[::-1] %}
    {%- set index = (messages|length - 1) - loop.index0 %}
    {%- if ns.multi_step_tool and message.role == 'user' and message.content is string and not (message.content.startswith('<tool_response>') and message.content.endswith('</tool_response>')) %}
        {%- set ns.multi_step_tool = false %}
        {%- set ns.last_query_index = index %}
    {%- endif %}
{%- endfor %}
{%- for message in messages %}
    {%- if message.content is string %}
        {%- set content = message.content %}
    {%- else %}
        {%- set content = '' %}
    {%- endif %}
    {%- if (message.role == 'user') or (message.role == 'system' and not loop.first) %}
        {{- '<|im_start|>' + message.role + '\n' + content + '<|im_end|>' + '\n' }}
    {%- elif message.role == 'assistant' %}
        {%- set reasoning_content = '' %}
        {%- if message.reasoning_content is string %}
            {%- set reasoning_content = message.reasoning_content %}
        {%- elif '</think>' in content %}
            {%- set reasoning_content = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') %}
            {%- set content = content.split('</think>')[-1].lstrip('\n') %}
        {%- endif %}
        {%- if loop.index0 > ns.last_query_index %}
            {%- if loop.last or (not loop.last and reasoning_content) %}
                {{- '<|im_start|>' + message.role + '\n<think>\n' + reasoning_content.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') }}
            {%- else %}
                {{- '<|im_start|>' + message.role + '\n' + content }}
            {%- endif %}
        {%- else %}
            {{- '<|im_start|>' + message.role + '\n' + content }}
        {%- endif %}
        {{- '<|im_end|>\n' }}
    {%- elif message.role == 'tool' %}
        {%- if loop.first or (messages[loop.index0 - 1].role != 'tool') %}
            {{- '<|im_start|>user' }}
        {%- endif %}
        {{- '\n<tool_response>\n' + content + '\n</tool_response>' }}
        {%- if loop.last or (messages[loop.index0 + 1].role != 'tool') %}
            {{- '<|im_end|>\n' }}
        {%- endif %}
    {%- endif %}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|im_start|>assistant\n' }}
    {%- if enable_thinking is defined and enable_thinking is false %}
        {{- '<think>\n\n</think>\n\n' }}
    {%- endif %}
{%- endif %}"""

# A template in the style of Llama 3.1's: BOS, a system header with a
# knowledge/today date line, headers around each turn, content trimmed.
LLAMA3_STYLE = r"""{{- bos_token }}
{%- if not date_string is defined %}
    {%- set date_string = "26 Jul 2024" %}
{%- endif %}
{%- if messages[0]['role'] == 'system' %}
    {%- set system_message = messages[0]['content']|trim %}
    {%- set messages = messages[1:] %}
{%- else %}
    {%- set system_message = "" %}
{%- endif %}
{{- "<|start_header_id|>system<|end_header_id|>\n\n" }}
{{- "Cutting Knowledge Date: December 2023\n" }}
{{- "Today Date: " + date_string + "\n\n" }}
{{- system_message }}
{{- "<|eot_id|>" }}
{%- for message in messages %}
    {%- if message['role'] not in ['user', 'assistant'] %}
        {{- raise_exception('Only user and assistant roles follow the system message, found ' + message['role']) }}
    {%- endif %}
    {{- '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + '<|eot_id|>' }}
{%- endfor %}
{%- if add_generation_prompt %}
    {{- '<|start_header_id|>assistant<|end_header_id|>\n\n' }}
{%- endif %}
"""

# Deliberately unusual: block tags without '-' (trim_blocks and lstrip_blocks
# must do the work), a macro, loop controls, a namespace counter, Python
# string methods, tojson of a dict with non-ASCII text and '<', dict
# iteration, a filter chain, and raise_exception behind a branch not taken.
UNUSUAL = r"""{% macro turn(role, text, n) %}
[{{ n }}:{{ role.upper() }}] {{ text.replace('  ', ' ').strip() }}
{% endmacro %}
{{ bos_token }}
{% set ns = namespace(count=0, skipped=0) %}
{% for message in messages %}
  {% if message.role not in ('system', 'user', 'assistant') %}
    {{ raise_exception('unknown role ' ~ message.role) }}
  {% endif %}
  {% if message.content is not string %}
    {% set ns.skipped = ns.skipped + 1 %}
    {% continue %}
  {% endif %}
  {% set ns.count = ns.count + 1 %}
  {% if message.role == 'system' %}
<<SYS {{ message.content | title }}>>
  {% else %}
{{ turn(message.role, message.content, ns.count) }}
  {%- endif %}
  {% if message.meta is mapping %}
meta={{ message.meta | tojson }}
    {% for key, value in message.meta | dictsort %}
 {{ key }}={{ value }}{% if not loop.last %},{% endif %}
    {% endfor %}
  {% endif %}
  {% if ns.count >= 4 %}
    {% break %}
  {% endif %}
{% endfor %}
{% if ns.skipped %}(skipped {{ ns.skipped }}){% endif %}
{% if add_generation_prompt %}
{{ '<|im_start|>' }}{{ 'Assistant'.lower() }}{{ ':' if enable_thinking is not defined else (' think:' if enable_thinking else ' nothink:') }}
{% endif %}
"""

UNUSUAL_TOOL_USE = "{{ raise_exception('the tool_use template must not be picked without tools') }}"

LLAMA_SPECIAL = ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
EXTRA_CHARS = list("ABCDEFGHIJKLMNOPQRSTUVWXYZ") + list("[]{}<>|\"'_#;é")

CONVERSATIONS = {
    "one_user": [{"role": "user", "content": "what is 2+3?"}],
    "system_user": [
        {"role": "system", "content": "you add numbers."},
        {"role": "user", "content": "add 4 and 5."},
    ],
    "multi_turn_think": [
        {"role": "user", "content": "is 7 odd?"},
        {"role": "assistant", "content": "<think>\nlet me check.\n</think>\n\nyes."},
        {"role": "user", "content": "so what is 7*2?"},
    ],
    "reasoning_field": [
        {"role": "user", "content": "sum 1 2"},
        {"role": "assistant", "content": "3", "reasoning_content": "1+2=3"},
        {"role": "user", "content": "wait, check."},
    ],
}
UNUSUAL_CONVERSATIONS = {
    "meta_and_break": [
        {"role": "system", "content": "be brief"},
        {"role": "user", "content": "  Hi  there  ", "meta": {"lang": "fr", "note": "café <b>"}},
        {"role": "assistant", "content": None},
        {"role": "user", "content": "A"},
        {"role": "assistant", "content": "B"},
        {"role": "user", "content": "C"},
        {"role": "user", "content": "never shown"},
    ],
}


def extended_tokenizer(extra_special: list[str]) -> dict:
    """tiny-qwen3's tokenizer.json with more characters and control tokens."""
    tok = json.loads((MODELS / "tiny-qwen3" / "tokenizer.json").read_text())
    vocab = tok["model"]["vocab"]
    for ch in EXTRA_CHARS:
        if ch not in vocab:
            vocab[ch] = len(vocab)
    for content in extra_special:
        new_id = len(vocab)
        vocab[content] = new_id
        tok["added_tokens"].append(
            {
                "id": new_id,
                "content": content,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }
        )
    return tok


def write_json(path: Path, value) -> None:
    path.write_text(json.dumps(value, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def make_qwen3_chat() -> Path:
    out = MODELS / "tiny-qwen3-chat"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for name in ["config.json", "generation_config.json", "model.safetensors", "tokenizer.json"]:
        shutil.copyfile(MODELS / "tiny-qwen3" / name, out / name)
    config = json.loads((MODELS / "tiny-qwen3" / "tokenizer_config.json").read_text())
    config["eos_token"] = "<|im_end|>"
    config["chat_template"] = QWEN3_STYLE
    write_json(out / "tokenizer_config.json", config)
    return out


def make_llama3() -> Path:
    out = CHAT / "llama3"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_json(out / "tokenizer.json", extended_tokenizer(LLAMA_SPECIAL))
    config = {
        "bos_token": {
            "__type": "AddedToken",
            "content": "<|begin_of_text|>",
            "lstrip": False,
            "normalized": False,
            "rstrip": False,
            "single_word": False,
            "special": True,
        },
        "eos_token": "<|eot_id|>",
        "chat_template": "{{ raise_exception('decoy: chat_template.jinja must win') }}",
        "model_max_length": 256,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    write_json(out / "tokenizer_config.json", config)
    (out / "chat_template.jinja").write_text(LLAMA3_STYLE, encoding="utf-8")
    return out


def make_unusual() -> Path:
    out = CHAT / "unusual"
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    write_json(out / "tokenizer.json", extended_tokenizer([]))
    config = {
        "bos_token": "<|endoftext|>",
        "eos_token": "<|im_end|>",
        "chat_template": [
            {"name": "tool_use", "template": UNUSUAL_TOOL_USE},
            {"name": "default", "template": UNUSUAL},
        ],
        "model_max_length": 256,
        "tokenizer_class": "PreTrainedTokenizerFast",
    }
    write_json(out / "tokenizer_config.json", config)
    return out


def main() -> None:
    CHAT.mkdir(parents=True, exist_ok=True)
    dirs = {
        "fixtures/models/tiny-qwen3-chat": (make_qwen3_chat(), CONVERSATIONS),
        "fixtures/chat/llama3": (make_llama3(), {k: v for k, v in CONVERSATIONS.items() if k != "reasoning_field"}),
        "fixtures/chat/unusual": (make_unusual(), {**CONVERSATIONS, **UNUSUAL_CONVERSATIONS}),
    }
    cases = []
    for rel, (path, conversations) in dirs.items():
        tok = AutoTokenizer.from_pretrained(str(path))
        for name, messages in conversations.items():
            for thinking in (None, True, False):
                kwargs = {} if thinking is None else {"enable_thinking": thinking}
                text = tok.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=False, **kwargs
                )
                ids = tok.apply_chat_template(
                    messages, add_generation_prompt=True, tokenize=True, **kwargs
                )["input_ids"]
                cases.append(
                    {
                        "dir": rel,
                        "conversation": name,
                        "messages": messages,
                        "enable_thinking": thinking,
                        "text": text,
                        "ids": ids,
                    }
                )
    write_json(
        CHAT / "expected.json",
        {"transformers": transformers.__version__, "cases": cases},
    )
    print(f"wrote {len(cases)} cases to {CHAT / 'expected.json'}")


if __name__ == "__main__":
    main()
