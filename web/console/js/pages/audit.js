// Audit: the hash-chained audit log (GET /api/2.0/sluice/audit, admins), filtered here by
// principal, action, result and text, read in pages of 500; and verification of the chain and
// its signed checkpoints (GET /api/2.0/sluice/audit/verify).
import { getJson, getText, paths } from '../api.js';
import { clear, errorBox, field, h, number, select, table } from '../dom.js';

const PAGE = 500;

function verifyReport(report) {
  return h('div', { class: report.ok ? 'ok' : 'error', role: 'status' },
    h('p', {}, h('strong', {}, report.ok ? 'The audit chain verifies.' : 'The audit chain is broken.')),
    h('p', {}, `${number(report.records)} records (seq ${report.first_seq}–${report.last_seq}), ` +
      `${number(report.checkpoints)} signed checkpoints` +
      (report.key_rotations ? `, ${number(report.key_rotations)} signing key rotation` +
        (report.key_rotations === 1 ? '' : 's') : '') + '.'),
    report.ok ? null : h('p', {}, `First bad record: ${report.first_bad_seq}. ${report.problem}`));
}

export const auditPage = {
  title: 'Audit',
  async render(body, { signal }) {
    const records = [];
    let lastSeq = 0;
    const principal = h('input', { name: 'principal', type: 'search' });
    const action = h('input', { name: 'action', type: 'search' });
    const result = select('result', [['', 'any'], 'allow', 'deny', 'ok', 'error', 'mask', 'block'],
      '');
    const text = h('input', { name: 'text', type: 'search' });
    const place = h('div', {});
    const count = h('p', { class: 'live', 'aria-live': 'polite' });
    const more = h('button', { type: 'button' }, `Load ${PAGE} more`);
    const verifyButton = h('button', { type: 'button' }, 'Verify the chain');
    const verifyPlace = h('div', { 'aria-live': 'polite' });

    const render = () => {
      const p = principal.value.trim();
      const a = action.value.trim();
      const t = text.value.trim().toLowerCase();
      const shown = records.filter((r) => (!p || r.principal.includes(p)) &&
        (!a || r.action.includes(a)) && (!result.value || r.result === result.value) &&
        (!t || `${r.securable} ${r.details} ${r.request_id}`.toLowerCase().includes(t)));
      count.textContent = `${shown.length} of ${records.length} loaded records match.`;
      clear(place, table('Audit records', ['Seq', 'Time (UTC)', 'Principal', 'Action',
        'Securable', 'Result', 'Details', 'Request'], shown.slice(-PAGE).reverse().map((r) => [
        r.seq, new Date(r.time_us / 1000).toISOString().replace('T', ' ').slice(0, 19),
        r.principal, r.action, r.securable, h('span', { class: `badge result-${r.result}` },
          r.result), r.details, r.request_id]), { className: 'audit' }));
    };
    const load = async () => {
      try {
        const ndjson = await getText(`${paths.audit}?after_seq=${lastSeq}&limit=${PAGE}`,
          { signal });
        const page = ndjson.split('\n').filter(Boolean).map((line) => JSON.parse(line));
        records.push(...page);
        if (page.length) lastSeq = page[page.length - 1].seq;
        more.disabled = page.length < PAGE;
        render();
      } catch (error) {
        if (error.name !== 'AbortError') clear(place, errorBox(error));
      }
    };
    const filters = h('form', { class: 'row', 'aria-label': 'Filter the audit log' },
      field('Principal', principal), field('Action', action), field('Result', result),
      field('Text', text));
    filters.addEventListener('input', render);
    filters.addEventListener('submit', (event) => event.preventDefault());
    more.addEventListener('click', load);
    verifyButton.addEventListener('click', async () => {
      clear(verifyPlace, h('p', {}, 'Verifying…'));
      try {
        clear(verifyPlace, verifyReport(await getJson(paths.auditVerify)));
      } catch (error) {
        clear(verifyPlace, errorBox(error));
      }
    });
    clear(body, h('div', { class: 'toolbar' }, verifyButton), verifyPlace, filters, count, place,
      more);
    await load();
  },
};
