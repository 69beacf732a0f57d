// The server's contract with Sluice's `http` embedder (app/http_embedder.cpp): the response
// shape, the refusals, and that the vectors carry meaning (a paraphrase with no word in common
// is nearer than a sentence on another subject). Runs the real encoder on a loopback port.
import assert from "node:assert/strict";
import { after, before, test } from "node:test";

import { DIMENSION, MODEL_NAME, createServer, loadEncoder } from "./server.mjs";

let server;
let base;

before(async () => {
  server = createServer(await loadEncoder(), { maxBatch: 4 });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  base = `http://127.0.0.1:${server.address().port}`;
});

after(() => new Promise((resolve) => server.close(resolve)));

async function post(body) {
  const response = await fetch(`${base}/v1/embeddings`, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  return { status: response.status, body: await response.json() };
}

const dot = (a, b) => a.reduce((sum, x, i) => sum + x * b[i], 0);

test("answers OpenAI's embeddings shape, one vector per input in order", async () => {
  const texts = ["The cat sat on the mat.", "Stock markets fell sharply today."];
  const { status, body } = await post({ model: MODEL_NAME, input: texts });
  assert.equal(status, 200);
  assert.equal(body.object, "list");
  assert.equal(body.model, MODEL_NAME);
  assert.equal(body.data.length, 2);
  body.data.forEach((item, i) => {
    assert.equal(item.object, "embedding");
    assert.equal(item.index, i);
    assert.equal(item.embedding.length, DIMENSION);
    assert.ok(item.embedding.every(Number.isFinite));
  });
  assert.ok(body.usage.total_tokens > 0);
  // A single string is a batch of one; the same text gives the same vector.
  const single = await post({ model: MODEL_NAME, input: texts[0] });
  assert.equal(single.status, 200);
  assert.ok(dot(single.body.data[0].embedding, body.data[0].embedding) > 0.999);
});

test("a paraphrase is nearer than another subject", async () => {
  const { body } = await post({
    model: MODEL_NAME,
    input: [
      "How do I reset my password?",
      "I forgot my login credentials and need new ones.",
      "The recipe needs two cups of flour.",
    ],
  });
  const [question, paraphrase, unrelated] = body.data.map((item) => item.embedding);
  assert.ok(dot(question, paraphrase) > dot(question, unrelated) + 0.1,
    `paraphrase ${dot(question, paraphrase)} vs unrelated ${dot(question, unrelated)}`);
});

test("refuses bad requests with an OpenAI error naming the problem", async () => {
  const cases = [
    ["{not json", 400, "not JSON"],
    [{ model: "text-embedding-3-small", input: ["x"] }, 404, "'text-embedding-3-small' is not served"],
    [{ model: MODEL_NAME }, 400, "'input' must be"],
    [{ model: MODEL_NAME, input: [] }, 400, "'input' must be"],
    [{ model: MODEL_NAME, input: ["a", 7] }, 400, "input[1] is not a string"],
    [{ model: MODEL_NAME, input: ["a", "  "] }, 400, "input[1] is empty"],
    [{ model: MODEL_NAME, input: ["a", "b", "c", "d", "e"] }, 400, "at most 4"],
    [{ model: MODEL_NAME, input: ["a"], encoding_format: "base64" }, 400, "encoding_format"],
  ];
  for (const [body, status, message] of cases) {
    const answer = await post(body);
    assert.equal(answer.status, status, JSON.stringify(body));
    assert.ok(answer.body.error.message.includes(message),
      `${JSON.stringify(body)}: ${answer.body.error.message}`);
  }
  const get = await fetch(`${base}/v1/embeddings`);
  assert.equal(get.status, 405);
  const health = await (await fetch(`${base}/health`)).json();
  assert.deepEqual(health, { status: "ok", model: MODEL_NAME, dimension: DIMENSION });
});
