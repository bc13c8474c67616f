#!/usr/bin/env python3
"""Trains Tandem's test tokenizers with Hugging Face `tokenizers` and writes golden encodings.

Outputs (under the directory given as argv[1], normally tests/testdata/tokenizer/):
  tokenizer.json         Nemotron-H structure: Split(v2 regex, isolated) + ByteLevel(no regex), ByteLevel
                         decoder, TemplateProcessing "<s> $A", 1000 leading special tokens, vocab 4096.
  gpt2.json              GPT-2 structure: ByteLevel(add_prefix_space, use_regex) pre-tokenizer and
                         post-processor, merges written as "a b" strings.
  splits.json            not byte-level: Split behaviours Removed/Isolated/MergedWithPrevious/MergedWithNext/
                         Contiguous, a String pattern, invert, byte_fallback, unk, no decoder.
  added.json             NFC normalizer, ByteLevel(use_regex) and added tokens exercising lstrip / rstrip /
                         single_word / normalized, special and not.
  goldens/<name>.ids     per corpus file and add_special_tokens 0/1:
                           file<TAB>add_special<TAB>roundtrips<TAB>count<TAB>payload
                         payload: each id as 2 chars of the alphabet A-Za-z0-9+/ (id = 64*a + b; ids < 4096);
                         roundtrips is 1 when HF decode(encode(text, False), False) == text.
  goldens/<name>.decode  skip_special<TAB>ids (decimal, comma-separated)<TAB>hex of HF decode's UTF-8 bytes.
  reassign.json          hand-written: added_tokens whose ids HF re-assigns (vocab id / next free id) and a
                         merge listed twice (HF keeps the last rank).
  regex.json             hand-written: Split patterns using \\s \\h \\w \\d \\p{L} \\p{N}, whose Oniguruma meaning
                         Tandem translates to PCRE2.
  goldens/parity.tsv     config<TAB>add_special<TAB>hex of the text's UTF-8<TAB>HF ids (comma-separated): the
                         known HF/PCRE2 differences (U+180E, Unicode 15-16 letters and digits, rstrip before an
                         added token starting with a space, re-assigned ids, duplicate merges, regex escapes).
"""
import json
import random
import sys
from pathlib import Path

from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

V2_PATTERN = (r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+|"
              r"[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*|"
              r"\p{N}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SPECIAL_NAMES = ["<unk>", "<s>", "</s>", "<mask>", "<pad>", "<cls>", "<sep>"]
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"


def corpus_files(corpus_dir):
    return sorted(corpus_dir.glob("*.txt"))


def train_nemotron(texts):
    specials = SPECIAL_NAMES + [f"<SPECIAL_{i}>" for i in range(len(SPECIAL_NAMES), 1000)]
    tok = Tokenizer(models.BPE(unk_token=None, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(V2_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=4096, special_tokens=specials, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), min_frequency=1)
    tok.train_from_iterator(texts, trainer)
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s> $B",
                                                       special_tokens=[("<s>", 1)])
    assert tok.get_vocab_size() == 4096, tok.get_vocab_size()
    assert tok.token_to_id("<unk>") == 0 and tok.token_to_id("<s>") == 1 and tok.token_to_id("</s>") == 2
    assert tok.token_to_id("<SPECIAL_999>") == 999
    return tok


def train_gpt2(texts):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=True, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=True)
    trainer = trainers.BpeTrainer(vocab_size=1500, special_tokens=["<|endoftext|>"], show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    return tok


def train_added(texts):
    tok = Tokenizer(models.BPE(ignore_merges=True))
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=1200, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.add_special_tokens([
        AddedToken("<|im_start|>", special=True, normalized=False),
        AddedToken("[MASK]", lstrip=True, special=True, normalized=False),
        AddedToken("<eot>", rstrip=True, special=True, normalized=False),
    ])
    tok.add_tokens([
        AddedToken("hello", single_word=True, normalized=True, special=False),
        AddedToken("caf\u00e9", normalized=True, special=False),
        AddedToken(" world", normalized=False, special=False),
        AddedToken("\u00c5B", normalized=False, special=False, lstrip=True, rstrip=True),
    ])
    tok.post_processor = processors.TemplateProcessing(
        single="<|im_start|> $A <eot>", pair="<|im_start|> $A <eot> $B:1 <eot>:1",
        special_tokens=[("<|im_start|>", tok.token_to_id("<|im_start|>")), ("<eot>", tok.token_to_id("<eot>"))])
    return tok


def train_splits(texts):
    """Not byte-level: every Split behaviour, a String pattern, invert, byte_fallback, unk, no decoder."""
    byte_tokens = [f"<0x{b:02X}>" for b in range(256)]
    tok = Tokenizer(models.BPE(unk_token="<unk>", byte_fallback=True, fuse_unk=False))
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\s+"), behavior="merged_with_next"),
        pre_tokenizers.Split("-", behavior="removed"),
        pre_tokenizers.Split(Regex(r"\p{N}"), behavior="contiguous"),
        pre_tokenizers.Split(Regex(r"[,.;:!?]"), behavior="merged_with_previous"),
        pre_tokenizers.Split(Regex(r"[aeiouAEIOU]+"), behavior="isolated", invert=True),
    ])
    trainer = trainers.BpeTrainer(vocab_size=1500, show_progress=False, limit_alphabet=120,
                                  special_tokens=["<unk>"] + byte_tokens)
    tok.train_from_iterator(texts, trainer)
    return tok


