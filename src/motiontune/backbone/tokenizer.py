"""An offline CLIP tokenizer: byte-level BPE vocabulary written from a word list.

Real backbones ship their tokenizer; the embedded tiny backbone cannot download one, so it gets a
CLIP-compatible tokenizer whose vocabulary is every byte symbol (as in GPT-2/CLIP byte-level BPE) plus
whole-word merges for the words of our prompts. Unknown words still tokenize, character by character.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

BOS_TOKEN = "<|startoftext|>"
EOS_TOKEN = "<|endoftext|>"
END_OF_WORD = "</w>"


def byte_symbols() -> list[str]:
    """The 256 printable stand-ins for bytes used by byte-level BPE (GPT-2's mapping, used by CLIP)."""
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    symbols = []
    shifted = 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + shifted))
            shifted += 1
    return symbols


def build_bpe_vocabulary(words: Iterable[str]) -> tuple[dict[str, int], list[tuple[str, str]]]:
    """Vocabulary and merges so that each given (lower-case ASCII) word becomes one token.

    Merges grow each word left to right (``r e`` -> ``re``, ``re d</w>`` -> ``red</w>``); a merge learnt
    for one word can pre-empt another's, which only splits that word into more tokens.
    """
    symbols = byte_symbols()
    vocab: dict[str, int] = {}
    for symbol in symbols + [s + END_OF_WORD for s in symbols]:
        vocab[symbol] = len(vocab)
    merges: list[tuple[str, str]] = []
    seen_merges: set[tuple[str, str]] = set()
    for word in sorted({w.lower() for w in words if w.isascii() and w.isalpha()}):
        pieces = list(word[:-1]) + [word[-1] + END_OF_WORD]
        current = pieces[0]
        for piece in pieces[1:]:
            pair = (current, piece)
            current = current + piece
            if pair not in seen_merges:
                seen_merges.add(pair)
                merges.append(pair)
            vocab.setdefault(current, len(vocab))
    vocab[BOS_TOKEN] = len(vocab)
    vocab[EOS_TOKEN] = len(vocab)
    return vocab, merges


def write_clip_tokenizer(out_dir: Path, words: Iterable[str], model_max_length: int) -> None:
    """Write ``vocab.json`` + ``merges.txt`` and the transformers tokenizer files to ``out_dir``."""
    from transformers import CLIPTokenizer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    vocab, merges = build_bpe_vocabulary(words)
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    lines = ["#version: 0.2"] + [f"{left} {right}" for left, right in merges]
    (out_dir / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    tokenizer = CLIPTokenizer.from_pretrained(str(out_dir), model_max_length=model_max_length)
    tokenizer.save_pretrained(str(out_dir))
