// The web console in Debian's Chromium against a real `sluice serve` with seeded data: one test
// per page's main flow, each asserting what the server holds. Screenshots: build/web-tests/.
//
// Run: (cd web/tests && npm ci) && node --test web/tests/
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { launch, login, openPage, screenshot, waitForText } from './browser.mjs';
import { seed, seedEvaluations } from './seed.mjs';
import { api, startServer } from './server.mjs';

let server;
let browser;
let alice;
let evalRuns;

before(async () => {
  server = await startServer();
  ({ alice } = await seed(server));
  evalRuns = await seedEvaluations(server);
  browser = await launch();
}, { timeout: 600000 });

after(async () => {
  await browser?.close();
  await server?.stop();
});

// Opens a page signed in as `token` (the admin by default) at #/route.
async function signedIn(route, token = server.token, viewport) {
  const opened = await openPage(browser, server, viewport);
  await login(opened.page, server, token);
  await opened.page.goto(`${server.baseURL}/console/#/${route}`);
  await opened.page.getByRole('heading', { level: 1 }).first().waitFor();
  return opened;
}

async function done({ context, problems }) {
  await context.close();
  assert.deepEqual(problems, []);
}

test('the console is served open with a strict policy; the API still needs a token', async () => {
  const root = await fetch(`${server.baseURL}/`, { redirect: 'manual' });
  assert.equal(root.status, 302);
  assert.equal(root.headers.get('location'), '/console/');
  const index = await fetch(`${server.baseURL}/console/`);
  assert.equal(index.status, 200);
  assert.match(index.headers.get('content-type'), /^text\/html/);
  assert.match(index.headers.get('content-security-policy'), /default-src 'none'/);
  assert.match(index.headers.get('content-security-policy'), /script-src 'self'/);
  assert.equal(index.headers.get('x-content-type-options'), 'nosniff');
  const script = await fetch(`${server.baseURL}/console/js/app.js`);
  assert.match(script.headers.get('content-type'), /^text\/javascript/);
  const again = await fetch(`${server.baseURL}/console/js/app.js`,
    { headers: { 'If-None-Match': script.headers.get('etag') } });
  assert.equal(again.status, 304);
  assert.equal((await fetch(`${server.baseURL}/console/nope.js`)).status, 404);
  // Paths outside the console are not opened by it.
  assert.equal((await fetch(`${server.baseURL}/console/../api/sources`)).status, 401);
  assert.equal((await fetch(`${server.baseURL}/api/2.0/sluice/me`)).status, 401);
});

test('login: a wrong token is refused, the right one signs in, logout signs out', async () => {
  const opened = await openPage(browser, server);
  const { page } = opened;
  await page.goto(`${server.baseURL}/`);
  await page.getByRole('heading', { name: 'Sign in to Sluice' }).waitFor();
  await page.getByLabel('API token').fill('slc_not_a_real_token');
  await page.getByRole('button', { name: 'Sign in' }).click();
  await waitForText(page.getByRole('alert'), /Not signed in or the token is no longer valid/);
  await screenshot(page, 'login-refused');
  await login(page, server, server.token);
  await waitForText(page.locator('#who-name'), /^admin \(admin\)$/);
  assert.equal(await page.evaluate(() => sessionStorage.getItem('sluice.token')), server.token);
  await page.getByRole('button', { name: 'Log out' }).click();
  await page.getByRole('heading', { name: 'Sign in to Sluice' }).waitFor();
  assert.equal(await page.evaluate(() => sessionStorage.getItem('sluice.token')), null);
  await done(opened);
});

test('a page the principal may not see says so (403)', async () => {
  // The audit log is for metastore admins only; alice is not one.
  const opened = await signedIn('audit', alice);
  await waitForText(opened.page.locator('.error'), /^Not allowed: /);
  await screenshot(opened.page, 'audit-forbidden');
  await done(opened);
});

