// The fleet overview: instance counts by phase and runtime, the garbage collector, and sources.
//
// Counts come from the live instance store. The collector section shows the sweep counters of
// /metrics, the last pass (GET /api/v1/gc) with what it removed, and a dry-run sweep
// (POST /api/v1/gc/sweep?dryRun=true), which lists what a pass would remove now. Directory sources are the manifest files named by the
// instances' source annotations and by source.* events; git sources are GitSource resources.

import { request } from "./api.js";
import { clear, el, timeElement } from "./dom.js";
import { PHASES } from "./instances.js";

const SOURCE_ANNOTATION = "sandbox.agentic.dev/source";
const FILE_PREFIX = "file:";
const SOURCE_ERROR_EVENTS = new Set(["source.invalid", "source.rejected", "source.fetch_failed"]);

// The collector's last pass that was not a dry run: when, and what it removed or failed on.
function lastPassParts(status) {
  const heading = el("h3", {}, "Last pass");
  const last = status.lastPass;
  if (!last) {
    const why = status.enabled ? "no pass has run yet" : "the periodic sweep is off";
    return [heading, el("p", { class: "muted gc-last" }, `None: ${why}.`)];
  }
  const when = el("p", { class: "gc-last" }, "Finished ", timeElement(last.finishedAt));
  if (last.error) return [heading, when, el("p", { class: "error" }, last.error)];
  if (last.items.length === 0) return [heading, when, el("p", { class: "gc-none" }, "It removed nothing.")];
  const rows = last.items.map((item) => el("tr", {}, el("td", {}, item.type), el("td", {}, item.name), el("td", {}, item.instance || "—"), el("td", {}, item.result), el("td", { class: "message" }, item.error || item.message)));
  return [heading, when, table("What the last pass did", ["Type", "Name", "Instance", "Result", "Message"], rows)];
}

function table(caption, headers, rows) {
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      { class: "fleet-table" },
      el("caption", {}, caption),
      el("thead", {}, el("tr", {}, headers.map((header) => el("th", { scope: "col" }, header)))),
      el("tbody", {}, rows),
    ),
  );
}

// Parse Prometheus text into {"name{labels}": value} for the families named.
function parseMetrics(text, names) {
  const values = {};
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const name = line.split(/[{ ]/)[0];
    if (!names.includes(name)) continue;
    const space = line.lastIndexOf(" ");
    values[line.slice(0, space)] = Number(line.slice(space + 1));
  }
  return values;
}

export class FleetView {
  constructor({ root, store }) {
    this.root = root;
    this.store = store;
    this.sourceEvents = new Map();
    this.counts = el("section", { class: "fleet-section", "aria-labelledby": "fleet-counts" });
    this.gc = el("section", { class: "fleet-section", "aria-labelledby": "fleet-gc" });
    this.sources = el("section", { class: "fleet-section", "aria-labelledby": "fleet-sources" });
    root.append(this.counts, this.gc, this.sources);
    this.visible = false;
    store.addEventListener("change", () => this.visible && this.renderCounts());
    store.addEventListener("reset", () => this.visible && this.renderCounts());
  }

  async show() {
    this.visible = true;
    this.renderCounts();
    await Promise.allSettled([this.loadGc(), this.loadSources()]);
  }

  hide() {
    this.visible = false;
  }

  renderCounts() {
    const counts = new Map();
    for (const instance of this.store.items.values()) {
      const phase = instance.status?.phase || "Pending";
      const runtime = instance.spec?.runtime || "docker";
      const row = counts.get(phase) || { docker: 0, libvirt: 0 };
      row[runtime] = (row[runtime] || 0) + 1;
      counts.set(phase, row);
    }
    const total = { docker: 0, libvirt: 0 };
    const rows = PHASES.filter((phase) => counts.has(phase)).map((phase) => {
      const row = counts.get(phase);
      total.docker += row.docker;
      total.libvirt += row.libvirt;
      return el("tr", { dataset: { phase } }, el("th", { scope: "row" }, phase), el("td", {}, String(row.docker)), el("td", {}, String(row.libvirt)), el("td", {}, String(row.docker + row.libvirt)));
    });
    rows.push(el("tr", { class: "total", dataset: { phase: "total" } }, el("th", { scope: "row" }, "Total"), el("td", {}, String(total.docker)), el("td", {}, String(total.libvirt)), el("td", {}, String(total.docker + total.libvirt))));
    clear(this.counts).append(el("h2", { id: "fleet-counts" }, "Instances by phase"), table("Instances by phase and runtime", ["Phase", "Containers", "VMs", "Total"], rows));
  }

