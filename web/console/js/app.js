// The console's shell: login with a token, the page router (#/page), logout, focus management.
import { clearToken, getJson, onUnauthorized, paths, setToken, token } from './api.js';
import { clear, errorBox, field, h } from './dom.js';
import { pages } from './pages/index.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
const who = document.getElementById('who');
const whoName = document.getElementById('who-name');
const notice = document.getElementById('notice');

let me = null;
let controller = null;  // aborts the previous page's requests when the page changes

function showNotice(text) {
  notice.textContent = text;
  notice.hidden = !text;
}

function setSignedIn(principal) {
  me = principal;
  nav.hidden = !principal;
  who.hidden = !principal;
  whoName.textContent = principal
    ? `${principal.name}${principal.is_metastore_admin ? ' (admin)' : ''}`
    : '';
}

function loginPage(message) {
  const input = h('input', { type: 'password', name: 'token', autocomplete: 'off',
    required: true, spellcheck: 'false' });
  const result = h('div', { 'aria-live': 'polite' });
  if (message) result.append(errorBox({ message }));
  const form = h('form', { class: 'login', 'aria-labelledby': 'login-title' },
    h('h1', { id: 'login-title' }, 'Sign in to Sluice'),
    h('p', {}, 'Paste an API token (slc_…). It is kept in this tab only and sent as a bearer ' +
      'token with every API call.'),
    field('API token', input),
    h('button', { type: 'submit' }, 'Sign in'),
    result);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    setToken(input.value.trim());
    try {
      const principal = await getJson(paths.me);
      setSignedIn(principal);
      showNotice('');
      if (!location.hash || location.hash === '#/login') location.hash = '#/chat';
      else route();
    } catch (error) {
      clearToken();
      clear(result, errorBox(error));
      input.focus();
    }
  });
  clear(main, form);
  input.focus();
}

function logout(message) {
  clearToken();
  setSignedIn(null);
  controller?.abort();
  loginPage(message);
}

function currentPage() {
  const name = location.hash.replace(/^#\/?/, '').split('?')[0] || 'chat';
  return pages[name] ? name : null;
}

async function route() {
  if (!token()) {
    loginPage();
    return;
  }
  if (!me) {
    try {
      setSignedIn(await getJson(paths.me));
    } catch (error) {
      if (error.status !== 401) showNotice(error.message);
      return;
    }
  }
  const name = currentPage();
  controller?.abort();
  controller = new AbortController();
  for (const link of nav.querySelectorAll('a')) {
    if (link.getAttribute('href') === `#/${name}`) link.setAttribute('aria-current', 'page');
    else link.removeAttribute('aria-current');
  }
  if (!name) {
    clear(main, h('h1', {}, 'Not found'), h('p', {}, `No page ${location.hash}.`));
    main.focus();
    return;
  }
  const page = pages[name];
  document.title = `${page.title} · Sluice console`;
  const heading = h('h1', { tabindex: '-1' }, page.title);
  const body = h('div', { class: 'page' });
  clear(main, heading, body);
  heading.focus();
  try {
    await page.render(body, { me, signal: controller.signal });
  } catch (error) {
    if (error.name !== 'AbortError') body.append(errorBox(error));
  }
}

onUnauthorized((error) => logout(error.message));
document.getElementById('logout').addEventListener('click', () => {
  logout();
  location.hash = '#/chat';
});
window.addEventListener('hashchange', route);
route();
