"""The default model's special tokens, in id order from 0 (docs/stream-format.md)."""
SPECIAL_TOKENS = ["<|sink|>", "<|endoftext|>", "<|fim_prefix|>", "<|fim_suffix|>", "<|fim_middle|>",
                  "<|fim_pad|>", "<|file_sep|>", "<|file|>", "<|edit|>", "<|save|>", "<|im_start|>",
                  "<|im_end|>", "<|summary|>"]
ID = {t: i for i, t in enumerate(SPECIAL_TOKENS)}
SINK, EOT = ID["<|sink|>"], ID["<|endoftext|>"]
FIM_PRE, FIM_SUF, FIM_MID, FIM_PAD = ID["<|fim_prefix|>"], ID["<|fim_suffix|>"], ID["<|fim_middle|>"], ID["<|fim_pad|>"]
VOCAB_SIZE = 12288
# Qwen2's pre-tokenizer regex (its tokenizer.json); stored in GGUF as tokenizer.ggml.pre=qwen2.
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*"
                 r"|\s*[\r\n]+|\s+(?!\S)|\s+")
# ChatML, the same shape as Qwen2.5's template (without tool calls).
CHAT_TEMPLATE = (
    "{%- if messages[0]['role'] == 'system' %}"
    "{{- '<|im_start|>system\\n' + messages[0]['content'] + '<|im_end|>\\n' }}"
    "{%- else %}"
    "{{- '<|im_start|>system\\nYou are Endless, a coding assistant.<|im_end|>\\n' }}"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if not (message['role'] == 'system' and loop.first) %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endif %}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}"
    "{{- '<|im_start|>assistant\\n' }}"
    "{%- endif %}"
)
