// Generates tokenizer parity cases with the reference tokenizer (npm `tiktoken`, cl100k_base,
// encode_ordinary) and the benchmark corpus.
//
//   node tools/tiktoken/make_cases.mjs --out-dir build/tokenizer
//       writes cases.jsonl ({"group","text","ids"} per line) and bench_corpus.jsonl ({"text"})
//   node tools/tiktoken/make_cases.mjs --committed tests/inference/data/tokenizer_cases.jsonl
//       writes the small fixed set kept in the repository
//
// Corpora are read from $SLUICE_SHARED_DIR/data (no default location is assumed: the
// variable must be set, or --shared-dir given).

import { mkdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { get_encoding } from "tiktoken";
import { handWritten, randomMixes, rng, sharedDocuments } from "./corpus_text.mjs";

function parseArgs(argv) {
  const args = { outDir: null, committed: null, sharedDir: process.env.SLUICE_SHARED_DIR ?? null };
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === "--out-dir") args.outDir = argv[++i];
    else if (argv[i] === "--committed") args.committed = argv[++i];
    else if (argv[i] === "--shared-dir") args.sharedDir = argv[++i];
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  if (!args.outDir && !args.committed) throw new Error("give --out-dir DIR and/or --committed FILE");
  return args;
}

// Repetitions and long words; lengths stay where the reference (quadratic on one long piece)
// finishes in seconds. Megabyte inputs are tested without the reference (round trip, linearity).
function longCases() {
  const out = [];
  for (const unit of ["a", " ", "1", "\n", "中", "ab", "\r\n", "😀", "é", "! ", "1 ", "a1", " \n", "'s", "\u00a0", "ا"]) {
    for (const n of [10, 97, 300, 2000]) out.push(unit.repeat(n));
  }
  const next = rng(7);
  const letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZéßøжщ中日";
  for (const n of [50, 200, 1000, 3000]) {
    let word = "";
    for (let i = 0; i < n; i++) word += letters[Math.floor(next() * letters.length)];
    out.push(word, `The ${word} end.`);
  }
  out.push("pneumonoultramicroscopicsilicovolcanoconiosis", "Llanfairpwllgwyngyllgogerychwyrndrobwllllantysiliogogogoch");
  return out;
}

// Every code point of planes 0-3 and the variation selectors of plane 14 (planes 4-13 are
// unassigned, 15-16 private use) between letters, digits and spaces, so that each one's
// letter/number/space class is checked against the reference.
function codePointSweep() {
  const cps = [];
  for (let cp = 0; cp <= 0x3ffff; cp++) if (cp < 0xd800 || cp > 0xdfff) cps.push(cp);
  for (let cp = 0xe0000; cp <= 0xe01ff; cp++) cps.push(cp);
  const out = [];
  for (let i = 0; i < cps.length; i += 32) {
    let s = "";
    for (const cp of cps.slice(i, i + 32)) {
      const c = String.fromCodePoint(cp);
      s += `x${c}y ${c}111${c}${c} `;
    }
    out.push(s);
  }
  return out;
}

// Paragraphs and whole documents from the shared corpora, every `stride`-th.
function corpusCases(docs, perCorpus) {
  const out = [];
  for (const [name, list] of Object.entries(docs)) {
    const paragraphs = list.flatMap((d) => d.split(/\n\n+/)).filter((p) => p.length > 0);
    const stride = Math.max(1, Math.floor(paragraphs.length / perCorpus));
    for (let i = 0; i < paragraphs.length; i += stride) out.push([`corpus_${name}`, paragraphs[i]]);
    const docStride = Math.max(1, Math.floor(list.length / 20));
    for (let i = 0; i < list.length; i += docStride) out.push([`corpus_${name}_doc`, list[i]]);
  }
  return out;
}

function benchCorpus(docs) {
  // The real documents, plus the hand-written multilingual strings joined into paragraphs of a
  // few kilobytes so that non-Latin scripts are a visible share of the bytes.
  const out = [...docs.scifact, ...docs.squad, ...docs.rust_book];
  const multilingual = handWritten.join("\n");
  for (let i = 0; i < 200; i++) out.push(multilingual);
  return out;
}

function writeCases(path, cases, enc) {
  const lines = cases.map(([group, text]) => JSON.stringify({ group, text, ids: Array.from(enc.encode_ordinary(text)) }));
  writeFileSync(path, lines.join("\n") + "\n");
  console.log(`wrote ${cases.length} cases to ${path}`);
}

const args = parseArgs(process.argv.slice(2));
const enc = get_encoding("cl100k_base");
const hand = handWritten.map((t) => ["hand", t]);
if (args.committed) {
  const mixes = randomMixes(60, 1).map((t) => ["mix", t]);
  const long = longCases().filter((t) => t.length <= 400).map((t) => ["long", t]);
  writeCases(args.committed, [...hand, ...mixes, ...long], enc);
}
if (args.outDir) {
  if (!args.sharedDir) throw new Error("set SLUICE_SHARED_DIR or give --shared-dir (corpora under <dir>/data)");
  const docs = sharedDocuments(args.sharedDir);
  const cases = [
    ...hand,
    ...randomMixes(3000, 2).map((t) => ["mix", t]),
    ...longCases().map((t) => ["long", t]),
    ...corpusCases(docs, 600),
    ...codePointSweep().map((t) => ["sweep", t]),
  ];
  mkdirSync(args.outDir, { recursive: true });
  writeCases(join(args.outDir, "cases.jsonl"), cases, enc);
  const bench = benchCorpus(docs);
  writeFileSync(join(args.outDir, "bench_corpus.jsonl"), bench.map((text) => JSON.stringify({ text })).join("\n") + "\n");
  console.log(`wrote ${bench.length} documents to ${join(args.outDir, "bench_corpus.jsonl")}`);
}
enc.free();
