// Usage: token spend and requests per principal, endpoint or agent, per day, as bar charts and
// a table of totals (GET /api/2.0/sluice/usage; non-admins see their own).
import { getJson, paths } from '../api.js';
import { barChart } from '../charts.js';
import { clear, errorBox, field, h, number, select, table } from '../dom.js';

function day(offset) {
  const date = new Date(Date.now() + offset * 86400000);
  return date.toISOString().slice(0, 10);
}

function seriesOf(rows, dimension, metric) {
  const byName = new Map();
  for (const row of rows) {
    const name = row[dimension] || '(none)';
    if (!byName.has(name)) byName.set(name, new Map());
    const values = byName.get(name);
    values.set(row.day, (values.get(row.day) ?? 0) + metric(row));
  }
  return [...byName.entries()].sort().map(([name, values]) => ({ name, values }));
}

function totals(rows, dimension) {
  const byName = new Map();
  for (const row of rows) {
    const name = row[dimension] || '(none)';
    const total = byName.get(name) ?? { requests: 0, input: 0, output: 0, cost: 0 };
    total.requests += row.requests;
    total.input += row.input_tokens;
    total.output += row.output_tokens;
    total.cost += row.cost_usd;
    byName.set(name, total);
  }
  return [...byName.entries()].sort().map(([name, t]) => [name, number(t.requests),
    number(t.input), number(t.output), number(t.input + t.output), `$${t.cost.toFixed(4)}`]);
}

export const usagePage = {
  title: 'Usage',
  async render(body, { signal }) {
    const by = select('by', [['principal', 'Principal'], ['endpoint', 'Endpoint'],
      ['agent', 'Agent']], 'principal');
    const from = h('input', { name: 'from', type: 'date', value: day(-13) });
    const to = h('input', { name: 'to', type: 'date', value: day(0) });
    const result = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'row', 'aria-label': 'Usage query' }, field('Per', by),
      field('From', from), field('To', to), h('button', { type: 'submit' }, 'Show'));
    const show = async () => {
      const dimension = by.value;
      try {
        const query = new URLSearchParams({ group_by: `${dimension},day`, from: from.value,
          to: to.value });
        const { usage } = await getJson(`${paths.usage}?${query}`, { signal });
        const days = [...new Set(usage.map((row) => row.day))].sort();
        if (!usage.length) {
          clear(result, h('p', {}, 'No usage in this period.'));
          return;
        }
        clear(result,
          barChart({ title: `Tokens per ${dimension} per day`, xs: days,
            series: seriesOf(usage, dimension, (row) => row.input_tokens + row.output_tokens) }),
          barChart({ title: `Requests per ${dimension} per day`, xs: days,
            series: seriesOf(usage, dimension, (row) => row.requests) }),
          table(`Totals per ${dimension}`, [dimension, 'Requests', 'Input tokens',
            'Output tokens', 'Tokens', 'Cost'], totals(usage, dimension)));
      } catch (error) {
        if (error.name !== 'AbortError') clear(result, errorBox(error));
      }
    };
    form.addEventListener('submit', (event) => {
      event.preventDefault();
      show();
    });
    by.addEventListener('change', show);
    clear(body, form, result);
    await show();
  },
};