  async loadGc() {
    const heading = el("h2", { id: "fleet-gc" }, "Garbage collector");
    const recheck = el("button", { type: "button", onclick: () => this.loadGc() }, "Check again");
    clear(this.gc).append(heading, el("p", { class: "muted" }, "Loading…"));
    const [metrics, sweep, status] = await Promise.allSettled([
      fetch("/metrics", { cache: "no-store" }).then((response) => response.text()),
      request("/api/v1/gc/sweep", { method: "POST", query: { dryRun: "true" } }),
      request("/api/v1/gc"),
    ]);
    const parts = [heading];
    if (metrics.status === "fulfilled") {
      const values = parseMetrics(metrics.value, ["agentic_sandbox_gc_sweeps_total", "agentic_sandbox_gc_removals_total"]);
      const value = (key) => String(values[key] ?? 0);
      parts.push(
        el("dl", { class: "summary gc-counters" },
          el("dt", {}, "Passes succeeded"), el("dd", {}, value('agentic_sandbox_gc_sweeps_total{result="succeeded"}')),
          el("dt", {}, "Passes failed"), el("dd", {}, value('agentic_sandbox_gc_sweeps_total{result="failed"}')),
          el("dt", {}, "Containers removed"), el("dd", {}, value('agentic_sandbox_gc_removals_total{type="container"}')),
          el("dt", {}, "Workspaces removed"), el("dd", {}, value('agentic_sandbox_gc_removals_total{type="workspace"}')),
        ),
      );
    }
    if (status.status === "fulfilled") parts.push(...lastPassParts(status.value));
    if (sweep.status === "fulfilled") {
      const items = sweep.value.items;
      parts.push(el("h3", {}, "A pass now would remove"));
      parts.push(
        items.length === 0
          ? el("p", { class: "gc-none" }, "Nothing: every sandbox this controller owns belongs to an instance.")
          : table("Candidates of a dry-run pass", ["Type", "Name", "Instance", "Reason", "Message"], items.map((item) => el("tr", {}, el("td", {}, item.type), el("td", {}, item.name), el("td", {}, item.instance || "—"), el("td", {}, item.reason), el("td", { class: "message" }, item.message)))),
      );
    } else {
      parts.push(el("p", { class: "error" }, `The dry-run pass failed: ${sweep.reason.message}`));
    }
    parts.push(recheck);
    clear(this.gc).append(...parts);
  }

  // Record a source.* event from the stream, and redraw the sources when they are shown.
  addEvent(event) {
    if (!event.name.startsWith("source.") || !event.source) return;
    this.sourceEvents.set(event.source, event);
    if (this.visible) this.renderSources();
  }

  async loadSources() {
    const [events, gitSources] = await Promise.allSettled([
      request("/api/v1/events", { query: { type: "source.", limit: 500 } }),
      request("/api/v1/gitsources"),
    ]);
    if (events.status === "fulfilled") {
      for (const event of events.value.items) if (event.source) this.sourceEvents.set(event.source, event);
    }
    this.gitSources = gitSources.status === "fulfilled" ? gitSources.value.items : null;
    this.gitError = gitSources.status === "rejected" ? gitSources.reason.message : "";
    this.renderSources();
  }

  renderSources() {
    const files = new Map();
    for (const instance of this.store.items.values()) {
      const source = instance.metadata.annotations?.[SOURCE_ANNOTATION] || "";
      if (source.startsWith(FILE_PREFIX)) files.set(source, (files.get(source) || 0) + 1);
    }
    for (const source of this.sourceEvents.keys()) if (source.startsWith(FILE_PREFIX) && !files.has(source)) files.set(source, 0);
    const fileRows = [...files.keys()].sort().map((source) => {
      const event = this.sourceEvents.get(source);
      const failing = event && SOURCE_ERROR_EVENTS.has(event.name);
      return el(
        "tr",
        { class: failing ? "failing" : "" },
        el("td", { class: "path" }, source.slice(FILE_PREFIX.length)),
        el("td", {}, String(files.get(source))),
        el("td", {}, event ? timeElement(event.time) : "—"),
        el("td", { class: "message" }, event ? `${event.name}: ${event.message}` : "no event recorded"),
      );
    });
    const parts = [el("h2", { id: "fleet-sources" }, "Sources"), el("h3", {}, "Manifest files")];
    parts.push(fileRows.length ? table("Manifest files of the watched directory", ["File", "Instances", "Last event", "Result"], fileRows) : el("p", { class: "muted" }, "No instance comes from a manifest file."));
    parts.push(el("h3", {}, "Git sources"));
    if (this.gitSources === null) parts.push(el("p", { class: "error" }, this.gitError));
    else if (this.gitSources.length === 0) parts.push(el("p", { class: "muted" }, "No GitSource resources."));
    else parts.push(table("GitSource resources", ["Name", "Repository", "Last sync", "Commit", "Ready", "Error"], this.gitSources.map(gitRow)));
    clear(this.sources).append(...parts);
  }
}

function gitRow(source) {
  const status = source.status || {};
  const ready = (status.conditions || []).find((condition) => condition.type === "Ready");
  const errors = [status.lastError, ...(status.manifestErrors || []).map((issue) => `${issue.file}: ${issue.message}`)].filter(Boolean);
  const ref = source.spec.ref || {};
  return el(
    "tr",
    { class: errors.length ? "failing" : "" },
    el("td", {}, source.metadata.name),
    el("td", { class: "path" }, `${source.spec.url} ${ref.branch || ref.tag || ref.commit || ""} ${source.spec.path || ""}`.trim()),
    el("td", {}, timeElement(status.lastSyncTime)),
    el("td", {}, (status.lastAppliedCommit || "").slice(0, 12) || "—"),
    el("td", { title: ready?.message || "" }, ready ? `${ready.status} ${ready.reason || ""}`.trim() : "Unknown"),
    el("td", { class: "message" }, errors.join("; ") || "—"),
  );
}
