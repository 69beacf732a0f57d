// Chat: document QA over an index (streamed from POST /api/qa), a catalog agent (streamed from
// POST /api/agents/{name}/invoke) or the served model (streamed OpenAI chat completions).
// Citations expand to the passage they cite; the trace of each answer opens as a timeline.
import { enc, getJson, paths, sendJson, stream } from '../api.js';
import { allAgents } from '../catalog_walk.js';
import { clear, errorBox, field, h, select } from '../dom.js';
import { loadTrace, renderTrace } from '../trace_view.js';

// The passage a citation covers: the index's chunk of that document at those offsets, read
// through the vector-search query API (as the signed-in principal, so access lists apply).
async function passage(index, question, citation) {
  const answer = await sendJson('POST', `${paths.indexes}/${enc(index)}/query`, {
    query_text: question, num_results: 50, query_type: 'HYBRID',
    filters: { doc_key: citation.doc_key }, columns: ['text', 'char_begin', 'char_end'],
  });
  const rows = answer.result?.data_array ?? [];
  const exact = rows.find((row) => row[1] === citation.char_begin && row[2] === citation.char_end);
  return (exact ?? rows[0])?.[0] ?? null;
}

function citationList(index, question, citations) {
  return h('ol', { class: 'citations', 'aria-label': 'Sources' }, citations.map((citation) => {
    const body = h('div', { class: 'passage' }, 'Loading the passage…');
    const details = h('details', {},
      h('summary', {}, `[${citation.number}] ${citation.title || citation.doc_key}`,
        citation.cited ? ' (cited)' : ''),
      h('p', { class: 'meta' }, `${citation.uri} · bytes ${citation.char_begin}–` +
        `${citation.char_end} · score ${citation.score.toFixed(3)}`),
      body);
    details.addEventListener('toggle', async () => {
      if (!details.open || body.dataset.loaded) return;
      body.dataset.loaded = 'true';
      try {
        const text = await passage(index, question, citation);
        clear(body, h('blockquote', {}, text ?? 'The passage is no longer in the index.'));
      } catch (error) {
        clear(body, errorBox(error));
      }
    });
    return h('li', {}, details);
  }));
}

function traceButton(traceId, place) {
  const button = h('button', { type: 'button', 'aria-expanded': 'false' }, 'Show trace');
  button.addEventListener('click', async () => {
    if (button.getAttribute('aria-expanded') === 'true') {
      clear(place);
      button.setAttribute('aria-expanded', 'false');
      button.textContent = 'Show trace';
      return;
    }
    clear(place, h('p', {}, 'Loading the trace…'));
    try {
      clear(place, renderTrace(await loadTrace(traceId)));
      button.setAttribute('aria-expanded', 'true');
      button.textContent = 'Hide trace';
    } catch (error) {
      clear(place, errorBox(error));
    }
  });
  return h('p', {}, button, ` trace ${traceId}`);
}

async function askDocuments(form, turn) {
  const index = form.index.value;
  const question = form.question.value;
  let final = null;
  const options = { max_tokens: Number(form.max_tokens.value) || 64 };
  await stream(paths.qa, { question, index, stream: true, options }, (event, data) => {
    if (event === 'tokens') turn.text.append(data.text);
    else if (event === 'final') final = data;
    else if (event === 'error') throw new Error(data.message);
  });
  if (!final) throw new Error('the answer ended without its final event');
  turn.text.textContent = final.answer;
  turn.extra.append(h('p', { class: 'meta' }, final.refused ? 'No source was relevant.' :
    `${final.usage.prompt_tokens} prompt and ${final.usage.completion_tokens} completion tokens`));
  if (final.citations.length) turn.extra.append(citationList(index, question, final.citations));
  return final.trace_id;
}

