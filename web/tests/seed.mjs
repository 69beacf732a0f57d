// Seeds a fresh server through its REST API with what every console page shows: principals and
// a token for a non-admin, a catalog with grants, an index with documents, documents pushed to
// the change-feed source, a tool and an agent, and model usage by two principals.
import { api } from './server.mjs';

const UC = '/api/2.1/unity-catalog';

export const documents = [
  { id: 'holidays', title: 'Holiday policy', uri: 'file:///holidays.md', dept: 'hr',
    text: 'Employees receive twenty five days of paid holiday each year.' },
  { id: 'expenses', title: 'Expense policy', uri: 'file:///expenses.md', dept: 'finance',
    text: 'Expenses above fifty euros need a receipt and the approval of a manager.' },
];

async function waitUntil(what, check) {
  for (let attempt = 0; attempt < 1200; attempt += 1) {
    if (await check()) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error(`gave up waiting until ${what}`);
}

export async function seed(server) {
  const admin = (method, path, body, headers) =>
    api(server, server.token, method, path, body, headers);

  await admin('POST', '/api/2.0/sluice/principals', { name: 'alice' });
  await admin('POST', '/api/2.0/sluice/principals', { name: 'analysts', kind: 'group' });
  await admin('PUT', '/api/2.0/sluice/groups/analysts/members/alice');
  const alice = (await admin('POST', '/api/2.0/token/create', { principal: 'alice' })).token_value;

  // The bound source already lives in `main.sources`: the server moved it into the catalog at
  // start, creating `main`, so the catalog is described rather than created.
  const { catalogs = [] } = await admin('GET', `${UC}/catalogs`);
  if (catalogs.some((c) => c.name === 'main')) {
    await admin('PATCH', `${UC}/catalogs/main`, { comment: 'Company data' });
  } else {
    await admin('POST', `${UC}/catalogs`, { name: 'main', comment: 'Company data' });
  }
  await admin('POST', `${UC}/schemas`, { name: 'support', catalog_name: 'main' });
  await admin('POST', `${UC}/functions`, { name: 'search', catalog_name: 'main',
    schema_name: 'support' });
  await admin('POST', `${UC}/agents`, { name: 'helper', catalog_name: 'main',
    schema_name: 'support' });
  await admin('PATCH', `${UC}/permissions/catalog/main`,
    { changes: [{ principal: 'analysts', add: ['USE_CATALOG'] }] });
  await admin('PATCH', `${UC}/permissions/schema/main.support`,
    { changes: [{ principal: 'alice', add: ['USE_SCHEMA'] }] });

  await admin('POST', '/api/2.0/vector-search/indexes', { name: 'docs',
    embedding_dimension: 64 });
  const rows = documents.map((doc) => ({ ...doc, acl: { principals: ['admin'],
    groups: ['analysts'] } }));
  await admin('POST', '/api/2.0/vector-search/indexes/docs/upsert-data', { inputs: rows });

  await admin('PUT', '/api/tools/main.support.search', { kind: 'vector_search',
    description: 'Search the policy documents', config: { index: 'docs' } });
  await admin('PUT', '/api/agents/main.support.helper', {
    instructions: 'Answer from the policy documents.', tools: ['main.support.search'],
    budgets: { max_steps: 3, max_tokens: 3000, max_wall_s: 90, max_tool_calls: 4 },
  });

  await admin('POST', '/api/sources/kb/events', { events: [
    { key: 'kb/1', op: 'upsert', document: { text: 'The office opens at nine.',
      metadata: { title: 'Office hours' }, acl: { groups: ['analysts'] } } },
    { key: 'kb/2', op: 'upsert', document: { text: 'Parking is free for visitors.',
      metadata: { title: 'Parking' }, acl: { groups: ['analysts'] } } },
  ] }, { 'Idempotency-Key': 'seed-kb-1' });
  await waitUntil('the source kb has synced its two documents', async () => {
    const source = await admin('GET', '/api/sources/kb');
    return source.sync?.documents === 2 && source.sync?.state === 'caught_up';
  });

  // Usage: chat completions by two principals (usage rows are written as each call ends).
  const hello = { messages: [{ role: 'user', content: 'Hello' }], max_tokens: 2 };
  await admin('POST', '/v1/chat/completions', hello);
  await admin('POST', '/v1/chat/completions', hello);
  await api(server, alice, 'POST', '/v1/chat/completions', hello);
  return { alice };
}

// Two evaluation runs of document QA over the docs index, judged by two built-in judges.
export async function seedEvaluations(server) {
  const admin = (method, path, body) => api(server, server.token, method, path, body);
  await admin('POST', '/api/eval/sets', { name: 'main.support.faq', rows: [
    { request: 'How many days of paid holiday?', expected_response: 'Twenty five days.' },
    { request: 'When do expenses need a receipt?', expected_response: 'Above fifty euros.' },
  ] });
  const run = (seed) => admin('POST', '/api/eval/runs', {
    qa: { index: 'docs', options: { max_tokens: 8 } }, set: 'main.support.faq',
    judges: ['relevance', 'safety'], rationale_max_chars: 40, bootstrap_resamples: 200,
    concurrency: 2, seed,
  });
  const a = await run(1);
  const b = await run(2);
  return { a: a.id, b: b.id };
}
