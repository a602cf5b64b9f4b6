"""Regenerate the tiny CLIP-style BPE tokenizer files (vocab.json, merges.txt) in this folder.

    python adlift/editors/assets/make_tokenizer.py

The tokenizer belongs to the *untrained* tiny InstructPix2Pix used by tests and the offline demo
(:mod:`adlift.editors.tiny`). It follows CLIP's byte-level BPE layout so that transformers'
``CLIPTokenizer`` reads it unchanged:

* every printable ASCII character (CLIP's byte-to-unicode map leaves these unchanged), alone and
  with the end-of-word suffix ``</w>``; other characters become the unknown token;
* merges that build a few dozen common editing-instruction words, prefix by prefix, so typical
  instructions tokenise into whole words; anything else falls back to single characters;
* the special tokens ``<|startoftext|>`` and ``<|endoftext|>`` last, as in CLIP's vocabulary.

The output is deterministic (sorted, fixed word list): running the script reproduces the files.
"""

from __future__ import annotations

import json
from pathlib import Path

#: Words that get whole-word tokens (lowercase; CLIP's normaliser lowercases its input).
WORDS = """
a an the of to in on into it is as and with like make turn give add change him her his them
look looks man woman person face hair hat clown statue bronze gold marble snow winter fire
night day red blue green black white color colour style painting van gogh cartoon old young
""".split()


def build() -> tuple[dict[str, int], list[str]]:
    """The vocabulary (token -> id) and the ordered merge rules of the tiny tokenizer."""
    chars = [chr(c) for c in range(33, 127)]  # printable ASCII without the space
    tokens: list[str] = list(chars) + [c + "</w>" for c in chars]
    merges: list[str] = []
    seen = set(tokens)
    for word in sorted(set(WORDS)):
        if len(word) < 2:
            continue
        # Build the word left to right: ("t", "u") -> "tu", ("tu", "r") -> "tur", ("tur", "n</w>") -> "turn</w>".
        left = word[0]
        for k in range(1, len(word)):
            right = word[k] + ("</w>" if k == len(word) - 1 else "")
            merged = left + right
            if merged not in seen:
                merges.append(f"{left} {right}")
                tokens.append(merged)
                seen.add(merged)
            left = merged
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {tok: i for i, tok in enumerate(tokens)}, merges


def main(out_dir: Path | None = None) -> None:
    """Write vocab.json and merges.txt into ``out_dir`` (default: this folder)."""
    out_dir = out_dir or Path(__file__).resolve().parent
    vocab, merges = build()
    (out_dir / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    (out_dir / "merges.txt").write_text("#version: 0.2\n" + "\n".join(merges) + "\n", encoding="utf-8")
    print(f"wrote {len(vocab)} tokens and {len(merges)} merges to {out_dir}")


if __name__ == "__main__":
    main()
