"""The tiny preset's tokenizer: a small WordPiece vocabulary built offline from the training text."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Iterable
from typing import Any

TINY_SPECIAL_TOKENS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]


# Tiny tokenizers built in this process, by (digest of their text, vocabulary size): every run of a
# study builds the same one from the same training split.
_TINY_TOKENIZERS: dict[tuple[str, int], Any] = {}


def train_tiny_tokenizer(texts: Iterable[str], vocab_size: int):
    """A small lower-cased WordPiece tokenizer built from the given text, offline and deterministic.

    The vocabulary is every character seen (as a word start and as a "##" continuation) plus
    the most frequent words, ties broken alphabetically. The `tokenizers` WordPiece trainer
    is not used because its choice among equally frequent pieces varies from run to run,
    which would break same-seed reproducibility. The same text and size give a copy of the
    tokenizer this process built before.
    """
    texts = list(texts)
    digest = hashlib.sha256()
    for text in texts:
        encoded = text.encode()
        digest.update(len(encoded).to_bytes(8, "little") + encoded)
    key = (digest.hexdigest(), vocab_size)
    if key not in _TINY_TOKENIZERS:
        if len(_TINY_TOKENIZERS) >= 8:
            _TINY_TOKENIZERS.pop(next(iter(_TINY_TOKENIZERS)))
        _TINY_TOKENIZERS[key] = _build_tiny_tokenizer(texts, vocab_size)
    return copy.deepcopy(_TINY_TOKENIZERS[key])


def _build_tiny_tokenizer(texts: list[str], vocab_size: int):
    from collections import Counter

    from tokenizers import (
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )
    from transformers import PreTrainedTokenizerFast

    normalizer = normalizers.BertNormalizer(lowercase=True)
    pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    words: Counter[str] = Counter()
    for text in texts:
        words.update(w for w, _ in pre_tokenizer.pre_tokenize_str(normalizer.normalize_str(text)))
    chars = sorted({c for w in words for c in w})
    vocab = [*TINY_SPECIAL_TOKENS, *chars, *(f"##{c}" for c in chars)]
    room = max(0, vocab_size - len(vocab))
    frequent = sorted((w for w in words if len(w) > 1), key=lambda w: (-words[w], w))[:room]
    vocab.extend(frequent)
    tok = Tokenizer(models.WordPiece({t: i for i, t in enumerate(vocab)}, unk_token="[UNK]", max_input_chars_per_word=100))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoders.WordPiece()
    cls, sep = vocab.index("[CLS]"), vocab.index("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1", special_tokens=[("[CLS]", cls), ("[SEP]", sep)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]", mask_token="[MASK]"
    )
