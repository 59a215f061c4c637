"""Named prompt formats for models whose tokenizer carries no chat template.

Each format is a Jinja chat template in the dialect Hugging Face tokenizers use, installed on
the tokenizer at load time, so every model is prompted the same way:
``tokenizer.apply_chat_template(messages, add_generation_prompt=True)``. Neither model has a
system role: its catalog row says so, and the system text is folded into the first user turn.
"""

from __future__ import annotations

_NO_SYSTEM = "{% if message['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"

# internlm/internlm-chat-7b, modeling_internlm.py InternLMForCausalLM.build_inputs (InternLM repo
# tools/transformers/modeling_internlm.py at 02414577):
#   for (q, a) in history: f"<|User|>:{q}<eoh>\n<|Bot|>:{a}<eoa>\n"; then f"<|User|>:{query}<eoh>\n<|Bot|>:"
# and the tokenizer puts <s> in front.
INTERNLM_CHAT = (
    "{{ bos_token }}"
    "{% for message in messages %}" + _NO_SYSTEM + "{% if message['role'] == 'user' %}"
    "{{ '<|User|>:' + message['content'] + '<eoh>\n' }}"
    "{% else %}{{ '<|Bot|>:' + message['content'] + '<eoa>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|Bot|>:' }}{% endif %}"
)

# xverse/XVERSE-7B-Chat, modeling_xverse.py _build_chat_input: a user turn is
# "Human: {text}\n\n", an assistant turn "Assistant: {text}" followed by the eos token, and the
# prompt ends with "Assistant: ".
XVERSE = (
    "{% for message in messages %}" + _NO_SYSTEM + "{% if message['role'] == 'user' %}"
    "{{ 'Human: ' + message['content'] + '\n\n' }}"
    "{% else %}{{ 'Assistant: ' + message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"
)

PROMPT_FORMATS: dict[str, str] = {
    "internlm-chat": INTERNLM_CHAT,
    "xverse": XVERSE,
}
