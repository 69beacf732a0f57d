// Grouped bar charts in SVG, drawn here (no chart library): one group per x value (a day), one
// bar per series, a y axis with rounded ticks, a legend, and a title and description for
// screen readers (the page also shows the numbers as a table).
const SVG = 'http://www.w3.org/2000/svg';

function svgElement(tag, attributes = {}, text) {
  const element = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attributes)) element.setAttribute(name, value);
  if (text !== undefined) element.textContent = text;
  return element;
}

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (step * power >= value) return step * power;
  }
  return 10 * power;
}

function short(value) {
  if (value >= 1e6) return `${(value / 1e6).toFixed(1)}M`;
  if (value >= 1e3) return `${(value / 1e3).toFixed(1)}k`;
  return String(Math.round(value * 100) / 100);
}

// xs: the x labels in order; series: [{name, values: Map(x -> number)}].
export function barChart({ title, xs, series }) {
  const width = 640;
  const height = 260;
  const left = 56;
  const bottom = 40;
  const top = 16;
  const plotWidth = width - left - 12;
  const plotHeight = height - top - bottom;
  const max = niceMax(Math.max(0, ...series.flatMap((s) => [...s.values.values()])));
  const svg = svgElement('svg', { viewBox: `0 0 ${width} ${height}`, class: 'chart',
    role: 'img', 'aria-label': title });
  svg.append(svgElement('title', {}, title));
  for (let tick = 0; tick <= 4; tick += 1) {
    const y = top + plotHeight - (tick / 4) * plotHeight;
    svg.append(svgElement('line', { x1: left, x2: width - 12, y1: y, y2: y, class: 'grid' }));
    svg.append(svgElement('text', { x: left - 6, y: y + 4, class: 'tick', 'text-anchor': 'end' },
      short((max * tick) / 4)));
  }
  const groupWidth = plotWidth / Math.max(xs.length, 1);
  const barWidth = Math.min(32, (groupWidth * 0.8) / Math.max(series.length, 1));
  xs.forEach((x, i) => {
    const groupLeft = left + i * groupWidth + (groupWidth - barWidth * series.length) / 2;
    series.forEach((s, j) => {
      const value = s.values.get(x) ?? 0;
      const barHeight = (value / max) * plotHeight;
      const bar = svgElement('rect', { x: groupLeft + j * barWidth, width: barWidth - 2,
        y: top + plotHeight - barHeight, height: Math.max(barHeight, 0),
        class: `series-${j % 8}` });
      bar.append(svgElement('title', {}, `${s.name}, ${x}: ${value}`));
      svg.append(bar);
    });
    svg.append(svgElement('text', { x: left + i * groupWidth + groupWidth / 2,
      y: height - bottom + 16, class: 'tick', 'text-anchor': 'middle' }, x));
  });
  const legend = document.createElement('ul');
  legend.className = 'legend';
  series.forEach((s, j) => {
    const item = document.createElement('li');
    const swatch = svgElement('svg', { viewBox: '0 0 10 10', class: 'swatch', 'aria-hidden': 'true' });
    swatch.append(svgElement('rect', { width: 10, height: 10, class: `series-${j % 8}` }));
    item.append(swatch, document.createTextNode(s.name));
    legend.append(item);
  });
  const figure = document.createElement('figure');
  figure.className = 'chart-figure';
  const caption = document.createElement('figcaption');
  caption.textContent = title;
  figure.append(caption, svg, legend);
  return figure;
}
