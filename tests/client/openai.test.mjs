// The OpenAI-compatible API of the real `sluice serve`, driven by the official `openai` npm
// client: what users' tools see. Starts the binary (SLUICE_BINARY, default build/bin/sluice)
// on port 0 with a tiny random model made by `sluice model init-tiny`.
//
// Run: (cd tests/client && npm ci) && node --test tests/client/
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import OpenAI from 'openai';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const binary = process.env.SLUICE_BINARY ?? path.join(root, 'build', 'bin', 'sluice');

let dir;
let server;
let baseURL;
let token;
let client;

// Resolves with the first stderr line matching `pattern`, collecting lines as it goes.
function waitForLine(child, pattern, lines) {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern}`)), 30000);
    child.stderr.on('data', (data) => {
      buffer += data.toString();
      let newline;
      while ((newline = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, newline);
        buffer = buffer.slice(newline + 1);
        lines.push(line);
        if (pattern.test(line)) {
          clearTimeout(timer);
          resolve(line);
        }
      }
    });
    child.on('exit', (code) => reject(new Error(`sluice serve exited with ${code}`)));
  });
}

async function metric(name) {
  const response = await fetch(`${baseURL}/metrics`, {
    headers: { Authorization: `Bearer ${token}` },
  });
  const text = await response.text();
  const match = text.match(new RegExp(`^${name} (\\S+)$`, 'm'));
  assert.ok(match, `${name} missing from /metrics`);
  return Number(match[1]);
}

before(async () => {
  dir = mkdtempSync(path.join(tmpdir(), 'sluice-client-'));
  execFileSync(binary, ['model', 'init-tiny', '--out', path.join(dir, 'model')]);
  const lines = [];
  server = spawn(binary, ['serve', '--port', '0', '--data-dir', path.join(dir, 'data'),
    '--model', path.join(dir, 'model')], {
    env: { ...process.env, SLUICE_LOG_ACCESS_LOG: 'false' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const listening = JSON.parse(await waitForLine(server, /"listening"/, lines));
  const tokenLine = lines.find((line) => line.includes('admin token: '));
  assert.ok(tokenLine, 'the first start prints an admin token');
  token = tokenLine.slice(tokenLine.indexOf('admin token: ') + 13).trim();
  baseURL = `http://${listening.address}`;
  for (let i = 0; i < 600; ++i) {
    const ready = await fetch(`${baseURL}/readyz`);
    if (ready.status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  client = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: token, maxRetries: 0 });
});