def pack(ids):
    out = []
    for i in ids:
        assert 0 <= i < 4096
        out.append(ALPHABET[i // 64] + ALPHABET[i % 64])
    return "".join(out)


def write_goldens(name, tok, files, out_dir, rng):
    lines = []
    for f in files:
        text = f.read_bytes().decode("utf-8")
        for add in (0, 1):
            ids = tok.encode(text, add_special_tokens=bool(add)).ids
            rt = int(tok.decode(tok.encode(text, add_special_tokens=False).ids, skip_special_tokens=False) == text)
            lines.append(f"{f.name}\t{add}\t{rt}\t{len(ids)}\t{pack(ids)}")
    (out_dir / "goldens" / f"{name}.ids").write_text("\n".join(lines) + "\n")

    vocab = tok.get_vocab_size()
    special_ids = sorted(t.id if hasattr(t, "id") else k for k, t in tok.get_added_tokens_decoder().items())
    dec = []
    for n in range(400):
        length = rng.randint(0, 24)
        ids = []
        for _ in range(length):
            r = rng.random()
            if name == "splits" and r < 0.5:
                ids.append(rng.randrange(1, 257))  # byte-fallback tokens
            elif r < 0.15 and special_ids:
                ids.append(rng.choice(special_ids))
            elif r < 0.45:
                # Single-byte tokens: the first 256 BPE ids are the byte alphabet (split characters).
                base = 1000 if name == "tokenizer" else (1 if name == "gpt2" else 0)
                ids.append(base + rng.randrange(256))
            else:
                ids.append(rng.randrange(vocab))
        for skip in (0, 1):
            text = tok.decode(ids, skip_special_tokens=bool(skip))
            dec.append(f"{skip}\t{','.join(map(str, ids))}\t{text.encode('utf-8').hex()}")
    (out_dir / "goldens" / f"{name}.decode").write_text("\n".join(dec) + "\n")


def rewrite_merges_as_strings(path):
    data = json.loads(path.read_text(encoding="utf-8"))
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def write_reassign(path):
    """Added-token ids that HF does not trust, and a duplicate merge."""
    flags = {"single_word": False, "lstrip": False, "rstrip": False}
    data = {"version": "1.0", "truncation": None, "padding": None,
            "added_tokens": [dict(id=7, content="<s>", special=True, normalized=False, **flags),
                             dict(id=0, content="ab", special=True, normalized=False, **flags),
                             dict(id=1, content="<t>", special=False, normalized=True, **flags),
                             dict(id=900, content="<u>", special=True, normalized=False, **flags)],
            "normalizer": None,
            "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                              "use_regex": True},
            "post_processor": None,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                      "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False,
                      "ignore_merges": False,
                      "vocab": {"a": 0, "b": 1, "c": 2, "bc": 3, "ab": 4, "abc": 5, "Ġ": 6},
                      "merges": ["b c", "a b", "ab c", "b c"]}}
    path.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")


def write_regex(path, texts):
    """Split patterns whose escapes mean something else in PCRE2, then byte-level BPE."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(r"\h+"), behavior="isolated"),
        pre_tokenizers.Split(Regex(r"\w+|\d|\s+|[^\s\w]+"), behavior="isolated"),
        pre_tokenizers.Split(Regex(r"\p{L}+|\p{N}"), behavior="merged_with_next"),
        pre_tokenizers.Split(Regex(r"[\S&]+"), behavior="merged_with_previous"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=600, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(texts, trainer)
    tok.save(str(path))


# Texts for goldens/parity.tsv, per config.
UNICODE_16 = ("\U00031350\U00031351x \U0002EBF0\U0002EBF1 \U00011F04\U00011F05 \U0001E4F0\U0001E4F1"
              " \U0001E5F1 \u1C89\u1C8A ok \U000116D0\U000116D1 \U00016D70 \u0897a \U00013460\U00013461"
              " \U0001CCF0\U0001CCF1 x\U0001D2C0")
PARITY = {
    "tokenizer": ["\u180e's", "a\u180e\u180e b", "\u180e\u3000x\u2028\u0085y\u00a0", "it\u180e 's",
                  UNICODE_16],
    "gpt2": ["\u180e's", "a\u180e\u180e b \u180e", "x\u180e\ty", UNICODE_16],
    "added": ["<eot>  world", "<eot> world", "<eot>\u3000 world x", "[MASK]<eot>   world<eot> world",
              "hi<eot>\n world"],
    "reassign": ["<s>ab<t>abc<u>", "abc abc", "bcab<u>ab"],
    "regex": ["deadBEEF 0x1f cafe, g\u0301 \u0660\u0661 x_y \u180e\u180ez",
              "\u2003ab\u00a0\u0300c \u1E00 12ab", UNICODE_16, "a&&b [x] C0FFEE\u180e"],
}


def write_parity(out_dir):
    lines = []
    for name, texts in PARITY.items():
        tok = Tokenizer.from_file(str(out_dir / f"{name}.json"))
        for text in texts:
            for add in (0, 1):
                ids = tok.encode(text, add_special_tokens=bool(add)).ids
                lines.append(f"{name}\t{add}\t{text.encode('utf-8').hex()}\t{','.join(map(str, ids))}")
        if name == "reassign":
            for content in ("<s>", "ab", "<t>", "<u>"):
                lines.append(f"{name}\ttoken_to_id\t{content.encode('utf-8').hex()}\t{tok.token_to_id(content)}")
            lines.append(f"{name}\tvocab_size\t\t{tok.get_vocab_size()}")
    # Pre-tokenizer level: HF Split(pattern, isolated) pieces as UTF-8 byte offsets.
    gpt2 = r"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"
    split_texts = [UNICODE_16, "a\u180e's \u180e\u180e x\u180e\u2003y", "deadBEEF 0x1f g\u0301_x \u0660\u0661\U0001E4F1",
                   "\U00031350a\U0001E4F0\U0001E4F12 \u0897\u0915 \U0001D2C0\U0001CCF0"]
    for pattern in [V2_PATTERN, gpt2, r"\h+", r"\w+", r"\d", r"\s+", r"\S+", r"\p{L}+", r"\p{N}",
                    r"[\p{Lo}\p{Nd}]+", r"\P{L}+", r"[^\p{L}\s]+"]:
        pt = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
        for text in split_texts:
            offsets = []
            for _, (a, b) in pt.pre_tokenize_str(text):
                offsets.append(f"{len(text[:a].encode('utf-8'))}-{len(text[:b].encode('utf-8'))}")
            lines.append(f"split\t{pattern.encode('utf-8').hex()}\t{text.encode('utf-8').hex()}\t{','.join(offsets)}")
    (out_dir / "goldens" / "parity.tsv").write_text("\n".join(lines) + "\n")


def main():
    out_dir = Path(sys.argv[1])
    only = set(sys.argv[2:])  # optional config names; default all
    files = corpus_files(out_dir / "corpus")
    texts = [f.read_bytes().decode("utf-8") for f in files]
    (out_dir / "goldens").mkdir(parents=True, exist_ok=True)

    for name, train in [("tokenizer", train_nemotron), ("gpt2", train_gpt2), ("added", train_added),
                        ("splits", train_splits)]:
        rng = random.Random(f"{name}-4096")
        if only and name not in only:
            continue
        path = out_dir / f"{name}.json"
        train(texts).save(str(path))
        if name == "gpt2":
            rewrite_merges_as_strings(path)
        write_goldens(name, Tokenizer.from_file(str(path)), files, out_dir, rng)
    if not only or "parity" in only:
        write_reassign(out_dir / "reassign.json")
        write_regex(out_dir / "regex.json", texts)
        write_parity(out_dir)
    print("ok")


if __name__ == "__main__":
    main()
