#!/usr/bin/env python3
"""Generates the tokenizer test corpus (tests/testdata/tokenizer/corpus/*.txt).

Everything here is written for Tandem (no third-party text): short sentences in several scripts,
emoji and ZWJ sequences, combining marks, code, numbers, whitespace runs and special-token strings,
recombined with a fixed seed so the output is reproducible. Run by make_tokenizer.sh.
"""
import random
import sys
import unicodedata
from pathlib import Path

SENTENCES = {
    "en": [
        "The quick model reads every token twice before it answers.",
        "Hybrid layers keep a small state instead of a growing cache.",
        "She said: \"don't split the byte, it's part of a character!\"",
        "We'll meet at 9:30 on the 3rd floor; bring the 2nd draft.",
        "I've seen it, you're right, they'd agree and we're done.",
        "Rivers bend, mountains stay, and the tokenizer keeps counting.",
        "CamelCaseWords and snake_case_words and SHOUTING WORDS mix here.",
        "A co-operative, re-entrant, well-known design (mostly).",
    ],
    "de": [
        "Die Straße führt über die Brücke zum großen Fluss.",
        "Größere Übungen fördern Ausdauer und Geduld.",
        "Äpfel, Öl und Übermut: schön, dass ihr da seid!",
        "Donaudampfschifffahrtsgesellschaftskapitän ist ein langes Wort.",
    ],
    "fr": [
        "L'élève a préféré le café crème à la tisane.",
        "Où est la bibliothèque ? Elle est fermée aujourd'hui.",
        "Noël approche ; les enfants sont très impatients.",
        "Ça m'étonne qu'il ait déjà fini son œuvre.",
    ],
    "es": [
        "¿Dónde está el niño? ¡Está jugando en el jardín!",
        "La señora compró pan, azúcar y limón en la mañana.",
        "El pingüino caminó despacio por la orilla helada.",
    ],
    "tr": [
        "İstanbul'da ılık bir akşam, çay ve simit.",
        "Işık söndü; IĞDIR ve İZMİR büyük harflerle yazıldı.",
    ],
    "vi": [
        "Tiếng Việt có nhiều dấu thanh chồng lên nhau.",
        "Người ta nói rằng học một ngôn ngữ mới rất thú vị.",
    ],
    "ru": [
        "Быстрая модель читает каждое слово дважды.",
        "Мы встретимся завтра в половине десятого у входа.",
        "Ёлка стоит в углу, а кот спит на подоконнике.",
    ],
    "uk": ["Ґанок біля їхнього будинку пофарбований у жовтий колір."],
    "el": [
        "Η γρήγορη καφέ αλεπού πηδά πάνω από τον σκύλο.",
        "Καλημέρα! Τι κάνεις σήμερα; Όλα καλά.",
    ],
    "ar": [
        "يقرأ النموذج كل كلمة مرتين قبل أن يجيب.",
        "مرحبا بكم في المدينة القديمة، حيث الأسواق مليئة بالناس.",
        "العدد ١٢٣ مكتوب بالأرقام العربية الهندية.",
    ],
    "he": [
        "המודל קורא כל מילה פעמיים לפני שהוא עונה.",
        "שָׁלוֹם עֲלֵיכֶם, מַה שְּׁלוֹמְךָ הַיּוֹם?",
    ],
    "hi": [
        "मॉडल उत्तर देने से पहले हर शब्द को दो बार पढ़ता है।",
        "नदी के किनारे एक छोटा सा गाँव है, जहाँ बच्चे खेलते हैं।",
    ],
    "bn": ["আমি বাংলায় গান গাই, আর নদীর ধারে হাঁটি।"],
    "ta": ["தமிழ் மொழி மிகவும் பழமையான மொழிகளில் ஒன்று."],
    "th": ["โมเดลอ่านทุกคำสองครั้งก่อนตอบคำถาม", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ"],
    "zh": [
        "模型在回答之前会把每个词读两遍。",
        "今天天气很好，我们去公园散步吧！",
        "混合架构把注意力层和状态空间层交错排列。",
    ],
    "ja": [
        "モデルは答える前にすべての単語を二度読みます。",
        "東京の桜は三月の終わりに咲き始めます。",
        "ひらがなとカタカナと漢字がまざっています。",
    ],
    "ko": [
        "모델은 대답하기 전에 모든 단어를 두 번 읽습니다.",
        "오늘은 날씨가 좋아서 공원에 산책을 갔어요.",
    ],
    "ka": ["ქართული ანბანი ძალიან ლამაზია."],
    "hy": ["Հայերեն այբուբենը ստեղծվել է հինգերորդ դարում։"],
    "am": ["አማርኛ በግዕዝ ፊደል ይጻፋል።"],
}

EMOJI = [
    "😀", "😂", "🥲", "🤖", "🚀", "🌍", "🔥", "✨", "❤️", "👍", "👍🏽", "👋🏿", "🙏🏻",
    "👨‍👩‍👧‍👦", "👩‍💻", "🧑🏾‍🚀", "🏳️‍🌈", "🏴‍☠️", "❤️‍🔥", "👁️‍🗨️", "🇩🇪", "🇯🇵", "🇺🇸", "🇧🇷",
    "1️⃣", "#️⃣", "©️", "™", "☕", "⌚", "🫠", "🪐", "🧬", "🦀",
]

COMBINING = [
    "e\u0301", "a\u0300", "o\u0308", "n\u0303", "c\u0327", "u\u0308\u0301", "A\u030a",
    "Z\u0351\u0359\u0345", "a\u0323\u0302", "\u1100\u1161\u11a8", "i\u0307", "x\u20dd",
    "q\u0307\u0323", "\u0915\u094d\u0937", "\u0e01\u0e34\u0e4a",
]

CODE = [
    "int main(int argc, char** argv) {\n\tstd::vector<int> ids = {1, 2, 3};\n\treturn ids.size() > 2 ? 0 : 1;\n}\n",
    "def encode(text: str) -> list[int]:\n    \"\"\"Returns ids.\"\"\"\n    return [ord(c) % 4096 for c in text if c != '\\n']\n",
    "for (size_t i = 0; i < n; ++i) { sum += a[i] * b[i]; }  // dot product\n",
    "{\"name\": \"tandem\", \"layers\": 52, \"ratio\": 0.125, \"tags\": [\"mamba\", \"attention\"]}\n",
    "if [ -f \"$HOME/.bashrc\" ]; then\n  source \"$HOME/.bashrc\" && echo ok || exit 1\nfi\n",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}\n",
    "const f = async (x) => { await sleep(10); return x?.y ?? 'none'; };\n",
    "<div class=\"box\"><p>Hello &amp; welcome</p></div>\n",
    "x = a<<2 | b>>3 & ~c ^ d; y += z != w ? 1 : -1; p->q = &r;\n",
    "#include <stdio.h>\n#define MAX(a, b) ((a) > (b) ? (a) : (b))\n",
    "    elif key == 'ZWJ\\u200d':\n        pass  # TODO(tandem): handle\r\n",
]