after(() => {
  server?.kill('SIGTERM');
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const hello = [{ role: 'user', content: 'Hello, who are you?' }];

test('models lists and retrieves the served model', async () => {
  const models = await client.models.list();
  assert.equal(models.data.length, 1);
  assert.equal(models.data[0].id, 'model');
  // created: when the server loaded the model, in Unix seconds (not in the future, not 0).
  const now = Math.floor(Date.now() / 1000);
  assert.ok(models.data[0].created > now - 3600 && models.data[0].created <= now + 1,
            `created ${models.data[0].created}, now ${now}`);
  const model = await client.models.retrieve('model');
  assert.equal(model.id, 'model');
  assert.equal(model.created, models.data[0].created);
  await assert.rejects(client.models.retrieve('gpt-4o'), (error) => error.status === 404);
});

test('chat completion', async () => {
  const completion = await client.chat.completions.create({
    model: 'model', messages: hello, max_tokens: 6,
  });
  assert.equal(completion.object, 'chat.completion');
  assert.equal(completion.choices[0].message.role, 'assistant');
  assert.equal(typeof completion.choices[0].message.content, 'string');
  assert.ok(['stop', 'length'].includes(completion.choices[0].finish_reason));
  assert.ok(completion.usage.completion_tokens <= 6);
  assert.equal(completion.usage.total_tokens,
    completion.usage.prompt_tokens + completion.usage.completion_tokens);
  assert.equal(typeof completion.usage.prompt_tokens_details.cached_tokens, 'number');
});

test('streaming chat with usage in the last chunk', async () => {
  const stream = await client.chat.completions.create({
    model: 'model', messages: hello, max_tokens: 8, stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  let finish = null;
  let usage = null;
  for await (const chunk of stream) {
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      text += choice.delta.content ?? '';
      finish = choice.finish_reason ?? finish;
    }
  }
  assert.ok(['stop', 'length'].includes(finish));
  assert.ok(usage.completion_tokens >= 1 && usage.completion_tokens <= 8);
  assert.equal(typeof text, 'string');
});

test('n = 2 gives two choices', async () => {
  const completion = await client.chat.completions.create({
    model: 'model', messages: hello, max_tokens: 4, n: 2, seed: 7,
  });
  assert.deepEqual(completion.choices.map((choice) => choice.index), [0, 1]);
});

test('stop strings cut the answer before the stop', async () => {
  const request = { model: 'model', messages: hello, max_tokens: 12, temperature: 0 };
  const full = (await client.chat.completions.create(request)).choices[0].message.content;
  assert.ok(full.length > 4, `answer too short to cut: ${JSON.stringify(full)}`);
  const stop = full.slice(Math.floor(full.length / 2), Math.floor(full.length / 2) + 2);
  const cut = await client.chat.completions.create({ ...request, stop: [stop] });
  assert.equal(cut.choices[0].message.content, full.slice(0, full.indexOf(stop)));
  assert.equal(cut.choices[0].finish_reason, 'stop');
});

test('logprobs with alternatives', async () => {
  const completion = await client.chat.completions.create({
    model: 'model', messages: hello, max_tokens: 5, logprobs: true, top_logprobs: 3,
  });
  const content = completion.choices[0].logprobs.content;
  assert.ok(content.length >= 1 && content.length <= 5);
  for (const entry of content) {
    assert.ok(entry.logprob <= 0);
    assert.equal(entry.top_logprobs.length, 3);
    assert.ok(Array.isArray(entry.bytes));
  }
});

test('tools are offered through the chat template and tool turns are accepted', async () => {
  const tools = [{
    type: 'function',
    function: {
      name: 'search', description: 'Search the documents',
      parameters: { type: 'object', properties: { query: { type: 'string' } } },
    },
  }];
  const plain = await client.chat.completions.create({ model: 'model', messages: hello,
    max_tokens: 1 });
  const offered = await client.chat.completions.create({ model: 'model', messages: hello,
    max_tokens: 1, tools });
  assert.ok(offered.usage.prompt_tokens > plain.usage.prompt_tokens + 20);
  const followUp = await client.chat.completions.create({
    model: 'model', max_tokens: 2, tools,
    messages: [
      ...hello,
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function',
        function: { name: 'search', arguments: '{"query":"refund"}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'Refunds within 30 days.' },
    ],
  });
  assert.equal(followUp.choices.length, 1);
  await assert.rejects(client.chat.completions.create({
    model: 'model', max_tokens: 2, messages: [...hello,
      { role: 'tool', tool_call_id: 'call_9', content: 'orphan' }],
  }), (error) => error.status === 400);
  // A bounded query, so that a random model's call closes well within max_tokens.
  const bounded = [...tools, {
    type: 'function',
    function: {
      name: 'lookup',
      parameters: { type: 'object', properties: { query: { type: 'string', maxLength: 8 } },
        required: ['query'], additionalProperties: false },
    },
  }];
  const named = await client.chat.completions.create({
    model: 'model', max_tokens: 200, messages: hello, tools: bounded, seed: 3,
    tool_choice: { type: 'function', function: { name: 'lookup' } },
  });
  assert.equal(named.choices[0].finish_reason, 'tool_calls');
  assert.equal(named.choices[0].message.tool_calls.length, 1);
  assert.equal(named.choices[0].message.tool_calls[0].function.name, 'lookup');
  const args = JSON.parse(named.choices[0].message.tool_calls[0].function.arguments);
  assert.deepEqual(Object.keys(args), ['query']);
  assert.ok(typeof args.query === 'string' && [...args.query].length <= 8);
});

test('a streamed tool call arrives in OpenAI\'s deltas and the stream helpers assemble it', async () => {
  const tools = [{
    type: 'function',
    function: {
      name: 'lookup',
      parameters: { type: 'object', properties: { query: { type: 'string', maxLength: 8 } },
        required: ['query'], additionalProperties: false },
    },
  }];
  const stream = client.chat.completions.stream({
    model: 'model', max_tokens: 200, messages: hello, tools, seed: 3,
    tool_choice: { type: 'function', function: { name: 'lookup' } },
  });
  const chunks = [];
  const fragments = [];
  stream.on('chunk', (chunk) => chunks.push(chunk));
  stream.on('tool_calls.function.arguments.delta', (event) => fragments.push(event.arguments_delta));
  const final = await stream.finalChatCompletion();
  assert.equal(final.choices[0].finish_reason, 'tool_calls');
  const calls = final.choices[0].message.tool_calls;
  assert.equal(calls.length, 1);
  assert.equal(calls[0].type, 'function');
  assert.match(calls[0].id, /^call_/);
  assert.equal(calls[0].function.name, 'lookup');
  const args = JSON.parse(calls[0].function.arguments);
  assert.deepEqual(Object.keys(args), ['query']);
  // The first delta carries id, type and name with empty arguments; the arguments follow in
  // fragments as they are generated, which the helper joined.
  const deltas = chunks.flatMap((chunk) => chunk.choices.flatMap((c) => c.delta.tool_calls ?? []));
  assert.equal(deltas[0].id, calls[0].id);
  assert.equal(deltas[0].type, 'function');
  assert.equal(deltas[0].function.name, 'lookup');
  assert.equal(deltas[0].function.arguments, '');
  assert.ok(deltas.length >= 3, `only ${deltas.length} tool-call deltas`);
  assert.ok(deltas.slice(1).every((d) => d.id === undefined && d.function.name === undefined));
  assert.ok(fragments.length >= 2);
  assert.equal(fragments.join(''), calls[0].function.arguments);
});

test('a tool call cut by max_tokens comes back the same streamed and whole', async () => {
  const tools = [{
    type: 'function',
    function: { name: 'search', parameters: { type: 'object',
      properties: { query: { type: 'string' } }, required: ['query'] } },
  }];
  let cutInArguments = 0;
  for (const maxTokens of [6, 12, 16, 20, 28]) {
    const request = { model: 'model', max_tokens: maxTokens, messages: hello, tools, seed: 5,
      tool_choice: { type: 'function', function: { name: 'search' } } };
    const whole = (await client.chat.completions.create(request)).choices[0];
    const streamed = (await client.chat.completions.stream(request).finalChatCompletion())
      .choices[0];
    const shape = (choice) => ({
      finish: choice.finish_reason,
      content: choice.message.content || null,
      calls: (choice.message.tool_calls ?? []).map((call) =>
        [call.function.name, call.function.arguments]),
    });
    assert.deepEqual(shape(streamed), shape(whole), `max_tokens ${maxTokens}`);
    if (whole.finish_reason === 'length' && whole.message.tool_calls?.length === 1) {
      cutInArguments += 1;
    }
  }
  assert.ok(cutInArguments >= 1, 'no max_tokens cut a call inside its arguments');
});

test('response_format json_schema answers with JSON that fits the schema', async () => {
  const schema = {
    type: 'object',
    properties: {
      verdict: { enum: ['approve', 'reject'] },
      score: { type: 'integer', minimum: 0, maximum: 10 },
    },
    required: ['verdict', 'score'],
    additionalProperties: false,
  };
  for (const seed of [1, 2, 3]) {
    const completion = await client.chat.completions.create({
      model: 'model', messages: hello, max_tokens: 60, temperature: 1, seed, n: 2,
      response_format: { type: 'json_schema',
        json_schema: { name: 'review', strict: true, schema } },
    });
    assert.equal(completion.choices.length, 2);
    for (const choice of completion.choices) {
      assert.equal(choice.finish_reason, 'stop', choice.message.content);
      const value = JSON.parse(choice.message.content);
      assert.deepEqual(Object.keys(value), ['verdict', 'score']);
      assert.ok(['approve', 'reject'].includes(value.verdict));
      assert.ok(Number.isInteger(value.score) && value.score >= 0 && value.score <= 10);
    }
  }
});

test('embeddings are unit vectors of the model width', async () => {
  const response = await client.embeddings.create({ model: 'model', input: ['refund', 'ship'] });
  assert.equal(response.data.length, 2);
  for (const item of response.data) {
    assert.equal(item.embedding.length, 256);
    const norm = Math.sqrt(item.embedding.reduce((sum, x) => sum + x * x, 0));
    assert.ok(Math.abs(norm - 1) < 1e-4);
  }
  const floats = await client.embeddings.create({ model: 'model', input: 'refund',
    encoding_format: 'float' });
  assert.ok(Math.abs(floats.data[0].embedding[0] - response.data[0].embedding[0]) < 1e-4);
});

test('legacy completions', async () => {
  const completion = await client.completions.create({
    model: 'model', prompt: 'Once upon a time', max_tokens: 4, echo: true,
  });
  assert.ok(completion.choices[0].text.startsWith('Once upon a time'));
});

test('echo with logprobs and max_tokens 0 scores the prompt (as evaluation harnesses ask)', async () => {
  const prompt = 'Once upon a time there was a river';
  const completion = await client.completions.create({
    model: 'model', prompt, max_tokens: 0, echo: true, logprobs: 1,
  });
  const choice = completion.choices[0];
  assert.equal(choice.text, prompt);
  assert.equal(choice.finish_reason, 'length');
  assert.equal(completion.usage.completion_tokens, 0);
  const { tokens, token_logprobs: scores, top_logprobs: tops, text_offset: offsets } = choice.logprobs;
  assert.equal(tokens.join(''), prompt);
  assert.equal(tokens.length, completion.usage.prompt_tokens);
  assert.equal(scores[0], null);
  assert.equal(offsets[0], 0);
  for (let i = 1; i < tokens.length; ++i) {
    assert.ok(scores[i] <= 0);
    assert.equal(Object.keys(tops[i]).length, 1);
  }
});

test('logit_bias steers the choice of tokens', async () => {
  const tokenized = await fetch(`${baseURL}/tokenize`, {
    method: 'POST',
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: JSON.stringify({ prompt: ' Paris' }),
  });
  const paris = (await tokenized.json()).tokens[0];
  const forced = await client.chat.completions.create({
    model: 'model', messages: hello, max_tokens: 3, temperature: 0,
    logit_bias: { [paris]: 100 },
  });
  assert.equal(forced.choices[0].message.content, ' Paris Paris Paris');
  await assert.rejects(
    client.chat.completions.create({
      model: 'model', messages: hello, max_tokens: 1, logit_bias: { [paris]: 500 },
    }),
    (error) => error.status === 400 && /logit_bias/.test(error.message));
});

test('errors come in OpenAI error shapes', async () => {
  await assert.rejects(
    client.chat.completions.create({ model: 'model', messages: hello, frobnicate: 1 }),
    (error) => error.status === 400 && /'frobnicate'/.test(error.message));
  await assert.rejects(
    client.chat.completions.create({ model: 'model', messages: hello,
      response_format: { type: 'json_schema', json_schema: { name: 'x',
        schema: { type: 'object', minProperties: 1 } } } }),
    (error) => error.status === 400 && /minProperties/.test(error.message));
  await assert.rejects(
    client.chat.completions.create({ model: 'nope', messages: hello }),
    (error) => error.status === 404);
  const unauthenticated = new OpenAI({ baseURL: `${baseURL}/v1`, apiKey: 'wrong',
    maxRetries: 0 });
  await assert.rejects(unauthenticated.models.list(), (error) => error.status === 401);
});

test('aborting a stream cancels the request and frees its KV blocks', async () => {
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { model: 'model', messages: hello, max_tokens: 3000, stream: true },
    { signal: controller.signal });
  let chunks = 0;
  try {
    for await (const chunk of stream) {
      if (++chunks === 3) {
        assert.ok(await metric('sluice_kv_blocks_in_use') > 0);
        controller.abort();
      }
    }
  } catch (error) {
    // Depending on timing the client ends the iteration quietly or with an abort error.
    assert.match(String(error?.name ?? error), /Abort/);
  }
  assert.ok(chunks >= 3);
  let inUse = -1;
  for (let i = 0; i < 400 && inUse !== 0; ++i) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    inUse = await metric('sluice_kv_blocks_in_use');
  }
  assert.equal(inUse, 0);
});

// A JSON request to the platform API as the admin.
async function api(method, pathname, body) {
  const response = await fetch(`${baseURL}${pathname}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  assert.equal(response.status, 200, `${method} ${pathname}: ${text}`);
  return JSON.parse(text);
}

// A catalog agent without tools (every turn is answer text), created once.
let agentReady;
function talkerAgent() {
  agentReady ??= (async () => {
    const uc = '/api/2.1/unity-catalog';
    await api('POST', `${uc}/catalogs`, { name: 'main' });
    await api('POST', `${uc}/schemas`, { name: 'agents', catalog_name: 'main' });
    await api('POST', `${uc}/agents`, { name: 'talker', catalog_name: 'main', schema_name: 'agents' });
    await api('PUT', '/api/agents/main.agents.talker', {
      instructions: 'Answer briefly.', tools: [], budgets: { max_steps: 2, max_tokens: 4000 },
    });
    return 'agents/main.agents.talker';
  })();
  return agentReady;
}

test('an agent served as a model streams its answer, usage in the last chunk', async () => {
  const model = await talkerAgent();
  const stream = await client.chat.completions.create({
    model, messages: hello, stream: true, stream_options: { include_usage: true },
  });
  let text = '';
  let pieces = 0;
  let finish = null;
  let usage = null;
  let traceId = null;
  for await (const chunk of stream) {
    assert.equal(chunk.model, model);
    traceId ??= chunk.trace_id;
    assert.equal(chunk.trace_id, traceId);
    if (chunk.usage) usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (choice.delta.content) {
        text += choice.delta.content;
        ++pieces;
      }
      finish = choice.finish_reason ?? finish;
    }
  }
  assert.equal(finish, 'stop');
  assert.match(traceId, /^[0-9a-f]{32}$/);
  const trace = await api('GET', `/api/traces/${traceId}`);
  assert.equal(trace.spans[0].outputs.answer, text);
  assert.equal(usage.completion_tokens, trace.spans[0].outputs.completion_tokens);
  assert.equal(usage.total_tokens, usage.prompt_tokens + usage.completion_tokens);
  if (usage.completion_tokens >= 8) assert.ok(pieces >= 4, `${pieces} pieces`);
});

test('aborting an agent\'s stream cancels the run: its trace says so and its KV blocks are freed', async () => {
  const model = await talkerAgent();
  const controller = new AbortController();
  const stream = await client.chat.completions.create(
    { model, messages: [{ role: 'user', content: 'Tell a long story.' }], stream: true },
    { signal: controller.signal });
  let pieces = 0;
  let traceId = null;
  try {
    for await (const chunk of stream) {
      traceId ??= chunk.trace_id;
      if (chunk.choices[0]?.delta.content && ++pieces === 3) controller.abort();
    }
  } catch (error) {
    assert.match(String(error?.name ?? error), /Abort/);
  }
  assert.ok(pieces >= 3);
  let trace = null;
  for (let i = 0; i < 400 && !trace; ++i) {
    const response = await fetch(`${baseURL}/api/traces/${traceId}`, {
      headers: { Authorization: `Bearer ${token}` },
    });
    if (response.status === 200) trace = await response.json();
    else await new Promise((resolve) => setTimeout(resolve, 50));
  }
  assert.ok(trace, 'the cancelled run stored its trace');
  assert.equal(trace.spans[0].outputs.stop_reason, 'cancelled');
  assert.equal(trace.spans[0].error, 'cancelled: the client went away');
  let inUse = -1;
  for (let i = 0; i < 400 && inUse !== 0; ++i) {
    await new Promise((resolve) => setTimeout(resolve, 25));
    inUse = await metric('sluice_kv_blocks_in_use');
  }
  assert.equal(inUse, 0);
});
