// Small DOM and formatting helpers shared by every page.
//
// Pages build their DOM with h() and never assign innerHTML: everything
// that comes from the broker (client ids, topics, payloads, SQL) is text.

export function h(tag, attrs = {}, ...children) {
  const element = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on") && typeof value === "function") {
      element.addEventListener(key.slice(2), value);
    } else if (key === "dataset") {
      Object.assign(element.dataset, value);
    } else if (value === true) {
      element.setAttribute(key, "");
    } else {
      element.setAttribute(key, String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

let ids = 0;
/** A document-unique id for label/aria wiring. */
export function uid(prefix = "f") {
  ids += 1;
  return `${prefix}-${ids}`;
}

/** A labelled form control: returns [wrapper, control]. */
export function field(label, control, hint) {
  const id = control.id || uid();
  control.id = id;
  const parts = [h("label", { for: id }, label), control];
  if (hint) {
    const hintId = `${id}-hint`;
    control.setAttribute("aria-describedby", hintId);
    parts.push(h("p", { class: "hint", id: hintId }, hint));
  }
  return [h("div", { class: "field" }, parts), control];
}

/** A table with a caption; columns: [{label, cell: row => node|text}]. */
export function table(caption, columns, rows, rowAttrs = () => ({})) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col" }, c.label)))),
      h("tbody", {}, rows.length
        ? rows.map((row) => h("tr", rowAttrs(row), columns.map((c) => h("td", {}, c.cell(row)))))
        : h("tr", {}, h("td", { colspan: columns.length, class: "empty" }, "None")))));
}

/** Tell screen readers (and sighted users) what just happened. */
export function announce(text, isError = false) {
  const region = document.getElementById("status");
  if (!region) return;
  region.textContent = text;
  region.classList.toggle("error", isError);
}

export function formatBytes(value) {
  const units = ["B", "KB", "MB", "GB", "TB"];
  let n = Number(value) || 0;
  let unit = 0;
  while (n >= 1024 && unit < units.length - 1) {
    n /= 1024;
    unit += 1;
  }
  return `${n.toFixed(unit ? 1 : 0)} ${units[unit]}`;
}

export function formatDuration(seconds) {
  let s = Math.max(0, Math.floor(Number(seconds) || 0));
  const days = Math.floor(s / 86400);
  s -= days * 86400;
  const hours = Math.floor(s / 3600);
  s -= hours * 3600;
  const minutes = Math.floor(s / 60);
  s -= minutes * 60;
  const parts = [];
  if (days) parts.push(`${days} d`);
  if (hours || days) parts.push(`${hours} h`);
  if (minutes || hours || days) parts.push(`${minutes} min`);
  parts.push(`${s} s`);
  return parts.join(" ");
}

/** A section with a heading (h2) and content. */
export function section(title, ...content) {
  const id = uid("s");
  return h("section", { "aria-labelledby": id }, h("h2", { id }, title), content);
}
