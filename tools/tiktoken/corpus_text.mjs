// Text for tokenizer parity cases and the tokenizer benchmark: hand-written strings in many
// scripts and shapes, plus documents from the public corpora under SLUICE_SHARED_DIR/data.

import { readFileSync, existsSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { join } from "node:path";

// Hand-written strings: every script and oddity the product meets, each on purpose.
export const handWritten = [
  // English and contractions in every case
  "Hello, world!", "hello world", "  leading spaces", "trailing spaces   ", "I'm sure you'll see it's fine, isn't it? We'd've known.",
  "DON'T SHOUT. I'M HERE. YOU'LL SEE. IT'S FINE. THEY'RE OK. WE'VE GONE. HE'D GO.",
  "Don'T mIx'S cAsE'Ll 'Re 'vE 'M 'D", "'s 't 're 've 'm 'll 'd", "'S'T'RE'VE'M'LL'D", "rock'n'roll o'clock y'all",
  "the cat's hat", "'ſ and 'ſt (long s)", "’s curly apostrophe’ll not match",
  // whitespace oddities
  "\t\ttabs\tand\tspaces  ", "line one\nline two\n\nline four", "crlf\r\nline\r\n\r\nend\r\n", "\r\r\n\n\r", " \n \n ",
  "a  b   c    d", "\u00a0non-breaking\u00a0space", "em\u2003space and thin\u2009space", "ideographic\u3000space",
  "line\u2028separator\u2029paragraph", "next line\u0085NEL", "vertical\u000btab and form\u000cfeed", "zero\u200bwidth\u200cjoiners\u200d",
  "    \n    indented\n        more\n", "\n\n\n\n", "   ", " ", "\n", "\r\n", "a\n", " a", "  a", "\ta", "trailing newline\n",
  // numbers
  "1234567890", "3.14159265358979", "1,000,000.00", "-42 +17 0x1F 0b1010 1e-9", "phone: +1 (555) 123-4567", "2024-01-31T12:34:56Z",
  "١٢٣٤٥٦٧٨٩٠ Arabic-Indic digits", "१२३४५ Devanagari digits", "一二三 四五六 123 ４５６ full-width", "½ ¾ ⅓ Ⅻ ⑫ ² ³ numeric symbols",
  // Chinese, Japanese, Korean
  "我们的文档问答系统运行在同一个进程中。", "机器学习是人工智能的一个分支，它使计算机能够从数据中学习。", "繁體中文：資料庫與權限管理",
  "日本語のテキストです。ひらがな、カタカナ、漢字が混ざっています。", "東京タワーは333メートルです", "ｶﾀｶﾅ 半角カナ",
  "한국어 문장입니다. 토크나이저가 잘 작동하나요?", "서울특별시 강남구 테헤란로 123",
  // Arabic, Hebrew (RTL), Persian, Urdu
  "مرحبا بالعالم! هذا نص عربي للاختبار.", "اللُّغَةُ العَرَبِيَّةُ مع التشكيل", "שלום עולם, זה טקסט בעברית.", "עִבְרִית עם ניקוד",
  "سلام دنیا، این یک متن فارسی است.", "mixed RTL: the word שלום means peace and مرحبا means hello", "\u202eright-to-left override\u202c",
  // Indic, Thai, others
  "नमस्ते दुनिया! यह हिंदी पाठ है।", "ক্ষমা করবেন, বাংলা লেখা", "தமிழ் மொழி மிகவும் பழமையானது", "ภาษาไทยไม่มีการเว้นวรรคระหว่างคำ",
  "ພາສາລາວ", "ខ្មែរ", "မြန်မာဘာသာ", "ქართული ენა", "Հայերեն լեզու", "አማርኛ ቋንቋ", "ᠮᠣᠩᠭᠣᠯ ᠪᠢᠴᠢᠭ",
  // Cyrillic, Greek, Latin with diacritics
  "Привет, мир! Это тестовый текст на русском языке.", "Съешь же ещё этих мягких французских булок, да выпей чаю.", "Українська мова: ґ, є, і, ї",
  "Γειά σου Κόσμε! Ελληνικά κείμενα.", "ΤΑ ΚΕΦΑΛΑΙΑ ΕΛΛΗΝΙΚΑ", "Ça va? Où est la bibliothèque? Größe, Straße, Æsir, Øre, Łódź, Dvořák, Şişli",
  "Tiếng Việt có nhiều dấu: ường, ượng, ẫn", "İstanbul ıI iİ", "ǅemal ǈubljana ǋ titlecase digraphs",
  // combining marks and normalisation forms
  "e\u0301 vs \u00e9", "a\u0300\u0301\u0302\u0303\u0304 stacked", "Z\u0351\u0352\u0357a\u0358\u0359l\u035ag\u035bo\u035c zalgo", "n\u0303 ñ", "\u0301 leading combining mark",
  "ﬁ ﬂ ligatures", "Å Å Å (three forms)",
  // emoji
  "👋 hello 🌍", "👨‍👩‍👧‍👦 family ZWJ", "👩🏽‍💻 woman technologist medium skin", "👍🏻👍🏼👍🏽👍🏾👍🏿 skin tones", "🏳️‍🌈 🏴‍☠️ flags",
  "🇺🇸🇬🇧🇯🇵 regional indicators", "❤️ ❤ ♥️ variation selectors", "1️⃣ #️⃣ keycaps", "🧑‍🤝‍🧑", "🤷‍♀️🤦‍♂️", "😀😃😄😁😆😅🤣😂🙂🙃",
  // code
  "fn main() {\n    println!(\"Hello, {}!\", name);\n}\n", "def f(x: int) -> int:\n\treturn x ** 2  # square\n",
  "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }", "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
  "const re = /^[a-z0-9_-]{3,16}$/i;", "<div class=\"x\">&nbsp;&lt;tag&gt;</div>", "{\"key\": [1, 2.5, null, true], \"nested\": {\"a\": \"b\"}}",
  "#include <vector>\nstd::vector<int> v{1,2,3};", "$ cat /etc/passwd | grep root && echo ok || exit 1", "x+=1;y-=2;z*=3;w/=4;a%=5;b^=6;c|=7;d&=8",
  "    if err != nil {\n\t\treturn nil, fmt.Errorf(\"open %s: %w\", path, err)\n\t}", "https://example.com/path?q=a+b&lang=en#frag",
  "user@example.com", "C:\\Windows\\System32\\drivers\\etc\\hosts", "=== --- *** ### !!! ??? ... ,,, ;;; :::",
  // special-token text is plain text in ordinary mode
  "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>", "<|fim_prefix|>a<|fim_suffix|>b<|fim_middle|>", "<|endofprompt|> <|pad|>", "<|not_special|> <| |>",
  // odd characters
  "\u0000null\u0001control\u001f", "\ufeffBOM at start", "\ufffd replacement", "\u{10ffff} last code point", "\u{1d400}\u{1d401} math bold",
  "\u{20000}\u{2a700} CJK extension B and C", "\u{e0041}\u{e0042} tag characters", "\u{f0000} private use plane 15", "\ue000 private use",
  "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 fraktur", "Ⓐⓑⓒ circled", "ａｂｃ full-width latin", "ꙮ multiocular o", "𓀀𓀁 hieroglyphs", "𐌰𐌱 gothic",
];

// Fragments random mixes draw from: each stresses a boundary of the pre-tokenizer pattern.
export const fragments = [
  "a", "Z", "é", "ß", "ж", "Ω", "中", "日本", "한", "ع", "ש", "ह", "ก", "1", "22", "333", "4444", "٣", "½", " ", "  ", "\t", "\n", "\r\n", "\r",
  "\u00a0", "\u3000", "\u2028", "\u0085", "'", "'s", "'S", "'ll", "'LL", "'Re", "'vE", "'m", "'D", "'t", "’", "!", "?", ".", ",", "...", "--",
  "(", ")", "{", "}", "[", "]", "<", ">", "/", "\\", "_", "-", "+", "=", "*", "&", "%", "$", "#", "@", "~", "`", "^", "|", "\"", ";", ":",
  "😀", "👍🏽", "👨‍👩‍👧", "🇫🇷", "❤️", "\u0301", "\u200d", "\u200b", "\ufe0f", "<|endoftext|>", "<|im_end|>", "the", "The", " the", "ing",
  "hello", "WORLD", "Straße", "naïve", "co-op", "don't", "I'M", "e.g.", "x86_64", "0x7f", "3.14", "1,000",
];

// A deterministic PRNG (mulberry32), so that the cases are the same on every run.
export function rng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function randomMixes(count, seed) {
  const next = rng(seed);
  const out = [];
  for (let i = 0; i < count; i++) {
    const n = 1 + Math.floor(next() * 24);
    let s = "";
    for (let j = 0; j < n; j++) s += fragments[Math.floor(next() * fragments.length)];
    out.push(s);
  }
  return out;
}

function readJsonl(path) {
  const text = path.endsWith(".gz") ? gunzipSync(readFileSync(path)).toString("utf8") : readFileSync(path, "utf8");
  return text.split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l));
}

// Documents of the shared corpora: scifact abstracts, SQuAD contexts and questions, the Rust book.
export function sharedDocuments(sharedDir) {
  const data = join(sharedDir, "data");
  const docs = { scifact: [], squad: [], rust_book: [] };
  const scifact = join(data, "scifact", "corpus.jsonl.gz");
  if (existsSync(scifact)) for (const d of readJsonl(scifact)) docs.scifact.push(`${d.title}\n\n${d.text}`);
  const squad = join(data, "squad2_dev_cs224n_subset", "qa.jsonl.gz");
  if (existsSync(squad)) {
    const contexts = new Set();
    for (const d of readJsonl(squad)) {
      contexts.add(d.context);
      docs.squad.push(d.question);
    }
    docs.squad.push(...contexts);
  }
  const rust = join(data, "rust_book_docs", "corpus.jsonl.gz");
  if (existsSync(rust)) for (const d of readJsonl(rust)) docs.rust_book.push(d.text);
  return docs;
}
