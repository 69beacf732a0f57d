// The REST API as the console uses it: every call carries the bearer token kept in
// sessionStorage; errors become ApiError with the server's message and status.

const TOKEN_KEY = 'sluice.token';

export function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value) {
  sessionStorage.setItem(TOKEN_KEY, value);
}

export function clearToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

// Listeners told about 401 (the token is no longer valid) so that the app can log out.
const unauthorizedListeners = [];
export function onUnauthorized(listener) {
  unauthorizedListeners.push(listener);
}

function explain(status, message) {
  if (status === 401) return `Not signed in or the token is no longer valid: ${message}`;
  if (status === 403) return `Not allowed: ${message}`;
  return message;
}

async function failure(response) {
  let message = `${response.status} ${response.statusText}`;
  let code;
  try {
    const body = await response.json();
    if (body?.error?.message) {
      message = body.error.message;
      code = body.error.code;
    }
  } catch {
    // not a JSON envelope; keep the status line
  }
  const error = new ApiError(response.status, explain(response.status, message), code);
  if (response.status === 401) unauthorizedListeners.forEach((listener) => listener(error));
  return error;
}

export async function request(method, path, body, { signal, accept } = {}) {
  const headers = { Authorization: `Bearer ${token() ?? ''}` };
  if (accept) headers.Accept = accept;
  const init = { method, headers, signal };
  if (body !== undefined) {
    headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  const response = await fetch(path, init);
  if (!response.ok) throw await failure(response);
  return response;
}

export async function getJson(path, options) {
  return (await request('GET', path, undefined, options)).json();
}

export async function sendJson(method, path, body, options) {
  const response = await request(method, path, body, options);
  const text = await response.text();
  return text ? JSON.parse(text) : {};
}

export async function getText(path, options) {
  return (await request('GET', path, undefined, options)).text();
}

// Posts `body` and reads a text/event-stream answer, calling onEvent(name, data) per event
// ("message" when the event has no name). Data is parsed as JSON unless it is [DONE].
export async function stream(path, body, onEvent, { signal } = {}) {
  const response = await request('POST', path, body, { signal, accept: 'text/event-stream' });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      dispatch(block, onEvent);
    }
  }
  if (buffer.trim()) dispatch(buffer, onEvent);
}

function dispatch(block, onEvent) {
  let name = 'message';
  const data = [];
  for (const line of block.split('\n')) {
    if (line.startsWith(':')) continue;
    if (line.startsWith('event:')) name = line.slice(6).trim();
    else if (line.startsWith('data:')) data.push(line.slice(5).replace(/^ /, ''));
  }
  if (data.length === 0) return;
  const text = data.join('\n');
  onEvent(name, text === '[DONE]' ? text : JSON.parse(text));
}

export const paths = {
  me: '/api/2.0/sluice/me',
  principals: '/api/2.0/sluice/principals',
  usage: '/api/2.0/sluice/usage',
  audit: '/api/2.0/sluice/audit',
  auditVerify: '/api/2.0/sluice/audit/verify',
  catalog: '/api/2.1/unity-catalog',
  indexes: '/api/2.0/vector-search/indexes',
  sources: '/api/sources',
  qa: '/api/qa',
  traces: '/api/traces',
  agents: '/api/agents',
  tools: '/api/tools',
  eval: '/api/eval',
};

export function enc(part) {
  return encodeURIComponent(part);
}
