// Indexes: the vector indexes with their counts, and a query playground (mode, k, filters,
// columns) over the vector-search query API.
import { enc, getJson, paths, sendJson } from '../api.js';
import { clear, errorBox, field, h, number, select, table } from '../dom.js';

// How the index's hybrid queries fuse when they name no fusion: "rrf" or "weighted 0.2".
function fusionText(index) {
  return index.fusion === 'weighted' ? `weighted ${index.vector_weight}` : index.fusion;
}

function indexTable(indexes) {
  return table('Vector indexes', ['Name', 'Documents', 'Chunks', 'Vectors', 'Embedder',
    'Dimension', 'Chunking', 'Hybrid fusion'], indexes.map((index) => [index.name,
    number(index.status.indexed_row_count), number(index.status.chunk_count),
    number(index.status.vector_count), index.embedder, number(index.embedding_dimension),
    `${index.chunking} (${index.chunk_max_tokens} tokens)`, fusionText(index)]));
}

// A metadata boolean is spelt out: the DOM helpers drop a `false` child (they take it for a
// condition that failed), which left the cell empty.
function cellText(column, cell) {
  if (column === 'score') return Number(cell).toFixed(4);
  if (typeof cell === 'boolean') return String(cell);
  return cell ?? '—';
}

function resultTable(answer) {
  const columns = answer.manifest.columns.map((column) => column.name);
  const rows = answer.result.data_array.map((row) =>
    row.map((cell, i) => cellText(columns[i], cell)));
  return table(`${answer.result.row_count} results`, columns, rows, { className: 'results' });
}

export const indexesPage = {
  title: 'Indexes',
  async render(body, { signal }) {
    const { vector_indexes: indexes } = await getJson(paths.indexes, { signal });
    if (!indexes.length) {
      clear(body, h('p', {}, 'No vector index yet.'));
      return;
    }
    const name = select('index', indexes.map((index) => index.name), indexes[0].name);
    const mode = select('mode', [['HYBRID', 'Hybrid'], ['ANN', 'Vector'], ['LEXICAL', 'Keyword']],
      'HYBRID');
    const k = h('input', { name: 'k', type: 'number', min: 1, max: 100, value: 5 });
    const text = h('input', { name: 'query', type: 'search', required: true });
    const filters = h('textarea', { name: 'filters', rows: 2, spellcheck: 'false',
      placeholder: '{"year >=": 2020}', 'aria-describedby': 'filters-help' });
    const columns = h('input', { name: 'columns', value: 'id, title, uri, text' });
    const results = h('div', { 'aria-live': 'polite' });
    const form = h('form', { class: 'playground', 'aria-label': 'Query playground' },
      h('div', { class: 'row' }, field('Index', name), field('Mode', mode), field('Results', k)),
      field('Query', text),
      field('Filters (JSON)', filters),
      h('p', { id: 'filters-help', class: 'help' },
        'Equality {"field": v}, lists, {"field >=": v}, {"field PREFIX": "t"}, and/or/not.'),
      field('Columns', columns),
      h('button', { type: 'submit' }, 'Search'));
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const query = {
        query_text: text.value, query_type: mode.value, num_results: Number(k.value) || 5,
        columns: columns.value.split(',').map((c) => c.trim()).filter(Boolean),
      };
      if (filters.value.trim()) {
        try {
          query.filters = JSON.parse(filters.value);
        } catch (error) {
          clear(results, errorBox({ message: `The filters are not JSON: ${error.message}` }));
          filters.focus();
          return;
        }
      }
      clear(results, h('p', {}, 'Searching…'));
      try {
        clear(results, resultTable(await sendJson('POST',
          `${paths.indexes}/${enc(name.value)}/query`, query)));
      } catch (error) {
        clear(results, errorBox(error));
      }
    });
    clear(body, indexTable(indexes), h('h2', {}, 'Query playground'), form, results);
  },
};