test('chat: a streamed answer with citations that expand and a trace timeline', async () => {
  const opened = await signedIn('chat');
  const { page } = opened;
  await page.getByLabel('Index').selectOption('docs');
  await page.getByLabel('Max tokens').fill('4');
  await page.getByLabel('Question', { exact: true }).fill('How many days of paid holiday?');
  await page.getByRole('button', { name: 'Ask' }).click();
  const sources = page.getByRole('list', { name: 'Sources' });
  await waitForText(sources, /\[1\] Holiday policy/);
  await waitForText(page.locator('.turn .meta'), /prompt and \d+ completion tokens/);
  await sources.getByText('[1] Holiday policy').click();
  await waitForText(sources.locator('blockquote'),
    /Employees receive twenty five days of paid holiday each year\./);
  await page.getByRole('button', { name: 'Show trace' }).click();
  const trace = page.locator('figure.trace');
  await waitForText(trace.locator('figcaption'), /^Trace [0-9a-f]{32}: \d+ spans/);
  await waitForText(trace.locator('.span-name'), /retriever/);
  await waitForText(trace.locator('.span-name'), /llm/);
  assert.ok(await trace.locator('.span-bar rect').count() >= 3);
  await screenshot(page, 'chat');
  // The served model, streamed through the OpenAI-compatible API.
  await page.getByLabel('Answer from').selectOption('model');
  assert.equal(await page.getByLabel('Index', { exact: true }).isVisible(), false);
  await page.getByLabel('Question', { exact: true }).fill('Hello');
  await page.getByRole('button', { name: 'Ask' }).click();
  await waitForText(page.locator('.turn').nth(1).locator('.meta'),
    /^\d+ prompt and [1-4] completion tokens$/);
  await done(opened);
});

test('sources: state, lag and documents of the change feed, and sync now', async () => {
  const opened = await signedIn('sources');
  const { page } = opened;
  const row = page.getByRole('row', { name: /^kb http kb/ });
  await waitForText(row, /caught up/);
  assert.equal(await row.getByRole('cell').nth(5).textContent(), '2');
  await page.getByRole('button', { name: 'Sync kb now' }).click();
  await waitForText(page.locator('.live'), /Asked kb to sync now\./);
  await screenshot(page, 'sources');
  await done(opened);
});

test('indexes: counts and a keyword query with a filter', async () => {
  const opened = await signedIn('indexes');
  const { page } = opened;
  const docs = page.getByRole('row', { name: /^docs 2 / });
  await docs.waitFor();
  // A lexical-hash index fuses hybrid queries by weight unless told otherwise.
  await waitForText(docs, /weighted 0\.2$/);
  await page.getByLabel('Index', { exact: true }).selectOption('docs');
  await page.getByLabel('Mode').selectOption('LEXICAL');
  await page.getByLabel('Query', { exact: true }).fill('policy');
  await page.getByLabel('Filters (JSON)').fill('{"dept": "hr"}');
  await page.getByRole('button', { name: 'Search' }).click();
  const results = page.locator('table.results');
  await waitForText(results.locator('caption'), /^1 results$/);
  await waitForText(results, /Holiday policy/);
  assert.equal(await results.getByText('Expense policy').count(), 0);
  await page.getByLabel('Filters (JSON)').fill('{"dept": ');
  await page.getByRole('button', { name: 'Search' }).click();
  await waitForText(page.locator('.error'), /The filters are not JSON/);
  await screenshot(page, 'indexes');
  await done(opened);
});

test('agents: the definition, its tools and budgets', async () => {
  const opened = await signedIn('agents');
  const { page } = opened;
  await page.getByRole('button', { name: 'main.support.helper' }).click();
  await page.getByRole('heading', { name: 'main.support.helper' }).waitFor();
  await waitForText(page.locator('.instructions'), /Answer from the policy documents\./);
  const tools = page.locator('table').filter({ hasText: 'main.support.search' });
  await waitForText(tools, /vector_search/);
  await waitForText(tools, /Search the policy documents/);
  await waitForText(page.locator('dl.facts'), /Model turns3Tokens3,000Wall time90\.0 sTool calls4/);
  await screenshot(page, 'agents');
  await done(opened);
});

