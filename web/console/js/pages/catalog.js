// Catalog: the tree (catalogs → schemas → objects) as a keyboard-navigable tree of
// disclosure buttons; for the selected securable its grants (add and revoke) and the effective
// permissions of any principal, with the reason for each.
import { enc, getJson, paths, sendJson } from '../api.js';
import { catalogs, objects, schemas } from '../catalog_walk.js';
import { clear, errorBox, field, h, select, table } from '../dom.js';

// Collections inside a schema: [API collection, answer key, securable type].
const SCHEMA_COLLECTIONS = [
  ['tables', 'tables', 'table'], ['volumes', 'volumes', 'volume'],
  ['vector-indexes', 'vector_indexes', 'vector_index'], ['functions', 'functions', 'function'],
  ['models', 'registered_models', 'model'], ['agents', 'agents', 'agent'],
];

const PRIVILEGES = ['USE_CATALOG', 'USE_SCHEMA', 'SELECT', 'MODIFY', 'EXECUTE', 'READ_VOLUME',
  'WRITE_VOLUME', 'CREATE_SCHEMA', 'CREATE_TABLE', 'CREATE_VOLUME', 'CREATE_FUNCTION',
  'CREATE_MODEL', 'CREATE_VECTOR_INDEX', 'CREATE_AGENT', 'USE_CONNECTION', 'MANAGE', 'BROWSE',
  'ALL_PRIVILEGES', 'CREATE_CATALOG', 'CREATE_CONNECTION'];

function node(label, type, fullName, loadChildren, onSelect) {
  const children = h('ul', { role: 'group', hidden: true });
  const selectButton = h('button', { type: 'button', class: 'link',
    onclick: () => onSelect(type, fullName) }, label);
  let toggle = null;
  if (loadChildren) {
    toggle = h('button', { type: 'button', class: 'toggle', 'aria-expanded': 'false',
      'aria-label': `Expand ${fullName}` }, '▸');
    toggle.addEventListener('click', async () => {
      const open = toggle.getAttribute('aria-expanded') !== 'true';
      toggle.setAttribute('aria-expanded', String(open));
      toggle.setAttribute('aria-label', `${open ? 'Collapse' : 'Expand'} ${fullName}`);
      toggle.textContent = open ? '▾' : '▸';
      children.hidden = !open;
      if (open && !children.dataset.loaded) {
        children.dataset.loaded = 'true';
        try {
          const items = await loadChildren();
          clear(children, items.length ? items : h('li', { class: 'empty' }, 'empty'));
        } catch (error) {
          clear(children, h('li', {}, errorBox(error)));
        }
      }
    });
  }
  return h('li', { class: `tree-${type}` }, toggle, h('span', { class: 'type' }, type), ' ',
    selectButton, children);
}

function schemaChildren(catalog, schema, onSelect) {
  return async () => {
    const lists = await Promise.all(SCHEMA_COLLECTIONS.map(async ([collection, key, type]) =>
      (await objects(collection, key, catalog, schema)).map((item) =>
        node(item.name, type, item.full_name, null, onSelect))));
    return lists.flat();
  };
}

function tree(onSelect) {
  const root = h('ul', { class: 'tree', 'aria-label': 'Catalog tree' });
  const load = async () => {
    const found = await catalogs();
    clear(root, node('metastore', 'metastore', 'metastore', null, onSelect),
      found.map((catalog) => node(catalog.name, 'catalog', catalog.full_name ?? catalog.name,
        async () => (await schemas(catalog.name)).map((schema) =>
          node(schema.name, 'schema', schema.full_name, schemaChildren(catalog.name, schema.name,
            onSelect), onSelect)), onSelect)));
  };
  return { root, load };
}

async function grantsView(type, fullName, principals, place) {
  const url = `${paths.catalog}/permissions/${type}/${enc(fullName)}`;
  const answer = await getJson(url);
  const live = h('p', { class: 'live', 'aria-live': 'polite' });
  const revoke = async (principal, privilege) => {
    try {
      await sendJson('PATCH', url, { changes: [{ principal, remove: [privilege] }] });
      // Announced once the table shows the change.
      const message = `Revoked ${privilege} from ${principal}.`;
      await grantsView(type, fullName, principals, place);
      place.querySelector('.live').textContent = message;
    } catch (error) {
      live.textContent = error.message;
    }
  };
  const rows = answer.privilege_assignments.flatMap((assignment) =>
    assignment.privileges.map((privilege) => [assignment.principal, privilege,
      h('button', { type: 'button', onclick: () => revoke(assignment.principal, privilege),
        'aria-label': `Revoke ${privilege} from ${assignment.principal}` }, 'Revoke')]));
  const who = select('principal', principals, principals[0]);
  const what = select('privilege', PRIVILEGES, 'SELECT');
  const form = h('form', { class: 'row', 'aria-label': 'Grant a privilege' },
    field('Principal', who), field('Privilege', what), h('button', { type: 'submit' }, 'Grant'));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await sendJson('PATCH', url, { changes: [{ principal: who.value, add: [what.value] }] });
      const message = `Granted ${what.value} to ${who.value}.`;
      await grantsView(type, fullName, principals, place);
      place.querySelector('.live').textContent = message;
    } catch (error) {
      live.textContent = error.message;
    }
  });
  clear(place, h('h3', {}, 'Grants'), rows.length
    ? table(`Grants on ${type} ${fullName}`, ['Principal', 'Privilege', ''], rows)
    : h('p', {}, 'No grants.'), form, live);
}

async function effectiveView(type, fullName, principals, me, place) {
  const who = select('principal', principals, me);
  const result = h('div', { 'aria-live': 'polite' });
  const show = async () => {
    try {
      const answer = await getJson(`${paths.catalog}/effective-permissions/${type}/` +
        `${enc(fullName)}?principal=${enc(who.value)}`);
      const privileges = answer.privilege_assignments[0]?.privileges ?? [];
      clear(result, table(`Effective permissions of ${who.value} on ${fullName}`,
        ['Privilege', 'Allowed', 'Source', 'Reason'], privileges.map((p) => [p.privilege,
          p.allowed ? 'yes' : 'no', p.source, p.reason])));
    } catch (error) {
      clear(result, errorBox(error));
    }
  };
  who.addEventListener('change', show);
  clear(place, h('h3', {}, 'Effective permissions'), field('For principal', who), result);
  await show();
}

export const catalogPage = {
  title: 'Catalog',
  async render(body, { me, signal }) {
    const principals = (await getJson(paths.principals, { signal })).principals
      .map((principal) => principal.name);
    const detail = h('div', { class: 'detail' });
    const onSelect = async (type, fullName) => {
      const heading = h('h2', { tabindex: '-1' }, `${type} ${fullName}`);
      const grants = h('div', {});
      const effective = h('div', {});
      clear(detail, heading, grants, effective);
      heading.focus();
      await Promise.all([
        grantsView(type, fullName, principals, grants).catch((e) => clear(grants, errorBox(e))),
        effectiveView(type, fullName, principals, me.name, effective)
          .catch((e) => clear(effective, errorBox(e))),
      ]);
    };
    const { root, load } = tree(onSelect);
    clear(body, h('div', { class: 'split' }, h('nav', { 'aria-label': 'Catalog' }, root), detail));
    await load();
  },
};
