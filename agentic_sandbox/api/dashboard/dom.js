// DOM and text helpers shared by the dashboard's modules.
//
// Elements are built with `el`, never from HTML strings, so text that comes from the API (names,
// messages, log output) is always inserted as text and can never become markup.

export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === undefined || value === null || value === false) continue;
    if (name === "class") element.className = value;
    else if (name === "dataset") Object.assign(element.dataset, value);
    else if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  element.append(...children.flat().filter((child) => child !== null && child !== undefined));
  return element;
}

export function clear(element) {
  element.replaceChildren();
  return element;
}

const RELATIVE = new Intl.RelativeTimeFormat("en", { numeric: "auto", style: "narrow" });
const ABSOLUTE = new Intl.DateTimeFormat("en", {
  dateStyle: "medium",
  timeStyle: "medium",
});
const UNITS = [
  ["day", 86400],
  ["hour", 3600],
  ["minute", 60],
  ["second", 1],
];

// Age as a short span such as "5m" or "3d", like kubectl's AGE column.
export function shortAge(iso, now = Date.now()) {
  const seconds = Math.max(0, Math.round((now - Date.parse(iso)) / 1000));
  for (const [unit, size] of UNITS) {
    if (seconds >= size || unit === "second") return `${Math.floor(seconds / size)}${unit[0]}`;
  }
  return "";
}

export function relativeTime(iso, now = Date.now()) {
  const seconds = Math.round((Date.parse(iso) - now) / 1000);
  for (const [unit, size] of UNITS) {
    if (Math.abs(seconds) >= size || unit === "second") {
      return RELATIVE.format(Math.trunc(seconds / size), unit);
    }
  }
  return "";
}

// A <time> element showing a relative time (or an age with `age: true`) with the absolute
// time on hover. `refreshTimes` updates every such element in place.
export function timeElement(iso, { age = false } = {}) {
  if (!iso) return el("span", { class: "muted" }, "—");
  const element = el("time", { datetime: iso, title: ABSOLUTE.format(new Date(iso)) });
  element.dataset.format = age ? "age" : "relative";
  element.textContent = age ? shortAge(iso) : relativeTime(iso);
  return element;
}

export function refreshTimes(root = document) {
  const now = Date.now();
  for (const element of root.querySelectorAll("time[data-format]")) {
    const iso = element.getAttribute("datetime");
    element.textContent =
      element.dataset.format === "age" ? shortAge(iso, now) : relativeTime(iso, now);
  }
}

// YAML 1.1 reads these plain scalars as booleans or null, so strings equal to them are quoted.
const YAML_RESERVED = /^(y|yes|n|no|true|false|on|off|null|~)$/i;
const YAML_PLAIN = /^[A-Za-z_/][A-Za-z0-9_./@-]*$/;

function yamlScalar(value) {
  if (value === null || value === undefined) return "null";
  if (typeof value === "number" || typeof value === "boolean") return String(value);
  const text = String(value);
  if (YAML_PLAIN.test(text) && !YAML_RESERVED.test(text)) return text;
  return JSON.stringify(text);
}

function yamlKey(key) {
  return YAML_PLAIN.test(key) && !YAML_RESERVED.test(key) ? key : JSON.stringify(key);
}

// Render plain JSON data as block YAML. Strings are quoted whenever YAML could read them as
// anything else, so the text round-trips to the same values.
export function toYaml(value, indent = "") {
  if (Array.isArray(value)) {
    if (value.length === 0) return "[]";
    return value
      .map((item) => {
        const body = toYaml(item, indent + "  ");
        return isBlock(item) ? `${indent}- ${body.trimStart()}` : `${indent}- ${body}`;
      })
      .join("\n");
  }
  if (value !== null && typeof value === "object") {
    const entries = Object.entries(value);
    if (entries.length === 0) return "{}";
    return entries
      .map(([key, item]) => {
        if (isBlock(item)) return `${indent}${yamlKey(key)}:\n${toYaml(item, indent + "  ")}`;
        return `${indent}${yamlKey(key)}: ${toYaml(item, indent + "  ")}`;
      })
      .join("\n");
  }
  return yamlScalar(value);
}

function isBlock(value) {
  if (Array.isArray(value)) return value.length > 0;
  return value !== null && typeof value === "object" && Object.keys(value).length > 0;
}
