// The console's pages by route name (#/name).
import { agentsPage } from './agents.js';
import { auditPage } from './audit.js';
import { catalogPage } from './catalog.js';
import { chatPage } from './chat.js';
import { evaluationsPage } from './evaluations.js';
import { indexesPage } from './indexes.js';
import { sourcesPage } from './sources.js';
import { usagePage } from './usage.js';

export const pages = {
  chat: chatPage,
  sources: sourcesPage,
  indexes: indexesPage,
  agents: agentsPage,
  evaluations: evaluationsPage,
  catalog: catalogPage,
  audit: auditPage,
  usage: usagePage,
};
