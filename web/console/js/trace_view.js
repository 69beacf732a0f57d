// A trace as a timeline: one row per span, a bar from its start to its end on the trace's
// time axis (SVG), nested by parent; each span expands to its inputs and outputs.
import { enc, getJson, paths } from './api.js';
import { h } from './dom.js';

const SVG = 'http://www.w3.org/2000/svg';

function depthOf(span, byId) {
  let depth = 0;
  for (let parent = byId.get(span.parent_id); parent; parent = byId.get(parent.parent_id)) {
    depth += 1;
    if (depth > 32) break;
  }
  return depth;
}

function bar(span, start, total) {
  const svg = document.createElementNS(SVG, 'svg');
  svg.setAttribute('viewBox', '0 0 1000 10');
  svg.setAttribute('preserveAspectRatio', 'none');
  svg.setAttribute('class', 'span-bar');
  svg.setAttribute('aria-hidden', 'true');
  const rect = document.createElementNS(SVG, 'rect');
  const x = ((span.start_us - start) / total) * 1000;
  const width = Math.max(((span.end_us - span.start_us) / total) * 1000, 2);
  rect.setAttribute('x', x.toFixed(1));
  rect.setAttribute('width', Math.min(width, 1000 - x).toFixed(1));
  rect.setAttribute('y', '0');
  rect.setAttribute('height', '10');
  rect.setAttribute('class', `kind-${span.kind}${span.error ? ' failed' : ''}`);
  svg.append(rect);
  return svg;
}

export function renderTrace(trace) {
  const spans = [...trace.spans].sort((a, b) => a.start_us - b.start_us);
  const byId = new Map(spans.map((span) => [span.span_id, span]));
  const start = Math.min(trace.start_us, ...spans.map((span) => span.start_us));
  const end = Math.max(trace.end_us, ...spans.map((span) => span.end_us));
  const total = Math.max(end - start, 1);
  const rows = spans.map((span) => {
    const label = `${span.kind} ${span.name}`;
    const offset = ((span.start_us - start) / 1000).toFixed(1);
    return h('li', { class: `span depth-${Math.min(depthOf(span, byId), 6)}` },
      h('details', {},
        h('summary', {},
          h('span', { class: 'span-name' }, label),
          h('span', { class: 'span-time' },
            `+${offset} ms, ${span.duration_ms.toFixed(1)} ms` +
            (span.prompt_tokens || span.completion_tokens
              ? `, ${span.prompt_tokens}+${span.completion_tokens} tokens` : '')),
          bar(span, start, total)),
        span.error ? h('p', { class: 'error' }, span.error) : null,
        h('h4', {}, 'Inputs'), h('pre', {}, JSON.stringify(span.inputs, null, 2)),
        h('h4', {}, 'Outputs'), h('pre', {}, JSON.stringify(span.outputs, null, 2))));
  });
  return h('figure', { class: 'trace' },
    h('figcaption', {}, `Trace ${trace.trace_id}: ${spans.length} spans over ` +
      `${(total / 1000).toFixed(1)} ms`),
    h('ol', { class: 'spans' }, rows));
}

export async function loadTrace(traceId, options) {
  return getJson(`${paths.traces}/${enc(traceId)}`, options);
}
