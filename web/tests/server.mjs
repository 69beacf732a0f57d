// Starts a real `sluice serve` (SLUICE_BINARY, default build/bin/sluice) on a temporary data
// directory and a free port, with a tiny random model and an HTTP push source bound to an index.
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const binary = process.env.SLUICE_BINARY ?? path.join(root, 'build', 'bin', 'sluice');

// Resolves with the first stderr line matching `pattern`, collecting lines as it goes.
function waitForLine(child, pattern, lines) {
  return new Promise((resolve, reject) => {
    let buffer = '';
    const timer = setTimeout(() => reject(new Error(`no line matching ${pattern}`)), 120000);
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
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`sluice serve exited with ${code}:\n${lines.join('\n')}`));
    });
  });
}

export async function startServer() {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-web-'));
  const data = path.join(dir, 'data');
  execFileSync(binary, ['model', 'init-tiny', '--out', path.join(dir, 'model')]);
  // Sources are bound when the server starts, so the push source is defined first.
  execFileSync(binary, ['source', 'add', 'kb', '--type', 'http', '--index', 'kb',
    '--data-dir', data], { stdio: ['ignore', 'ignore', 'pipe'] });
  // The audit signing key is rotated once before the first start: the audit page then verifies
  // a log signed by two keys, as a data directory that rotated its key holds.
  execFileSync(binary, ['audit', 'rotate-key', '--data-dir', data],
    { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = [];
  const child = spawn(binary, ['serve', '--port', '0', '--data-dir', data,
    '--model', path.join(dir, 'model')], {
    env: { ...process.env, SLUICE_LOG_ACCESS_LOG: 'false' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const listening = JSON.parse(await waitForLine(child, /"listening"/, lines));
  const tokenLine = lines.find((line) => line.includes('admin token: '));
  if (!tokenLine) throw new Error('the first start prints no admin token');
  const token = tokenLine.slice(tokenLine.indexOf('admin token: ') + 13).trim();
  const baseURL = `http://${listening.address}`;
  // The model loads after the listener opens; /readyz says when.
  for (;;) {
    const ready = await fetch(`${baseURL}/readyz`);
    if (ready.status === 200) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  return {
    baseURL,
    token,
    // Stops the server (it writes its index snapshots on the way out), then removes its data.
    async stop() {
      child.removeAllListeners('exit');
      if (child.exitCode === null && child.signalCode === null) {
        const exited = new Promise((resolve) => child.once('exit', resolve));
        child.kill('SIGTERM');
        await exited;
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// A JSON call to the server's REST API; throws with the server's message when it fails.
export async function api(server, token, method, urlPath, body, headers = {}) {
  const response = await fetch(`${server.baseURL}${urlPath}`, {
    method,
    headers: { Authorization: `Bearer ${token}`, 'Content-Type': 'application/json', ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${urlPath}: ${response.status} ${text}`);
  return text ? JSON.parse(text) : {};
}
