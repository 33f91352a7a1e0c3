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
    """Vocabulary and merges, learnt by byte-pair encoding on the word list, so each word is one token.

    Classic BPE training: repeatedly merge the most frequent adjacent pair (ties: alphabetical) until
    every word is a single symbol. Encoding replays the merges in rank order, so a listed word always
    comes out whole; any other word falls back to shorter pieces.
    """
    symbols = byte_symbols()
    vocab: dict[str, int] = {}
    for symbol in symbols + [s + END_OF_WORD for s in symbols]:
        vocab[symbol] = len(vocab)
    corpus = [
        list(word[:-1]) + [word[-1] + END_OF_WORD]
        for word in sorted({w.lower() for w in words if w.isascii() and w.isalpha()})
    ]
    merges: list[tuple[str, str]] = []
    while True:
        counts: dict[tuple[str, str], int] = {}
        for pieces in corpus:
            for pair in zip(pieces, pieces[1:]):
                counts[pair] = counts.get(pair, 0) + 1
        if not counts:
            break
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        vocab.setdefault(best[0] + best[1], len(vocab))
        corpus = [_merge_pair(pieces, best) for pieces in corpus]
    vocab[BOS_TOKEN] = len(vocab)
    vocab[EOS_TOKEN] = len(vocab)
    return vocab, merges


def _merge_pair(pieces: list[str], pair: tuple[str, str]) -> list[str]:
    merged: list[str] = []
    index = 0
    while index < len(pieces):
        if index + 1 < len(pieces) and (pieces[index], pieces[index + 1]) == pair:
            merged.append(pieces[index] + pieces[index + 1])
            index += 2
        else:
            merged.append(pieces[index])
            index += 1
    return merged


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
