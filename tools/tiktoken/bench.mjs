// Reference throughput for `sluice bench tokenizer`: npm `tiktoken` (WASM), cl100k_base,
// encode_ordinary over every document of a JSONL corpus ({"text"} per line), one thread.
// Prints one JSON object: {"mb_per_s", "seconds", "bytes", "documents", "tokens", "version"}.
//
//   node tools/tiktoken/bench.mjs build/tokenizer/bench_corpus.jsonl [repeats]

import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { get_encoding } from "tiktoken";

const [file, repeatsArg] = process.argv.slice(2);
if (!file) {
  console.error("usage: node bench.mjs CORPUS.jsonl [repeats]");
  process.exit(2);
}
const repeats = Number.parseInt(repeatsArg ?? "3", 10);
const texts = readFileSync(file, "utf8").split("\n").filter((l) => l.length > 0).map((l) => JSON.parse(l).text);
const bytes = texts.reduce((n, t) => n + Buffer.byteLength(t, "utf8"), 0);
const enc = get_encoding("cl100k_base");

let tokens = 0;
for (const t of texts) tokens += enc.encode_ordinary(t).length;  // warm-up and token total
let best = Infinity;
for (let r = 0; r < repeats; r++) {
  const start = process.hrtime.bigint();
  for (const t of texts) enc.encode_ordinary(t);
  best = Math.min(best, Number(process.hrtime.bigint() - start) / 1e9);
}
enc.free();
const here = dirname(fileURLToPath(import.meta.url));
const version = JSON.parse(readFileSync(join(here, "node_modules/tiktoken/package.json"), "utf8")).version;
console.log(JSON.stringify({ mb_per_s: bytes / best / 1e6, seconds: best, bytes, documents: texts.length, tokens, version }));
