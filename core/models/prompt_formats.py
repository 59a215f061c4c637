"""Named prompt formats for models whose tokenizer carries no chat template.

Each format is a Jinja chat template in the same dialect as Hugging Face tokenizers use, so
it is installed on the tokenizer at load time and every model is prompted the same way:
``tokenizer.apply_chat_template(messages, add_generation_prompt=True)``.
"""

from __future__ import annotations

# internlm/internlm-chat-7b, modeling_internlm.py, InternLMForCausalLM.build_inputs:
#   prompt = "<s><|System|>:{meta_instruction}\n" if meta_instruction else "<s>"
#   for each (query, response) in history: "<|User|>:{query}<eoh>\n<|Bot|>:{response}<eoa>\n"
#   then "<|User|>:{query}<eoh>\n<|Bot|>:"
INTERNLM_CHAT = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ '<|System|>:' + message['content'] + '\n' }}"
    "{% elif message['role'] == 'user' %}{{ '<|User|>:' + message['content'] + '<eoh>\n' }}"
    "{% else %}{{ '<|Bot|>:' + message['content'] + '<eoa>\n' }}{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|Bot|>:' }}{% endif %}"
)

# xverse/XVERSE-7B-Chat, README "Chat" example and its chat code: each user turn is
# "Human: {text}\n\nAssistant: " and each assistant turn ends with the eos token.
XVERSE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'system' %}{{ message['content'] + '\n\n' }}"
    "{% elif message['role'] == 'user' %}{{ 'Human: ' + message['content'] + '\n\nAssistant: ' }}"
    "{% else %}{{ message['content'] + eos_token }}{% endif %}"
    "{% endfor %}"
)

PROMPT_FORMATS: dict[str, str] = {
    "internlm-chat": INTERNLM_CHAT,
    "xverse": XVERSE,
}
