// The detail pane of one instance: status, actions, conditions, spec, recent events and logs.
//
// The pane re-renders its status parts when the store reports a change of its instance, but
// keeps the log and event lists, which grow from their own streams.

import { ApiError, instancePath, namespaceOf, openStream, request } from "./api.js";
import { clear, el, timeElement, toYaml } from "./dom.js";
import { imageOrLoadout, phaseBadge, readyBadge, runtimeBadge } from "./instances.js";

const MAX_EVENTS = 50;
// The log view keeps about this many characters, dropping the oldest output.
const MAX_LOG_CHARS = 200000;
const LOG_TAIL_LINES = 200;
const SOURCE_ANNOTATION = "sandbox.agentic.dev/source";

function section(title, ...children) {
  const id = `detail-${title.toLowerCase().replace(/\W+/g, "-")}`;
  return el("section", { class: "detail-section", "aria-labelledby": id }, el("h3", { id }, title), ...children);
}

function summary(instance) {
  const status = instance.status || {};
  const spec = instance.spec || {};
  const rows = [
    ["Phase", phaseBadge(status.phase)],
    ["Ready", readyBadge(instance)],
    ["Runtime", runtimeBadge(spec.runtime)],
    [spec.loadout ? "Loadout" : "Image", imageOrLoadout(instance)],
    ["Run strategy", spec.runStrategy || "Always"],
    ["Node", status.node || "—"],
    ["IP", status.ip || "—"],
    ["Started", timeElement(status.startedAt)],
    ["Restarts", String(status.restartCount ?? 0)],
    ["Created", timeElement(instance.metadata.creationTimestamp)],
    ["Source", instance.metadata.annotations?.[SOURCE_ANNOTATION] || "—"],
  ];
  if (status.lastExit) {
    const exit = status.lastExit;
    rows.push(["Last exit", `code ${exit.code ?? "?"} ${exit.reason || ""}`.trim()]);
  }
  if (instance.metadata.deletionTimestamp) rows.push(["Deleting since", timeElement(instance.metadata.deletionTimestamp)]);
  return el("dl", { class: "summary" }, rows.flatMap(([term, value]) => [el("dt", {}, term), el("dd", {}, value)]));
}

function conditionsTable(instance) {
  const conditions = instance.status?.conditions || [];
  if (conditions.length === 0) return el("p", { class: "muted" }, "No conditions reported yet.");
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      { class: "conditions" },
      el("thead", {}, el("tr", {}, ["Type", "Status", "Reason and message", "Changed"].map((name) => el("th", { scope: "col" }, name)))),
      el(
        "tbody",
        {},
        conditions.map((condition) =>
          el(
            "tr",
            { dataset: { condition: condition.type } },
            el("th", { scope: "row" }, condition.type),
            el("td", { class: `status-${condition.status}` }, condition.status),
            el("td", { class: "message" }, el("strong", {}, condition.reason || ""), condition.message ? el("div", {}, condition.message) : null),
            el("td", {}, timeElement(condition.lastTransitionTime)),
          ),
        ),
      ),
    ),
  );
}

function eventItem(event) {
  const warning = event.severity === "Warning";
  return el(
    "li",
    { class: warning ? "event warning" : "event", dataset: { name: event.name } },
    timeElement(event.time),
    " ",
    el("strong", {}, event.name),
    event.message ? ` — ${event.message}` : "",
  );
}

// The detail pane. `actions` builds the action toolbar for an instance key.
export class DetailPane {
  constructor({ root, store, actions }) {
    this.root = root;
    this.store = store;
    this.actions = actions;
    this.key = null;
    this.logAbort = null;
    this.logStreaming = false;
    store.addEventListener("change", (event) => {
      if (event.detail.key === this.key) this.renderStatus();
    });
    store.addEventListener("reset", () => {
      if (this.key) this.renderStatus();
    });
  }

