// Lifecycle actions: Start, Stop, Force off, Restart and Delete, with their progress.
//
// Each action is one API request that changes desired state; the controller carries it out.
// Progress therefore comes from the instance as the event stream makes the store re-read it:
// an action is done when the instance reaches the phase the action leads to.

import { ApiError, instancePath, namespaceOf, request } from "./api.js";
import { clear, el } from "./dom.js";

const STOPPED_PHASES = ["Stopped", "Succeeded", "Failed"];

// Each verb: the request to send and when its result shows in the instance.
const VERBS = {
  start: {
    label: "Start",
    path: "/start",
    waiting: "Starting",
    done: (instance) => instance?.status?.phase === "Running",
  },
  stop: {
    label: "Stop",
    path: "/stop",
    title: "Stop gracefully; the sandbox and its data stay",
    waiting: "Stopping",
    done: (instance) => STOPPED_PHASES.includes(instance?.status?.phase),
  },
  forceOff: {
    label: "Force off",
    path: "/stop",
    query: { force: "true" },
    title: "Stop with no grace period; the sandbox stays",
    waiting: "Forcing off",
    done: (instance) => STOPPED_PHASES.includes(instance?.status?.phase),
  },
  restart: {
    label: "Restart",
    path: "/restart",
    waiting: "Restarting",
    // Done once the instance runs again with a later start time than before the request.
    done: (instance, before) =>
      instance?.status?.phase === "Running" && instance.status.startedAt !== before?.status?.startedAt,
  },
};

export class Actions {
  constructor({ store, deleteDialog }) {
    this.store = store;
    this.deleteDialog = deleteDialog;
    this.pending = null;
    this.progress = null;
    this.buttons = [];
  }

  toolbar(key) {
    this.key = key;
    this.progress = el("p", { class: "action-progress", role: "status", "aria-live": "polite" });
    this.buttons = Object.entries(VERBS).map(([verb, action]) =>
      el("button", { type: "button", title: action.title, dataset: { action: verb }, onclick: () => this.run(key, verb) }, action.label),
    );
    const remove = el("button", { type: "button", class: "danger", dataset: { action: "delete" }, onclick: () => this.confirmDelete(key) }, "Delete");
    this.buttons.push(remove);
    if (this.pending && this.pending.key !== key) this.pending = null;
    return el("div", { class: "actions" }, el("div", { class: "toolbar", role: "toolbar", "aria-label": "Actions" }, this.buttons), this.progress);
  }

  setBusy(busy) {
    for (const button of this.buttons) button.disabled = busy;
  }

  say(text, { error = false } = {}) {
    if (!this.progress) return;
    this.progress.textContent = text;
    this.progress.classList.toggle("error", error);
  }

  async run(key, verb) {
    const action = VERBS[verb];
    const before = this.store.items.get(key);
    this.setBusy(true);
    this.say(`${action.label}: sending the request…`);
    try {
      await request(instancePath(key, action.path), {
        method: "POST",
        query: { namespace: namespaceOf(key), ...(action.query || {}) },
      });
    } catch (error) {
      this.say(`${action.label} failed: ${error.message}`, { error: true });
      this.setBusy(false);
      return;
    }
    this.setBusy(false);
    this.pending = { key, verb, before };
    this.say(`${action.waiting}… phase ${before?.status?.phase || "Unknown"}`);
    this.store.refresh(key).catch(() => {});
  }

  // Called by the detail pane whenever its instance changes (null when it is gone).
  update(key, instance) {
    const pending = this.pending;
    if (!pending || pending.key !== key) return;
    if (pending.verb === "delete") {
      if (instance) this.say(`Deleting… phase ${instance.status?.phase || "Unknown"}`);
      else {
        this.say("Deleted.");
        this.pending = null;
      }
      return;
    }
    const action = VERBS[pending.verb];
    const phase = instance?.status?.phase || "Unknown";
    if (action.done(instance, pending.before)) {
      this.say(`${action.label} done: phase ${phase}.`);
      this.pending = null;
    } else {
      this.say(`${action.waiting}… phase ${phase}`);
    }
  }

  confirmDelete(key) {
    const name = key.split("/")[1];
    const dialog = this.deleteDialog;
    const input = el("input", { id: "delete-confirm", autocomplete: "off", spellcheck: "false", "aria-describedby": "delete-error" });
    const error = el("p", { id: "delete-error", class: "field-error", "aria-live": "polite" });
    const submit = el("button", { type: "submit", class: "danger", disabled: true }, "Delete");
    input.addEventListener("input", () => (submit.disabled = input.value !== name));
    const form = el(
      "form",
      { method: "dialog", novalidate: true },
      el("h2", { id: "delete-title" }, `Delete ${name}?`),
      el("p", {}, "The controller removes its sandbox (container or VM) and then the record. This cannot be undone; to keep the sandbox, use Stop."),
      el("label", { for: "delete-confirm" }, "Type the name ", el("strong", {}, name), " to confirm"),
      input,
      error,
      el("div", { class: "dialog-buttons" }, el("button", { type: "button", onclick: () => dialog.close() }, "Cancel"), submit),
    );
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      if (input.value !== name) return;
      submit.disabled = true;
      try {
        await request(instancePath(key), { method: "DELETE", query: { namespace: namespaceOf(key) } });
      } catch (failure) {
        error.textContent = failure instanceof ApiError ? failure.message : String(failure);
        submit.disabled = false;
        return;
      }
      dialog.close();
      this.pending = { key, verb: "delete" };
      this.say("Delete requested…");
      this.store.refresh(key).catch(() => {});
    });
    clear(dialog).append(form);
    dialog.showModal();
    input.focus();
  }
}
