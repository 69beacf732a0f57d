// Debian's Chromium, headless, driven by playwright-core (no browser download). Each page
// records requests that leave the server's origin (aborted) and errors the page logs, so that
// tests can assert there are none; screenshots go to SLUICE_WEB_ARTIFACTS (default
// build/web-tests).
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { root } from './server.mjs';

export const artifacts = process.env.SLUICE_WEB_ARTIFACTS ??
  path.join(root, 'build', 'web-tests');
const executablePath = process.env.SLUICE_CHROMIUM ?? '/usr/bin/chromium';

// Generous: a loaded 2-core machine runs the server, the model and the browser at once.
export const TIMEOUT = 90000;

export async function launch() {
  mkdirSync(artifacts, { recursive: true });
  return chromium.launch({ executablePath, headless: true,
    args: ['--no-sandbox', '--disable-dev-shm-usage'] });
}

export async function openPage(browser, server, { width = 1280, height = 900 } = {}) {
  const context = await browser.newContext({ viewport: { width, height } });
  const page = await context.newPage();
  page.setDefaultTimeout(TIMEOUT);
  page.setDefaultNavigationTimeout(TIMEOUT);
  const problems = [];
  const origin = new URL(server.baseURL).origin;
  await page.route('**/*', (route) => {
    const url = route.request().url();
    if (new URL(url).origin !== origin && !url.startsWith('blob:')) {
      problems.push(`external request: ${url}`);
      return route.abort();
    }
    return route.continue();
  });
  page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
  page.on('console', (message) => {
    // A refused API call (401/403 in the login and permission tests) is logged by the browser
    // as a failed resource; everything else at error level is a problem.
    if (message.type() === 'error' && !/status of 40[13]/.test(message.text())) {
      problems.push(`console error: ${message.text()}`);
    }
  });
  return { page, context, problems };
}

export async function login(page, server, token) {
  await page.goto(`${server.baseURL}/`);
  await page.getByLabel('API token').fill(token);
  await page.getByRole('button', { name: 'Sign in' }).click();
  await page.getByRole('navigation', { name: 'Pages' }).waitFor();
}

export async function screenshot(page, name) {
  await page.screenshot({ path: path.join(artifacts, `${name}.png`), fullPage: true });
}

// Waits until `locator` (a Playwright locator) has text matching `pattern`.
export async function waitForText(locator, pattern) {
  await locator.filter({ hasText: pattern }).first().waitFor();
}