test('catalog: the tree, a grant added and revoked, effective permissions', async () => {
  const opened = await signedIn('catalog');
  const { page } = opened;
  await page.getByRole('button', { name: 'Expand main' }).click();
  await page.getByRole('button', { name: 'Expand main.support' }).click();
  await page.getByRole('button', { name: 'helper' }).waitFor();
  await page.getByRole('button', { name: 'main', exact: true }).click();
  await page.getByRole('heading', { name: 'catalog main' }).waitFor();
  const grants = page.locator('table').filter({ has: page.locator('caption', {
    hasText: 'Grants on catalog main' }) });
  await waitForText(grants.getByRole('row'), /analysts\s*USE_CATALOG/);
  const grantForm = page.getByRole('form', { name: 'Grant a privilege' });
  await grantForm.getByLabel('Principal').selectOption('alice');
  await grantForm.getByLabel('Privilege').selectOption('BROWSE');
  await grantForm.getByRole('button', { name: 'Grant' }).click();
  await waitForText(page.locator('.live'), /Granted BROWSE to alice\./);
  await waitForText(grants.getByRole('row'), /alice\s*BROWSE/);
  await page.getByLabel('For principal').selectOption('alice');
  const effective = page.locator('table').filter({ has: page.locator('caption', {
    hasText: 'Effective permissions of alice on main' }) });
  await waitForText(effective.getByRole('row', { name: /^USE_CATALOG yes grant/ }),
    /group 'analysts'|analysts/);
  await screenshot(page, 'catalog');
  await page.getByRole('button', { name: 'Revoke BROWSE from alice' }).click();
  await waitForText(page.locator('.live'), /Revoked BROWSE from alice\./);
  assert.equal(await page.getByRole('button', { name: 'Revoke BROWSE from alice' }).count(), 0);
  await done(opened);
});

test('audit: the log filtered by action, and the chain verified', async () => {
  const opened = await signedIn('audit');
  const { page } = opened;
  await page.getByLabel('Action').fill('source.push');
  const audit = page.locator('table.audit');
  await waitForText(audit.getByRole('row'), /admin\s*source\.push\s*source:kb/);
  const rows = await audit.locator('tbody tr').allTextContents();
  assert.ok(rows.length >= 1 && rows.every((row) => row.includes('source.push')), rows.join('\n'));
  await page.getByRole('button', { name: 'Verify the chain' }).click();
  await waitForText(page.getByRole('status'), /The audit chain verifies\./);
  await waitForText(page.getByRole('status'), /signed checkpoints, 1 signing key rotation\./);
  await screenshot(page, 'audit');
  await done(opened);
});

test('usage: tokens and requests per principal as charts, with totals', async () => {
  const opened = await signedIn('usage');
  const { page } = opened;
  const totals = page.locator('table').filter({ has: page.locator('caption', {
    hasText: 'Totals per principal' }) });
  // Requests per principal: the seeded calls (two by admin, one by alice) and the chat test's.
  const requests = async (principal) => Number(await totals.getByRole('row')
    .filter({ has: page.getByRole('cell', { name: principal, exact: true }) })
    .getByRole('cell').nth(1).textContent());
  await totals.getByRole('cell', { name: 'alice', exact: true }).waitFor();
  assert.ok(await requests('admin') >= 2);
  assert.equal(await requests('alice'), 1);
  const charts = page.locator('figure.chart-figure');
  assert.equal(await charts.count(), 2);
  await waitForText(charts.first().locator('.legend'), /admin/);
  assert.ok(await charts.first().locator('svg.chart rect').count() >= 2);
  await screenshot(page, 'usage');
  await page.getByLabel('Per', { exact: true }).selectOption('endpoint');
  await page.locator('table caption', { hasText: 'Totals per endpoint' }).waitFor();
  await done(opened);
});

