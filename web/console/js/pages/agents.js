// Agents: every agent the caller may browse, and one agent's definition: endpoint, planner,
// instructions, budgets and its tools with their kinds and configuration.
import { enc, getJson, paths } from '../api.js';
import { allAgents } from '../catalog_walk.js';
import { clear, errorBox, h, number, seconds, table } from '../dom.js';

function definitionList(entries) {
  return h('dl', { class: 'facts' }, entries.map(([term, value]) => [h('dt', {}, term),
    h('dd', {}, value === '' || value === undefined || value === null ? '—' : value)]));
}

async function toolRow(name) {
  try {
    const tool = await getJson(`${paths.tools}/${enc(name)}`);
    return [name, tool.kind, tool.description || '—', h('code', {}, JSON.stringify(tool.config))];
  } catch (error) {
    return [name, '—', error.message, '—'];
  }
}

async function showAgent(name, place) {
  clear(place, h('p', {}, `Loading ${name}…`));
  try {
    const agent = await getJson(`${paths.agents}/${enc(name)}`);
    const budgets = agent.budgets ?? {};
    const tools = await Promise.all(agent.tools.map(toolRow));
    const heading = h('h2', { tabindex: '-1' }, agent.name);
    clear(place, heading,
      definitionList([
        ['Model endpoint', agent.endpoint || 'the served model'],
        ['Planner', agent.planner],
        ['Runs as', agent.run_as || 'the caller'],
        ['Instructions', h('pre', { class: 'instructions' }, agent.instructions)],
      ]),
      h('h3', {}, 'Budgets'),
      definitionList([
        ['Model turns', number(budgets.max_steps)],
        ['Tokens', number(budgets.max_tokens)],
        ['Wall time', seconds(budgets.max_wall_s)],
        ['Tool calls', number(budgets.max_tool_calls)],
      ]),
      tools.length ? table('Tools', ['Name', 'Kind', 'Description', 'Configuration'], tools)
        : h('p', {}, 'No tools: the agent answers from the model alone.'));
    heading.focus();
  } catch (error) {
    clear(place, errorBox(error));
  }
}

export const agentsPage = {
  title: 'Agents',
  async render(body, { signal }) {
    const names = await allAgents({ signal });
    if (!names.length) {
      clear(body, h('p', {}, 'No agent you may browse.'));
      return;
    }
    const detail = h('div', { class: 'detail' });
    const list = h('ul', { class: 'picker', 'aria-label': 'Agents' }, names.map((name) =>
      h('li', {}, h('button', { type: 'button', onclick: (event) => {
        list.querySelectorAll('button').forEach((b) => b.removeAttribute('aria-pressed'));
        event.currentTarget.setAttribute('aria-pressed', 'true');
        showAgent(name, detail);
      } }, name))));
    clear(body, h('div', { class: 'split' }, list, detail));
  },
};
