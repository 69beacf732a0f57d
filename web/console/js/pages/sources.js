// Sources: each change feed with its index, sync state, lag, last error and recent error
// records; "Sync now" asks the server to poll the source at once.
import { enc, getJson, paths, sendJson } from '../api.js';
import { clear, errorBox, h, number, seconds, table } from '../dom.js';

function stateBadge(sync) {
  const state = sync?.state ?? 'unbound';
  return h('span', { class: `badge state-${state}` }, state.replace('_', ' '));
}

function lag(sync) {
  if (!sync) return '—';
  const events = sync.lag_events === null || sync.lag_events === undefined
    ? '' : `${number(sync.lag_events)} events, `;
  return `${events}${seconds(sync.lag_seconds ?? 0)}`;
}

function sourceRow(source, refresh, live) {
  const sync = source.sync;
  const button = h('button', { type: 'button', disabled: !sync || sync.state === 'error' },
    'Sync now');
  button.setAttribute('aria-label', `Sync ${source.name} now`);
  button.addEventListener('click', async () => {
    button.disabled = true;
    try {
      await sendJson('POST', `${paths.sources}/${enc(source.name)}/sync`, {});
      live.textContent = `Asked ${source.name} to sync now.`;
      await refresh();
    } catch (error) {
      live.textContent = error.message;
      button.disabled = false;
    }
  });
  const errors = sync?.recent_errors?.length
    ? h('details', {}, h('summary', {}, `${sync.recent_errors.length} error records`),
      h('ul', {}, sync.recent_errors.map((e) => h('li', {}, `${e.key}: ${e.message}`))))
    : null;
  return [source.name, source.type, source.index ?? '—', stateBadge(sync), lag(sync),
    number(sync?.documents), h('span', {}, sync?.last_error || '—', errors), button];
}

export const sourcesPage = {
  title: 'Sources',
  async render(body, { signal }) {
    const live = h('p', { class: 'live', 'aria-live': 'polite' });
    const place = h('div', {});
    const reload = h('button', { type: 'button' }, 'Refresh');
    const refresh = async () => {
      try {
        const { sources } = await getJson(paths.sources, { signal });
        clear(place, sources.length
          ? table('Change-feed sources', ['Name', 'Type', 'Index', 'State', 'Lag', 'Documents',
            'Last error', 'Action'], sources.map((source) => sourceRow(source, refresh, live)),
          { className: 'sources' })
          : h('p', {}, 'No source is defined (sluice source add).'));
      } catch (error) {
        if (error.name !== 'AbortError') clear(place, errorBox(error));
      }
    };
    reload.addEventListener('click', refresh);
    clear(body, h('div', { class: 'toolbar' }, reload), live, place);
    await refresh();
  },
};