test('evaluations: runs, pass rates with intervals, rationales, and two runs compared', async () => {
  const run = await api(server, server.token, 'GET', `/api/eval/runs/${evalRuns.a}`);
  const compared = await api(server, server.token, 'GET',
    `/api/eval/compare?a=${evalRuns.a}&b=${evalRuns.b}`);
  const opened = await signedIn('evaluations');
  const { page } = opened;
  const runs = page.locator('table').filter({ has: page.locator('caption', {
    hasText: 'Evaluation runs' }) });
  for (const id of [evalRuns.a, evalRuns.b]) {
    await waitForText(runs.getByRole('row'), new RegExp(`${id}qa:docsmain\\.support\\.faq v1`));
  }
  await runs.getByRole('button', { name: evalRuns.a }).click();
  await page.getByRole('heading', { name: `Run ${evalRuns.a}` }).waitFor();
  const aggregates = page.locator('table').filter({ has: page.locator('caption', {
    hasText: 'Pass rate per judge (with interval)' }) });
  for (const judge of ['relevance', 'safety']) {
    const a = run.aggregates[judge];
    const percent = (rate) => `${(rate * 100).toFixed(1)}%`;
    await waitForText(aggregates.getByRole('row'), new RegExp(`^${judge}` +
      `${percent(a.pass_rate).replace('.', '\\.')}${percent(a.ci_low).replace('.', '\\.')}`));
    assert.equal(await aggregates.getByRole('img', { name: new RegExp(`^${percent(a.pass_rate)
      .replace('.', '\\.')}, interval`) }).count() >= 1, true);
  }
  const rows = page.locator('table.eval-rows');
  const first = run.rows[0];
  const row = rows.getByRole('row').filter({ hasText: first.request });
  const verdict = first.verdicts.relevance;
  await row.locator('details.verdict').first().locator('summary').click();
  await waitForText(row.locator('details.verdict').first(), verdict.rationale || '—');
  assert.equal(await row.locator('details.verdict summary').first().textContent(),
    verdict.verdict);
  await screenshot(page, 'evaluation-run');

  await runs.getByRole('checkbox', { name: `Select run ${evalRuns.a} to compare` }).check();
  await runs.getByRole('checkbox', { name: `Select run ${evalRuns.b} to compare` }).check();
  await page.getByRole('button', { name: 'Compare selected' }).click();
  const comparison = page.locator('table').filter({ has: page.locator('caption', {
    hasText: `Run ${evalRuns.a} against run ${evalRuns.b}` }) });
  for (const [judge, c] of Object.entries(compared.judges)) {
    await waitForText(comparison.getByRole('row'),
      new RegExp(`^${judge}.*${Number(c.p_value).toFixed(3).replace('.', '\\.')}` +
        `${c.significant ? 'yes' : 'no'}$`));
  }
  for (const [metric, m] of Object.entries(compared.metrics ?? {})) {
    await waitForText(page.locator('table').filter({ has: page.locator('caption', {
      hasText: 'Metric differences' }) }).getByRole('row'),
    new RegExp(`^${metric}${m.a_mean === null ? '—'
      : Number(m.a_mean).toFixed(3).replace('.', '\\.')}`));
  }
  const changed = compared.rows.filter((r) => r.changed).length;
  await waitForText(page.locator('.detail'), changed ? `${changed} rows changed`
    : 'No row changed outcome.');
  await screenshot(page, 'evaluation-compare');
  await done(opened);
});

test('narrow screen: the pages stay usable at phone width', async () => {
  const opened = await signedIn('chat', server.token, { width: 390, height: 844 });
  const { page } = opened;
  await page.getByRole('link', { name: 'Usage' }).click();
  await page.getByRole('heading', { name: 'Usage', level: 1 }).waitFor();
  const overflow = await page.evaluate(() =>
    document.documentElement.scrollWidth > document.documentElement.clientWidth);
  assert.equal(overflow, false);
  await screenshot(page, 'usage-narrow');
  await done(opened);
});