async function askAgent(form, turn) {
  let final = null;
  const steps = h('ol', { class: 'steps', 'aria-label': 'Agent steps' });
  turn.extra.append(steps);
  await stream(`${paths.agents}/${enc(form.agent.value)}/invoke`,
    { input: form.question.value, stream: true }, (event, data) => {
      if (event === 'tokens') turn.text.append(data.text);
      else if (event === 'tool_call') steps.append(h('li', {}, `call ${data.name}`));
      else if (event === 'tool_result') {
        steps.append(h('li', {}, `${data.name}: ${data.ok ? 'ok' : data.error}`));
      } else if (event === 'final') final = data;
      else if (event === 'error') throw new Error(data.message);
    });
  if (!final) throw new Error('the run ended without its final event');
  turn.text.textContent = final.answer;
  turn.extra.append(h('p', { class: 'meta' },
    `stop: ${final.stop_reason}; ${final.steps} steps, ${final.tool_calls} tool calls`));
  return final.trace_id;
}

async function askModel(form, turn) {
  let usage = null;
  await stream('/v1/chat/completions', {
    messages: [{ role: 'user', content: form.question.value }], stream: true,
    stream_options: { include_usage: true }, max_tokens: Number(form.max_tokens.value) || 64,
  }, (event, data) => {
    if (data === '[DONE]') return;
    if (data.error) throw new Error(data.error.message);
    if (data.usage) usage = data.usage;
    for (const choice of data.choices ?? []) turn.text.append(choice.delta?.content ?? '');
  });
  if (usage) {
    turn.extra.append(h('p', { class: 'meta' }, `${usage.prompt_tokens} prompt and ` +
      `${usage.completion_tokens} completion tokens`));
  }
  return null;
}

export const chatPage = {
  title: 'Chat',
  async render(body, { signal }) {
    const [indexes, agents] = await Promise.all([
      getJson(paths.indexes, { signal }).then((answer) => answer.vector_indexes.map((i) => i.name)),
      allAgents({ signal }).catch(() => []),
    ]);
    const mode = select('mode', [['qa', 'Documents'], ['agent', 'Agent'], ['model', 'Model']], 'qa');
    const index = select('index', indexes, indexes[0]);
    const agent = select('agent', agents, agents[0]);
    const maxTokens = h('input', { name: 'max_tokens', type: 'number', min: 1, max: 2048,
      value: 64 });
    const question = h('textarea', { name: 'question', rows: 3, required: true });
    const indexField = field('Index', index);
    const agentField = field('Agent', agent);
    const tokensField = field('Max tokens', maxTokens);
    const showFields = () => {
      indexField.hidden = mode.value !== 'qa';
      agentField.hidden = mode.value !== 'agent';
      tokensField.hidden = mode.value === 'agent';
    };
    mode.addEventListener('change', showFields);
    showFields();
    const send = h('button', { type: 'submit' }, 'Ask');
    const form = h('form', { class: 'chat-form', 'aria-label': 'Ask a question' },
      h('div', { class: 'row' }, field('Answer from', mode), indexField, agentField, tokensField),
      field('Question', question), send);
    const log = h('div', { class: 'chat-log', 'aria-live': 'polite', 'aria-busy': 'false' });
    clear(body, log, form);
    if (!indexes.length) body.prepend(h('p', {}, 'No index yet: create one to ask documents.'));

    question.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && (event.ctrlKey || event.metaKey)) form.requestSubmit();
    });
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const text = h('div', { class: 'answer-text' });
      const extra = h('div', {});
      const tracePlace = h('div', {});
      const turn = { text, extra };
      log.append(h('article', { class: 'turn' },
        h('p', { class: 'question' }, h('strong', {}, 'You: '), question.value),
        h('div', { class: 'answer' }, h('strong', {}, 'Answer: '), text), extra, tracePlace));
      send.disabled = true;
      log.setAttribute('aria-busy', 'true');
      try {
        const ask = { qa: askDocuments, agent: askAgent, model: askModel }[mode.value];
        const traceId = await ask(form, turn);
        if (traceId) extra.append(traceButton(traceId, tracePlace));
        question.value = '';
      } catch (error) {
        extra.append(errorBox(error));
      } finally {
        send.disabled = false;
        log.setAttribute('aria-busy', 'false');
        question.focus();
      }
    });
  },
};
