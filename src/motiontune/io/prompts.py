"""Appearance-invariant prompt simplification (VMC, seed 003 sec. 3.2).

Training on "a cat is roaring" instead of "a cat is roaring on the grass under
the tree" keeps the background and colours out of what the motion parameters
have to explain, so they learn the motion rather than the scene.
"""

from __future__ import annotations

import re

# Removed at the start of the prompt and of every comma/semicolon clause, repeatedly.
DEFAULT_STOP_PHRASES: tuple[str, ...] = (
    "a photo of", "a photograph of", "a picture of", "an image of", "a video of", "a clip of",
    "a gif of", "video of", "footage of", "a shot of", "shot of", "a close-up of", "a closeup of",
    "close-up of", "a cinematic shot of", "a cinematic video of", "cinematic shot of", "cinematic",
    "realistic", "photorealistic", "hyperrealistic", "4k", "8k", "hd", "uhd", "hdr",
    "high quality", "high-quality", "best quality", "masterpiece", "highly detailed",
    "ultra detailed", "detailed", "high resolution", "high definition", "professional",
    "trending on artstation", "award winning", "award-winning",
)  # fmt: skip

# A phrase starting with one of these describes where, not how: it is cut.
DEFAULT_PLACE_PREPOSITIONS: tuple[str, ...] = (
    "on", "in", "under", "over", "across", "through", "along", "near", "beside", "at",
    "against", "into", "onto", "above", "below", "beneath", "underneath", "inside", "behind",
    "amid", "amidst", "among", "within", "atop",
)  # fmt: skip

# Preposition phrases that describe the path of the motion: kept whole.
DEFAULT_MOTION_PHRASES: tuple[str, ...] = (
    "in a circle", "in circles", "in a spiral", "in spirals", "in a loop", "in loops",
    "in place", "in a straight line", "in a zigzag", "at high speed", "at full speed",
    "on the spot",
)  # fmt: skip

# Colour and material adjectives (appearance, not motion).
DEFAULT_APPEARANCE_WORDS: tuple[str, ...] = (
    "red", "orange", "yellow", "green", "blue", "purple", "violet", "pink", "brown", "black",
    "white", "gray", "grey", "silver", "gold", "beige", "cyan", "magenta", "turquoise", "teal",
    "maroon", "navy", "crimson", "colorful", "colourful", "multicolored", "multicoloured",
    "wooden", "metal", "metallic", "plastic", "glass", "stone", "marble", "concrete", "brick",
    "leather", "rubber", "steel", "paper", "fabric", "woolen", "woollen", "velvet", "ceramic",
    "golden",
)  # fmt: skip

# Shade words are dropped only together with a colour ("dark blue car" -> "car").
_SHADE_WORDS = frozenset({"light", "dark", "bright", "pale", "deep"})
_COLOUR_SUFFIXES = ("colored", "coloured")
_CONJUNCTIONS = frozenset({"and", "or"})
_AUXILIARY_VERBS = frozenset({"is", "are", "was", "were", "be", "being", "been"})
# Common -ing nouns that must not be taken for the verb of the clause.
_ING_NOUNS = frozenset({
    "building", "ceiling", "clothing", "evening", "morning", "something", "nothing", "everything",
    "anything", "string", "spring", "swing", "wedding", "lightning", "railing", "sibling",
})  # fmt: skip
# Words that cannot end a simplified clause (left dangling after a cut).
_DANGLING_WORDS = frozenset({"and", "or", "with", "while", "the", "a", "an", "of"})
_CLAUSE_PUNCTUATION = ",;.!?"
_TOKEN_PATTERN = re.compile(r"[^\s,;.!?]+|[,;.!?]")


def _is_verb(word: str) -> bool:
    """Heuristic verb marker: an auxiliary or an -ing form (no tagger: cheap and predictable)."""
    lower = word.lower()
    return lower in _AUXILIARY_VERBS or (len(lower) > 4 and lower.endswith("ing") and lower not in _ING_NOUNS)


def _matches(words: list[str], start: int, phrase: str) -> int:
    """Number of words ``phrase`` covers at ``words[start:]`` (case-insensitive), else 0."""
    phrase_words = phrase.lower().split()
    candidate = [word.lower() for word in words[start : start + len(phrase_words)]]
    return len(phrase_words) if candidate == phrase_words else 0


def _is_appearance(word: str, appearance: frozenset[str]) -> bool:
    """Colour/material word, also hyphenated ("blue-green", "red-coloured", "dark-blue")."""
    parts = [part for part in word.lower().split("-") if part not in _COLOUR_SUFFIXES]
    return bool(parts) and any(p in appearance for p in parts) and all(
        p in appearance or p in _SHADE_WORDS for p in parts
    )


def _strip_stop_phrases(words: list[str], stop_phrases: tuple[str, ...]) -> list[str]:
    """Remove stop phrases from the start of a clause until none matches (longest first)."""
    ordered = sorted(stop_phrases, key=lambda phrase: len(phrase.split()), reverse=True)
    while words:
        covered = next((n for phrase in ordered if (n := _matches(words, 0, phrase))), 0)
        if not covered:
            break
        words = words[covered:]
    return words


def _appearance_run_end(words: list[str], start: int, appearance: frozenset[str]) -> int:
    """End (exclusive) of the adjective run at ``start`` ("dark blue and white"), or ``start``."""
    end = start
    position = start
    while position < len(words):
        lower = words[position].lower()
        if _is_appearance(lower, appearance):
            end = position + 1
        elif lower not in _SHADE_WORDS and lower not in _CONJUNCTIONS:
            break
        position += 1
    return end


