// The instances view: the live store of instances and the filtered table.
//
// The store lists every instance once, then re-reads one instance whenever an event names it.
// It never applies an event's payload to the table, so a lost or reordered event cannot leave a
// wrong row: the next read shows what the server stores.

import { ApiError, instancePath, keyOf, namespaceOf, request } from "./api.js";
import { clear, el, timeElement } from "./dom.js";

export const PHASES = [
  "Pending",
  "Provisioning",
  "Starting",
  "Running",
  "Stopping",
  "Stopped",
  "Succeeded",
  "Failed",
  "CrashLoopBackOff",
  "Terminating",
  "Unknown",
];

// Delay of the second read after an event, in milliseconds (see InstanceStore.follow).
const SETTLE_MS = 1000;

export const RUNTIME_BADGES = {
  docker: { text: "CT", title: "Container (Docker)" },
  libvirt: { text: "VM", title: "Virtual machine (libvirt)" },
};

// The instance store. Emits "change" with detail {key, instance} (instance null once deleted)
// and "reset" after a full listing.
export class InstanceStore extends EventTarget {
  constructor() {
    super();
    this.items = new Map();
    this.reads = new Map();
    this.settleTimers = new Map();
  }

  // Re-read an instance that an event names, now and once more shortly after.
  // NOTE: the controller records an event when an instance becomes Running, but it writes the
  // other phase changes (Stopped, Failed, ...) to the status without an event, just after the
  // event of the runtime action. A read made for that event can come before the status write,
  // so the second read, SETTLE_MS after the last event of the key, picks the new phase up.
  follow(key) {
    this.refresh(key).catch(() => {});
    clearTimeout(this.settleTimers.get(key));
    this.settleTimers.set(
      key,
      setTimeout(() => {
        this.settleTimers.delete(key);
        this.refresh(key).catch(() => {});
      }, SETTLE_MS),
    );
  }

  async loadAll() {
    const list = await request("/api/v1/instances");
    this.items = new Map(list.items.map((item) => [keyOf(item), item]));
    this.dispatchEvent(new CustomEvent("reset"));
  }

  // Re-read one instance. Reads of one key never overlap: a request made while one is running
  // runs once more after it, so the last read always starts after the last event.
  refresh(key) {
    const pending = this.reads.get(key);
    if (pending) {
      pending.again = true;
      return pending.promise;
    }
    const state = { again: false };
    state.promise = (async () => {
      try {
        do {
          state.again = false;
          await this.readOne(key);
        } while (state.again);
      } finally {
        this.reads.delete(key);
      }
    })();
    this.reads.set(key, state);
    return state.promise;
  }

  async readOne(key) {
    let instance = null;
    try {
      instance = await request(instancePath(key), { query: { namespace: namespaceOf(key) } });
    } catch (error) {
      if (!(error instanceof ApiError) || error.status !== 404) throw error;
    }
    if (instance) this.items.set(key, instance);
    else if (!this.items.delete(key)) return;
    this.dispatchEvent(new CustomEvent("change", { detail: { key, instance } }));
  }
}

export function readyCondition(instance) {
  const conditions = instance.status?.conditions || [];
  return conditions.find((condition) => condition.type === "Ready") || null;
}

export function runtimeBadge(runtime) {
  const badge = RUNTIME_BADGES[runtime] || { text: "?", title: runtime || "unknown runtime" };
  return el(
    "span",
    { class: `badge runtime runtime-${runtime}`, title: badge.title },
    badge.text,
    el("span", { class: "visually-hidden" }, ` (${badge.title})`),
  );
}

export function phaseBadge(phase) {
  const value = phase || "Unknown";
  return el("span", { class: `badge phase phase-${value}`, "data-phase": value }, value);
}

export function readyBadge(instance) {
  const ready = readyCondition(instance);
  const status = ready ? ready.status : "Unknown";
  const text = { True: "Yes", False: "No" }[status] || "Unknown";
  const title = ready ? [ready.reason, ready.message].filter(Boolean).join(": ") : "";
  return el("span", { class: `ready ready-${status}`, title }, text);
}

export function imageOrLoadout(instance) {
  const spec = instance.spec || {};
  if (spec.loadout) return `loadout ${spec.loadout}`;
  return spec.image || "";
}

