"""A tiny byte-level BPE tokenizer with ChatML special tokens, built offline for tests.

The "baby GPT" habit (nanoGPT, torchtune builders): tests run the real code
paths on tiny random language models, so they need a tokenizer that behaves
like SmolLM2's (byte-level BPE, `<|im_start|>`/`<|im_end|>` turns, a ChatML
chat template) but is trained in memory in milliseconds, never downloaded.
Deterministic: the same corpus and vocabulary size give the same vocabulary.
"""

from __future__ import annotations

ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)

# SmolLM2-135M-Instruct's template (as stored in its GGUF), with a neutral default system turn.
CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}"
    "{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)

# Everyday English about sounds and where they are: enough merges for words a test prompt uses.
CORPUS = (
    "You are a helpful assistant that listens with two ears.",
    "Where is the dog? The dog is behind you on the right, about two metres away.",
    "What do you hear? I hear someone talking in front of you and a bird singing to the left.",
    "Which sound is closer, the phone or the siren? The phone is closer than the siren.",
    "Is there a car? No, I don't hear a car.",
    "How many sources are there? There are three sources.",
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Turn left by ninety degrees: where is the music now? The music is straight ahead.",
    "A door slams above you, then footsteps walk from the left to the right.",
    "Answer with the letter of the correct option: A, B, C or D.",
)


def build_tiny_tokenizer(vocab_size: int = 384):
    """A transformers fast tokenizer: byte-level BPE trained on CORPUS, ChatML template.

    pad = `<|endoftext|>` (distinct from the end-of-turn `<|im_end|>`, as load_base_llm chooses).
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers  # noqa: PLC0415
    from transformers import PreTrainedTokenizerFast  # noqa: PLC0415

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(list(CORPUS) * 4, trainer=trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token=IM_START, eos_token=IM_END, unk_token=ENDOFTEXT,
        pad_token=ENDOFTEXT, model_max_length=512)
    fast.chat_template = CHATML_TEMPLATE
    return fast
