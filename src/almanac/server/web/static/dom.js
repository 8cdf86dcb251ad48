// Building elements. Text from the API (answers, retrieved passages, file names) is untrusted: it only ever
// goes in through textContent, never innerHTML.

/** A new element: el("p", { className: "x", text: "hi", attrs: { id: "y" } }, child, ...). */
export function el(tag, { className, text, attrs } = {}, ...children) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  for (const [name, value] of Object.entries(attrs || {})) node.setAttribute(name, value);
  for (const child of children) if (child) node.append(child);
  return node;
}

/** The element with this id (it is part of index.html, so it exists). */
export function byId(id) {
  return document.getElementById(id);
}

/** Seconds as "42 s", "3 min 5 s" or "1 h 2 min". */
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s} s`;
  if (s < 3600) return `${Math.floor(s / 60)} min ${s % 60} s`;
  return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
}
