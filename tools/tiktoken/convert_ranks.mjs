// Converts the cl100k_base ranks shipped by the npm package `tiktoken`
// (encoders/cl100k_base.json, field bpe_ranks) into OpenAI's `.tiktoken` text format:
// one `<base64 token> <rank>` line per token, ranks ascending, '\n' line ends.
//
// The package stores ranks as lines `! <first rank> <b64> <b64> ...`: the tokens on a line
// have consecutive ranks from <first rank>. The output must hash to the sha256 OpenAI publishes
// for cl100k_base.tiktoken; the script refuses to write anything else.
//
//   node tools/tiktoken/convert_ranks.mjs inference/assets/cl100k_base.tiktoken

import { createHash } from "node:crypto";
import { readFileSync, writeFileSync } from "node:fs";
import { createRequire } from "node:module";

const kExpectedSha256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7";

const out = process.argv[2];
if (!out) {
  console.error("usage: node convert_ranks.mjs OUTPUT.tiktoken");
  process.exit(2);
}

const require = createRequire(import.meta.url);
const jsonPath = require.resolve("tiktoken/encoders/cl100k_base.json");
const { bpe_ranks: packed } = JSON.parse(readFileSync(jsonPath, "utf8"));

const entries = [];
for (const line of packed.split("\n")) {
  if (line.length === 0) continue;
  const [marker, first, ...tokens] = line.split(" ");
  if (marker !== "!") throw new Error(`unexpected line start '${marker}'`);
  let rank = Number.parseInt(first, 10);
  for (const token of tokens) {
    if (token.length === 0) continue;
    entries.push([token, rank]);
    rank += 1;
  }
}
entries.sort((a, b) => a[1] - b[1]);

const text = entries.map(([token, rank]) => `${token} ${rank}\n`).join("");
const digest = createHash("sha256").update(text).digest("hex");
if (digest !== kExpectedSha256) {
  console.error(`sha256 ${digest}, expected ${kExpectedSha256}; nothing written`);
  process.exit(1);
}
writeFileSync(out, text);
console.log(`wrote ${entries.length} ranks to ${out} (sha256 ${digest})`);