NUMBERS = [
    "3.14159", "2,718", "1e-9", "-42", "+7", "0x1F", "0b1010", "1_000_000", "12:45:07",
    "2026-11-26", "98.6°F", "37°C", "50%", "$1,299.99", "€15", "¥2000", "½", "¾", "²", "³",
    "Ⅻ", "ⅷ", "٣٤٥", "१२३", "１２３", "①②③", "𝟙𝟚𝟛", "4096", "131072", "007",
]

SPECIALS = [
    "<s>", "</s>", "<unk>", "<mask>", "<pad>", "<cls>", "<sep>", "<SPECIAL_7>", "<SPECIAL_42>",
    "<SPECIAL_999>", "<SPECIAL_1000>", "<s", "s>", "<<s>>", "</s></s>", "< s >", "<S>", "<SPECIAL_>",
    # Strings that are added tokens in tools/reference/tokenizer/make_tokenizer.py's "added" config.
    "<|im_start|>", "[MASK]", "<eot>", "hello", "helloworld", "say hello!", "caf\u00e9", "cafe\u0301",
    " world", "\u00c5B", "A\u030aB", "<|endoftext|>",
]

SPACES = [" ", "  ", "   ", "\t", "\t\t", "\n", "\n\n", "\r\n", "\r", " \n", "\n ", " \t \n",
          "\u00a0", "\u3000", "\u2003", "\u2028", "\u2029", "\u0085", "\u202f", "\u200b", "\ufeff",
          "\u000b", "\u000c"]