def _simplify_clause(
    words: list[str],
    prepositions: frozenset[str],
    motion_phrases: tuple[str, ...],
    appearance: frozenset[str],
) -> list[str]:
    verb_positions = [i for i, word in enumerate(words) if _is_verb(word)]
    kept: list[str] = []
    i = 0
    while i < len(words):
        lower = words[i].lower()
        motion_length = next((n for phrase in motion_phrases if (n := _matches(words, i, phrase))), 0)
        if motion_length:
            kept.extend(words[i : i + motion_length])
            i += motion_length
            continue
        if lower in prepositions:
            verb_after = next((v for v in verb_positions if v > i), None)
            has_verb_before = any(v < i for v in verb_positions)
            if not has_verb_before and verb_after is not None:
                # "a man in a red shirt running": the phrase describes the subject; resume at the verb.
                i = verb_after
                continue
            break  # the rest of the clause is the place / background
        run_end = _appearance_run_end(words, i, appearance)
        if run_end > i:
            next_word = words[run_end] if run_end < len(words) else None
            # Drop only adjectives: a colour followed by a noun ("red ball"), not a colour
            # used as the noun itself ("an orange rolling", "the ball is red").
            if next_word is not None and not _is_verb(next_word) and next_word.lower() not in prepositions:
                if kept and kept[-1].lower() in {"a", "an"}:
                    kept[-1] = _agree_article(kept[-1], next_word)  # "an orange ball" -> "a ball"
                i = run_end
                continue
        kept.append(words[i])
        i += 1
    while kept and kept[-1].lower() in _DANGLING_WORDS:
        kept.pop()
    return kept


def _agree_article(article: str, following: str) -> str:
    """"a" or "an" (keeping capitalisation) to suit ``following``, judged by spelling."""
    lower = following.lower()
    # "uni-", "use", "one", "eu-" start with a consonant sound despite the vowel letter.
    vowel_sound = lower[:1] in tuple("aeiou") and not lower.startswith(("uni", "use", "one", "eu"))
    agreed = "an" if vowel_sound else "a"
    return agreed.capitalize() if article[:1].isupper() else agreed


def simplify_prompt(
    prompt: str,
    stop_phrases: tuple[str, ...] = DEFAULT_STOP_PHRASES,
    *,
    place_prepositions: tuple[str, ...] = DEFAULT_PLACE_PREPOSITIONS,
    motion_phrases: tuple[str, ...] = DEFAULT_MOTION_PHRASES,
    appearance_words: tuple[str, ...] = DEFAULT_APPEARANCE_WORDS,
) -> str:
    """Remove appearance and background from a prompt, keeping subject, verb and direction.

    "a red ball rolling to the right on a gray floor" -> "a ball rolling to the right".

    Rules, applied to each clause (text between , ; . ! ?):

    1. Style: ``stop_phrases`` ("a photo of", "cinematic", "4k", ...) are
       removed from the start of the clause, repeatedly; a clause made only of
       them ("..., 4k, cinematic") disappears.
    2. Place: from a word in ``place_prepositions`` (on, in, under, over,
       across, through, along, near, beside, at, against, into, onto, ...) the
       rest of the clause is cut. Exception: if no verb came before it but one
       comes later, the phrase describes the subject ("a man in a red shirt
       running") and only the words up to that verb are cut.
       ``motion_phrases`` ("in a circle", "in place", ...) are paths, kept.
       "to", "towards", "from", "up", "down", "left", "right" are not place
       prepositions: "to the right" is motion.
    3. Appearance: colour and material adjectives in ``appearance_words`` (with
       shade words "light/dark/bright/pale/deep", hyphenated forms such as
       "blue-green" or "red-coloured", and runs joined by and/or) are removed
       when a noun follows them.
    4. Clean-up: dangling and/with/the/a at a clause end are dropped, empty
       clauses vanish, an "a"/"an" before a removed adjective is re-agreed
       ("an orange cat" -> "a cat"), spaces collapse, final punctuation is
       dropped.

    A "verb" is an auxiliary (is/are/was/...) or an -ing word (minus common
    -ing nouns such as "building"); plain present-tense verbs ("walks") are not
    recognised, which only matters for rule 2's exception. Never returns an
    empty string: if nothing survives, the original (stripped) prompt is returned.
    """
    original = " ".join(prompt.split())
    tokens = _TOKEN_PATTERN.findall(original)
    prepositions = frozenset(word.lower() for word in place_prepositions)
    appearance = frozenset(word.lower() for word in appearance_words)

    clauses: list[tuple[list[str], str]] = []  # (words, punctuation that ended the clause)
    current: list[str] = []
    for token in tokens:
        if token in _CLAUSE_PUNCTUATION:
            clauses.append((current, token))
            current = []
        else:
            current.append(token)
    clauses.append((current, ""))

    pieces: list[str] = []
    for words, punctuation in clauses:
        words = _strip_stop_phrases(words, stop_phrases)
        words = _simplify_clause(words, prepositions, motion_phrases, appearance)
        if words:
            pieces.append(" ".join(words) + punctuation)
    simplified = " ".join(pieces).rstrip(_CLAUSE_PUNCTUATION + " ")
    return simplified or original