// Parse a label filter "a=b,c!=d,e" into terms; raise Error naming the bad term.
export function parseLabelFilter(text) {
  const terms = [];
  for (const raw of text.split(",")) {
    const term = raw.trim();
    if (!term) continue;
    const match = /^([A-Za-z0-9_./-]+)\s*(!=|==|=)?\s*([A-Za-z0-9_.-]*)$/.exec(term);
    if (!match) throw new Error(`label filter '${term}' is invalid; write key=value, key!=value or key`);
    const [, key, operator, value] = match;
    terms.push({ key, operator: operator === "==" ? "=" : operator || "exists", value });
  }
  return terms;
}

export function matchesFilter(instance, { runtime, phase, labels }) {
  if (runtime && (instance.spec?.runtime || "docker") !== runtime) return false;
  if (phase && (instance.status?.phase || "Pending") !== phase) return false;
  const have = instance.metadata.labels || {};
  return labels.every(({ key, operator, value }) => {
    if (operator === "exists") return key in have;
    if (operator === "=") return have[key] === value;
    return have[key] !== value;
  });
}

function rowCells(instance, key) {
  const status = instance.status || {};
  return [
    el(
      "td",
      { class: "col-name" },
      el("button", { type: "button", class: "link row-select", dataset: { key } }, instance.metadata.name),
      instance.metadata.namespace !== "default"
        ? el("span", { class: "muted namespace" }, ` ${instance.metadata.namespace}`)
        : null,
    ),
    el("td", { class: "col-runtime" }, runtimeBadge(instance.spec?.runtime)),
    el("td", { class: "col-phase" }, phaseBadge(status.phase)),
    el("td", { class: "col-ready" }, readyBadge(instance)),
    el("td", { class: "col-image", title: imageOrLoadout(instance) }, imageOrLoadout(instance)),
    el("td", { class: "col-node" }, status.node || ""),
    el("td", { class: "col-age" }, timeElement(instance.metadata.creationTimestamp, { age: true })),
    el("td", { class: "col-restarts" }, String(status.restartCount ?? 0)),
  ];
}

// The table of instances. Rows are updated in place, so focus and scroll position stay put.
export class InstanceTable {
  constructor({ store, body, empty, count, onSelect }) {
    this.store = store;
    this.body = body;
    this.empty = empty;
    this.count = count;
    this.filter = { runtime: "", phase: "", labels: [] };
    this.selected = null;
    this.rows = new Map();
    body.addEventListener("click", (event) => {
      const button = event.target.closest("button.row-select");
      if (button) onSelect(button.dataset.key);
    });
    store.addEventListener("reset", () => this.renderAll());
    store.addEventListener("change", (event) => this.renderOne(event.detail.key));
  }

  setFilter(filter) {
    this.filter = filter;
    this.renderAll();
  }

  select(key) {
    this.selected = key;
    for (const [rowKey, row] of this.rows) row.setAttribute("aria-current", String(rowKey === key));
  }

  renderAll() {
    clear(this.body);
    this.rows.clear();
    for (const key of [...this.store.items.keys()].sort()) this.renderOne(key);
    this.updateCount();
  }

  renderOne(key) {
    const instance = this.store.items.get(key);
    const existing = this.rows.get(key);
    if (!instance || !matchesFilter(instance, this.filter)) {
      if (existing) existing.remove();
      this.rows.delete(key);
      this.updateCount();
      return;
    }
    const hadFocus = existing && existing.contains(document.activeElement);
    const row = existing || el("tr", { dataset: { key } });
    row.setAttribute("aria-current", String(key === this.selected));
    row.replaceChildren(...rowCells(instance, key));
    if (!existing) {
      const next = [...this.rows.keys()].filter((other) => other > key).sort()[0];
      this.body.insertBefore(row, next ? this.rows.get(next) : null);
      this.rows.set(key, row);
    }
    if (hadFocus) row.querySelector("button.row-select").focus();
    this.updateCount();
  }

  updateCount() {
    const total = this.store.items.size;
    const shown = this.rows.size;
    const noun = total === 1 ? "instance" : "instances";
    this.count.textContent = shown === total ? `${total} ${noun}` : `${shown} of ${total} ${noun}`;
    this.empty.hidden = shown > 0;
  }
}
