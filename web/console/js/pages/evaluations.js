// Evaluations: the eval runs with pass rates per judge, one run's aggregates (pass rate with
// its confidence interval per judge) and rows (verdicts with rationales), and the comparison
// of two runs (per-judge win rate and significance, rows whose outcome changed).
import { enc, getJson, paths, request } from '../api.js';
import { clear, errorBox, h, number, percent, table } from '../dom.js';

const SVG = 'http://www.w3.org/2000/svg';

// A pass rate with its interval as a small horizontal SVG: the interval as a line, the rate
// as a dot, on a 0–100% axis.
function intervalChart(aggregate) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 100 10');
  svg.setAttribute('class', 'interval');
  svg.setAttribute('role', 'img');
  svg.setAttribute('aria-label', `${percent(aggregate.pass_rate)}, interval ` +
    `${percent(aggregate.ci_low)} to ${percent(aggregate.ci_high)}`);
  const track = document.createElementNS(SVG, 'line');
  Object.entries({ x1: 0, x2: 100, y1: 5, y2: 5, class: 'track' })
    .forEach(([k, v]) => track.setAttribute(k, v));
  const range = document.createElementNS(SVG, 'line');
  Object.entries({ x1: aggregate.ci_low * 100, x2: aggregate.ci_high * 100, y1: 5, y2: 5,
    class: 'range' }).forEach(([k, v]) => range.setAttribute(k, v));
  const dot = document.createElementNS(SVG, 'circle');
  Object.entries({ cx: aggregate.pass_rate * 100, cy: 5, r: 3, class: 'rate' })
    .forEach(([k, v]) => dot.setAttribute(k, v));
  svg.append(track, range, dot);
  return svg;
}

function when(createdAt) {
  const date = typeof createdAt === 'number' ? new Date(createdAt) : new Date(String(createdAt));
  return Number.isNaN(date.getTime()) ? String(createdAt)
    : date.toISOString().replace('T', ' ').slice(0, 19);
}

function verdictCell(verdict) {
  if (!verdict) return '—';
  return h('details', { class: `verdict verdict-${verdict.verdict}` },
    h('summary', {}, String(verdict.verdict)), h('p', {}, verdict.rationale || '—'));
}

function runDetail(run) {
  const judges = Object.keys(run.aggregates ?? {});
  const aggregates = table('Pass rate per judge (with interval)', ['Judge', 'Pass rate',
    'Interval', 'Rows', ''], judges.map((judge) => {
    const a = run.aggregates[judge];
    return [judge, percent(a.pass_rate), `${percent(a.ci_low)} – ${percent(a.ci_high)}`,
      number(a.n), intervalChart(a)];
  }));
  const rows = table('Rows', ['#', 'Request', 'Response', 'Expected', ...judges, 'Root cause'],
    (run.rows ?? []).map((row) => [row.index, row.request, row.response,
      row.expected_response ?? '—', ...judges.map((judge) => verdictCell(row.verdicts?.[judge])),
      row.root_cause || '—']), { className: 'eval-rows' });
  const metrics = Object.entries(run.metrics ?? {});
  return [
    h('p', { class: 'meta' }, `Agent ${run.agent} on set ${run.set} v${run.set_version}, ` +
      `${run.status}, ${when(run.created_at)} UTC. `,
      h('a', { href: `${paths.eval}/runs/${enc(run.id)}/report.html`, 'data-report': run.id },
        'Download the HTML report')),
    aggregates,
    metrics.length ? h('dl', { class: 'facts' }, metrics.map(([k, v]) =>
      [h('dt', {}, k), h('dd', {}, typeof v === 'number' ? v.toFixed(3) : JSON.stringify(v))]))
      : null,
    rows,
  ];
}