  show(key) {
    this.stopLogs();
    this.key = key;
    const name = key.split("/")[1];
    this.statusArea = el("div", { class: "detail-status" });
    this.eventList = el("ol", { class: "events", "aria-label": `Recent events of ${name}` });
    this.logView = el("pre", { class: "logs", tabindex: "0", "aria-label": `Logs of ${name}` });
    this.logState = el("span", { class: "log-state muted", role: "status" });
    this.followBox = el("input", { type: "checkbox", id: "log-follow", checked: true });
    // Unchecked, the view shows the output so far without following it.
    this.followBox.addEventListener("change", () => this.startLogs());
    clear(this.root).append(
      el("header", { class: "detail-header" }, el("h2", { id: "detail-title" }, name), el("span", { class: "muted" }, namespaceOf(key))),
      this.actions.toolbar(key),
      this.statusArea,
      section("Recent events", this.eventList),
      section(
        "Logs",
        el("div", { class: "log-controls" }, el("label", { for: "log-follow" }, this.followBox, " Follow"), this.logState),
        this.logView,
      ),
    );
    this.renderStatus();
    this.loadEvents();
    this.startLogs();
  }

  renderStatus() {
    const instance = this.store.items.get(this.key);
    if (!instance) {
      clear(this.statusArea).append(el("p", { class: "muted" }, "This instance no longer exists."));
      this.actions.update(this.key, null);
      return;
    }
    clear(this.statusArea).append(
      summary(instance),
      section("Conditions", conditionsTable(instance)),
      section("Spec", el("pre", { class: "spec" }, toYaml({ metadata: { labels: instance.metadata.labels || {} }, spec: instance.spec }))),
    );
    this.actions.update(this.key, instance);
    const phase = instance.status?.phase;
    if (this.followBox.checked && !this.logStreaming && phase === "Running") this.startLogs();
  }

  async loadEvents() {
    const key = this.key;
    try {
      const list = await request(instancePath(key, "/events"), { query: { namespace: namespaceOf(key), limit: MAX_EVENTS } });
      if (key !== this.key) return;
      clear(this.eventList).append(...list.items.reverse().map(eventItem));
    } catch (error) {
      if (key === this.key) this.eventList.replaceChildren(el("li", { class: "error" }, error.message));
    }
  }

  // Add a live event from the stream when it belongs to the shown instance.
  addEvent(event) {
    if (!this.key || event.instance !== this.key) return;
    this.eventList.prepend(eventItem(event));
    while (this.eventList.children.length > MAX_EVENTS) this.eventList.lastElementChild.remove();
  }

  stopLogs() {
    if (this.logAbort) this.logAbort.abort();
    this.logAbort = null;
    this.logStreaming = false;
  }

  async startLogs() {
    this.stopLogs();
    const key = this.key;
    const abort = new AbortController();
    this.logAbort = abort;
    this.logStreaming = true;
    this.logView.textContent = "";
    this.logState.textContent = "Connecting…";
    try {
      const response = await openStream(instancePath(key, "/logs"), {
        query: { namespace: namespaceOf(key), follow: this.followBox.checked ? "true" : "false", tail: LOG_TAIL_LINES },
        signal: abort.signal,
      });
      this.logState.textContent = this.followBox.checked ? "Following" : "";
      const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        this.appendLog(value);
      }
      if (this.logAbort === abort) this.logState.textContent = "Log stream ended (the sandbox stopped).";
    } catch (error) {
      if (abort.signal.aborted) return;
      const message = error instanceof ApiError ? error.message : `log stream failed: ${error.message}`;
      this.logState.textContent = message;
    } finally {
      if (this.logAbort === abort) this.logStreaming = false;
    }
  }

  appendLog(text) {
    const view = this.logView;
    const atBottom = view.scrollTop + view.clientHeight >= view.scrollHeight - 4;
    let content = view.textContent + text;
    if (content.length > MAX_LOG_CHARS) content = content.slice(content.length - MAX_LOG_CHARS);
    view.textContent = content;
    if (atBottom) view.scrollTop = view.scrollHeight;
  }
}