def prose(rng, n):
    out = []
    langs = list(SENTENCES)
    for _ in range(n):
        lang = rng.choice(langs)
        s = rng.choice(SENTENCES[lang])
        r = rng.random()
        if r < 0.1:
            s = s.upper()
        elif r < 0.2:
            s = s.lower()
        elif r < 0.3:
            s = unicodedata.normalize("NFD", s)
        out.append(s)
        out.append(rng.choice([" ", " ", " ", "\n", "\n\n", "  "]))
    return "".join(out)


def mixed(rng, n):
    parts = []
    pools = [
        lambda: rng.choice(rng.choice(list(SENTENCES.values()))),
        lambda: "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4))),
        lambda: rng.choice(COMBINING) * rng.randint(1, 3),
        lambda: rng.choice(NUMBERS),
        lambda: rng.choice(SPACES) * rng.randint(1, 3),
        lambda: rng.choice(SPECIALS),
        lambda: "".join(rng.choice("abcdefXYZ_-.,;:!?'\"()[]{}<>/\\|@#$%^&*~`") for _ in range(rng.randint(1, 6))),
    ]
    for _ in range(n):
        parts.append(rng.choice(pools)())
        if rng.random() < 0.6:
            parts.append(" ")
    return "".join(parts)


def whitespace(rng, n):
    parts = []
    for _ in range(n):
        r = rng.random()
        if r < 0.3:
            parts.append(" " * rng.choice([1, 2, 3, 4, 7, 8, 16, 33, 64, 200]))
        elif r < 0.45:
            parts.append("\t" * rng.randint(1, 12))
        elif r < 0.6:
            parts.append("\n" * rng.randint(1, 10))
        elif r < 0.7:
            parts.append("".join(rng.choice(SPACES) for _ in range(rng.randint(1, 12))))
        else:
            parts.append(rng.choice(rng.choice(list(SENTENCES.values()))).split(" ")[0])
    return "".join(parts)


def code(rng, n):
    out = []
    for _ in range(n):
        c = rng.choice(CODE)
        if rng.random() < 0.3:
            c = c.replace("    ", "\t")
        if rng.random() < 0.2:
            c = "\n".join("  " * rng.randint(0, 4) + line for line in c.split("\n"))
        out.append(c)
    return "".join(out)


def numbers(rng, n):
    out = []
    for _ in range(n):
        r = rng.random()
        if r < 0.4:
            out.append(str(rng.randint(0, 10 ** rng.randint(1, 15))))
        elif r < 0.6:
            out.append(f"{rng.uniform(-1e6, 1e6):.{rng.randint(0, 6)}f}")
        else:
            out.append(rng.choice(NUMBERS))
        out.append(rng.choice([" ", ", ", "\n", " + ", "=", "/", ""]))
    return "".join(out)


def specials(rng, n):
    out = []
    for _ in range(n):
        s = rng.choice(SPECIALS)
        words = rng.choice(rng.choice(list(SENTENCES.values()))).split(" ")
        w = rng.choice(words)
        out.append(rng.choice([f"{w}{s}", f"{s}{w}", f" {s} ", f"{w} {s}{w}", s * rng.randint(1, 3), f"\n{s}\n"]))
    return "".join(out)


def main():
    out_dir = Path(sys.argv[1])
    out_dir.mkdir(parents=True, exist_ok=True)
    rng = random.Random(20261126)
    files = {
        "prose.txt": prose(rng, 800),
        "mixed.txt": mixed(rng, 5000),
        "whitespace.txt": whitespace(rng, 2500),
        "code.txt": code(rng, 400),
        "numbers.txt": numbers(rng, 3000),
        "specials.txt": specials(rng, 2000),
    }
    total = 0
    for name, text in files.items():
        data = text.encode("utf-8")
        (out_dir / name).write_bytes(data)
        total += len(data)
        print(f"{name}: {len(data)} bytes")
    print(f"total {total} bytes")


if __name__ == "__main__":
    main()