function compareDetail(comparison) {
  const judges = table(`Run ${comparison.a} against run ${comparison.b}`, ['Judge', 'A pass rate',
    'B pass rate', 'B win rate', 'p-value', 'Significant'],
  Object.entries(comparison.judges ?? {}).map(([judge, c]) => [judge, percent(c.a_pass_rate),
    percent(c.b_pass_rate), percent(c.win_rate), Number(c.p_value).toFixed(3),
    c.significant ? 'yes' : 'no']));
  const fixed = (value) => (value === null || value === undefined ? '—'
    : Number(value).toFixed(3));
  const metrics = Object.entries(comparison.metrics ?? {});
  const metricTable = metrics.length ? table('Metric differences (B − A, paired bootstrap)',
    ['Metric', 'A mean', 'B mean', 'Difference', 'Interval', 'p-value', 'Significant'],
    metrics.map(([name, m]) => [name, fixed(m.a_mean), fixed(m.b_mean), fixed(m.difference),
      `${fixed(m.ci_low)} – ${fixed(m.ci_high)}`, fixed(m.p_value),
      m.significant ? 'yes' : 'no'])) : null;
  const changed = (comparison.rows ?? []).filter((row) => row.changed);
  // Each side of a row is its verdicts by judge.
  const summarize = (side) => Object.entries(side ?? {})
    .map(([judge, v]) => `${judge}: ${v.verdict}`).join(', ') || '—';
  return [judges, metricTable, changed.length
    ? table(`${changed.length} rows changed`, ['#', 'A', 'B'],
      changed.map((row) => [row.index, summarize(row.a), summarize(row.b)]))
    : h('p', {}, 'No row changed outcome.')];
}

// The HTML report needs the bearer token, so it is fetched here and saved as a file (opened
// under the console's origin it would run under the console's policy, which it is not made for).
async function saveReport(event) {
  const link = event.target.closest('a[data-report]');
  if (!link) return;
  event.preventDefault();
  const blob = await (await request('GET', link.getAttribute('href'))).blob();
  const url = URL.createObjectURL(blob);
  const save = h('a', { href: url, download: `eval-run-${link.dataset.report}.html` });
  document.body.append(save);
  save.click();
  save.remove();
  setTimeout(() => URL.revokeObjectURL(url), 60000);
}

export const evaluationsPage = {
  title: 'Evaluations',
  async render(body, { signal }) {
    const { runs } = await getJson(`${paths.eval}/runs`, { signal });
    if (!runs.length) {
      clear(body, h('p', {}, 'No evaluation run yet.'));
      return;
    }
    const judges = [...new Set(runs.flatMap((run) => Object.keys(run.pass_rates ?? {})))];
    const detail = h('div', { class: 'detail', 'aria-live': 'polite' });
    detail.addEventListener('click', (event) => saveReport(event).catch((error) =>
      detail.prepend(errorBox(error))));
    const picks = [];
    const compare = h('button', { type: 'button', disabled: true }, 'Compare selected');
    const show = async (id) => {
      clear(detail, h('p', {}, `Loading run ${id}…`));
      try {
        const run = await getJson(`${paths.eval}/runs/${enc(id)}`);
        clear(detail, h('h2', { tabindex: '-1' }, `Run ${id}`), runDetail(run));
        detail.querySelector('h2').focus();
      } catch (error) {
        clear(detail, errorBox(error));
      }
    };
    const rows = runs.map((run) => {
      const box = h('input', { type: 'checkbox', 'aria-label': `Select run ${run.id} to compare` });
      box.addEventListener('change', () => {
        if (box.checked) picks.push(run.id);
        else picks.splice(picks.indexOf(run.id), 1);
        compare.disabled = picks.length !== 2;
      });
      return [box, h('button', { type: 'button', class: 'link', onclick: () => show(run.id) },
        String(run.id)), run.agent, `${run.set} v${run.set_version}`, when(run.created_at),
      run.status, number(run.n_rows), ...judges.map((judge) => percent(run.pass_rates?.[judge]))];
    });
    compare.addEventListener('click', async () => {
      clear(detail, h('p', {}, 'Comparing…'));
      try {
        const [a, b] = picks;
        const comparison = await getJson(`${paths.eval}/compare?a=${enc(a)}&b=${enc(b)}`);
        clear(detail, h('h2', { tabindex: '-1' }, `Compare ${a} and ${b}`),
          compareDetail(comparison));
        detail.querySelector('h2').focus();
      } catch (error) {
        clear(detail, errorBox(error));
      }
    });
    clear(body, table('Evaluation runs', ['Compare', 'Run', 'Agent', 'Set', 'Created', 'Status',
      'Rows', ...judges], rows), h('div', { class: 'toolbar' }, compare,
      h('span', { class: 'help' }, 'Select two runs to compare them.')), detail);
  },
};
