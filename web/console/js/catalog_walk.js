// Walks the catalog tree through the Unity Catalog API (what the caller may BROWSE).
import { enc, getJson, paths } from './api.js';

export async function catalogs(options) {
  return (await getJson(`${paths.catalog}/catalogs`, options)).catalogs ?? [];
}

export async function schemas(catalog, options) {
  return (await getJson(`${paths.catalog}/schemas?catalog_name=${enc(catalog)}`, options))
    .schemas ?? [];
}

// Objects of one collection ('tables', 'agents', ...) inside a schema; `key` is the answer's list.
export async function objects(collection, key, catalog, schema, options) {
  const query = `catalog_name=${enc(catalog)}&schema_name=${enc(schema)}`;
  return (await getJson(`${paths.catalog}/${collection}?${query}`, options))[key] ?? [];
}

// Every agent the caller may browse, by full name.
export async function allAgents(options) {
  const found = [];
  for (const catalog of await catalogs(options)) {
    for (const schema of await schemas(catalog.name, options)) {
      const agents = await objects('agents', 'agents', catalog.name, schema.name, options);
      found.push(...agents.map((agent) => agent.full_name));
    }
  }
  return found;
}
