// Small helpers to build the DOM without innerHTML (text is always set as text).

export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes ?? {})) {
    if (value === undefined || value === null || value === false) continue;
    if (name.startsWith('on') && typeof value === 'function') {
      element.addEventListener(name.slice(2), value);
    } else if (name === 'class') {
      element.className = value;
    } else if (value === true) {
      element.setAttribute(name, '');
    } else {
      element.setAttribute(name, String(value));
    }
  }
  append(element, children);
  return element;
}

export function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return element;
}

export function clear(element, ...children) {
  element.replaceChildren();
  return append(element, children);
}

let nextId = 0;
export function uid(prefix) {
  nextId += 1;
  return `${prefix}-${nextId}`;
}

// A labelled form control: <div class="field"><label for=id>text</label><control id=id></div>.
export function field(labelText, control) {
  if (!control.id) control.id = uid('field');
  return h('div', { class: 'field' }, h('label', { for: control.id }, labelText), control);
}

export function select(name, options, value) {
  return h('select', { name },
    options.map((option) => {
      const [optionValue, text] = Array.isArray(option) ? option : [option, option];
      return h('option', { value: optionValue, selected: optionValue === value }, text);
    }));
}

// A table from column headings and rows of cells (strings or nodes).
export function table(caption, headings, rows, { className } = {}) {
  return h('div', { class: 'table-wrap' },
    h('table', { class: className },
      h('caption', {}, caption),
      h('thead', {}, h('tr', {}, headings.map((heading) => h('th', { scope: 'col' }, heading)))),
      h('tbody', {}, rows.map((cells) => h('tr', {}, cells.map((cell) => h('td', {}, cell)))))));
}

export function status(element, text) {
  element.textContent = text;
}

export function errorBox(error) {
  return h('p', { class: 'error', role: 'alert' }, error.message ?? String(error));
}

export function percent(rate) {
  return rate === null || rate === undefined ? '—' : `${(rate * 100).toFixed(1)}%`;
}

export function number(value) {
  return value === null || value === undefined ? '—' : Number(value).toLocaleString('en');
}

export function seconds(value) {
  if (value === null || value === undefined) return '—';
  return value < 1 ? `${(value * 1000).toFixed(0)} ms` : `${value.toFixed(1)} s`;
}

// A page section with a heading; returns [section, body] so the caller can fill the body.
export function section(title, ...children) {
  const id = uid('section');
  return h('section', { 'aria-labelledby': id }, h('h2', { id }, title), ...children);
}
