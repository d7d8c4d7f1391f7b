// The dashboard's entry module: sign-in, the two views, and the event stream that keeps them live.
//
// Start-up order matters for not missing changes: the newest event id is read first, then the
// instances are listed, then the stream follows from that id. An event that lands between the
// two reads is replayed by the stream, and the instance it names is read again.

import { ApiError, forgetToken, onUnauthorized, request, storedToken, storeToken } from "./api.js";
import { Actions } from "./actions.js";
import { CreateDialog } from "./create.js";
import { DetailPane } from "./detail.js";
import { refreshTimes } from "./dom.js";
import { FleetView } from "./fleet.js";
import { InstanceStore, InstanceTable, PHASES, parseLabelFilter } from "./instances.js";
import { EventStream } from "./sse.js";

// Events about an instance's state; each makes the store read that instance again.
const INSTANCE_EVENT_PREFIXES = ["instance.", "container.", "vm.", "agent."];
const TIME_REFRESH_MS = 15000;
const CONNECTION_TEXT = { connecting: "Connecting", live: "Live", reconnecting: "Reconnecting…", stopped: "Disconnected" };

const $ = (selector) => document.querySelector(selector);

class Dashboard {
  constructor() {
    this.store = new InstanceStore();
    this.stream = null;
    this.actions = new Actions({ store: this.store, deleteDialog: $("#delete-dialog") });
    this.detail = new DetailPane({ root: $("#detail"), store: this.store, actions: this.actions });
    this.table = new InstanceTable({
      store: this.store,
      body: $("#instances-body"),
      empty: $("#instances-empty"),
      count: $("#list-count"),
      onSelect: (key) => this.select(key),
    });
    this.fleet = new FleetView({ root: $("#view-fleet"), store: this.store });
    this.createDialog = new CreateDialog({
      dialog: $("#create-dialog"),
      onCreated: (created) => this.created(created),
    });
    this.bindControls();
  }

  bindControls() {
    const phase = $("#filter-phase");
    for (const value of PHASES) phase.append(new Option(value, value));
    for (const id of ["#filter-runtime", "#filter-phase", "#filter-labels"]) {
      $(id).addEventListener("input", () => this.applyFilter());
    }
    $("#filters").addEventListener("submit", (event) => event.preventDefault());
    for (const tab of document.querySelectorAll(".tab")) {
      tab.addEventListener("click", () => this.showView(tab.dataset.view));
    }
    $("#create-open").addEventListener("click", () => this.createDialog.open());
    $("#sign-out").addEventListener("click", () => this.signOut("Signed out."));
    $("#login-form").addEventListener("submit", (event) => {
      event.preventDefault();
      this.signIn($("#token-input").value.trim());
    });
    onUnauthorized(() => this.signOut("The server rejected the token; enter it again."));
    setInterval(() => refreshTimes(), TIME_REFRESH_MS);
  }

  applyFilter() {
    const error = $("#filter-labels-error");
    let labels = [];
    try {
      labels = parseLabelFilter($("#filter-labels").value);
      error.textContent = "";
      $("#filter-labels").removeAttribute("aria-invalid");
    } catch (failure) {
      error.textContent = failure.message;
      $("#filter-labels").setAttribute("aria-invalid", "true");
      return;
    }
    this.table.setFilter({ runtime: $("#filter-runtime").value, phase: $("#filter-phase").value, labels });
  }

  async signIn(token) {
    const error = $("#token-error");
    const input = $("#token-input");
    if (!token) {
      error.textContent = "Enter the API token.";
      input.setAttribute("aria-invalid", "true");
      return;
    }
    try {
      await request("/api/v1/events", { query: { limit: 1 }, token });
    } catch (failure) {
      const rejected = failure instanceof ApiError && failure.status === 401;
      error.textContent = rejected ? "The server rejected this token. Check the api-token file." : `Sign-in failed: ${failure.message}`;
      input.setAttribute("aria-invalid", "true");
      input.focus();
      return;
    }
    storeToken(token);
    input.value = "";
    error.textContent = "";
    input.removeAttribute("aria-invalid");
    await this.start();
  }

  signOut(message) {
    forgetToken();
    if (this.stream) this.stream.stop();
    this.stream = null;
    this.detail.stopLogs();
    for (const dialog of document.querySelectorAll("dialog[open]")) dialog.close();
    this.setSignedIn(false);
    $("#token-error").textContent = message;
    $("#token-input").focus();
  }

  setSignedIn(signedIn) {
    $("#login").hidden = signedIn;
    $(".tabs").hidden = !signedIn;
    $(".topbar-end").hidden = !signedIn;
    if (signedIn) this.showView("instances");
    else for (const view of document.querySelectorAll(".view")) view.hidden = true;
  }

  async start() {
    this.setSignedIn(true);
    this.setConnection("connecting");
    const newest = await request("/api/v1/events", { query: { limit: 1 } });
    const lastId = newest.items.length ? String(newest.items[newest.items.length - 1].id) : "0";
    await this.store.loadAll();
    this.stream = new EventStream({
      path: "/api/v1/events",
      lastEventId: lastId,
      onEvent: (event) => this.onEvent(event),
      onState: (state) => this.setConnection(state),
      // Resuming replays every event after the last id, but events older than the log keeps
      // are gone, so the list is read again once after each reconnect.
      onResume: () => this.store.loadAll().catch(() => {}),
    });
    this.stream.start();
  }

  setConnection(state) {
    const element = $("#connection");
    element.dataset.state = state;
    element.textContent = CONNECTION_TEXT[state] || state;
  }

  onEvent(event) {
    if (event.instance && INSTANCE_EVENT_PREFIXES.some((prefix) => event.name.startsWith(prefix))) {
      this.store.follow(event.instance);
    }
    this.detail.addEvent(event);
    this.fleet.addEvent(event);
  }

  select(key) {
    this.table.select(key);
    this.detail.show(key);
  }

  created(instance) {
    const key = `${instance.metadata.namespace}/${instance.metadata.name}`;
    this.showView("instances");
    this.store.refresh(key).then(() => this.select(key)).catch(() => {});
  }

  showView(name) {
    for (const tab of document.querySelectorAll(".tab")) tab.setAttribute("aria-pressed", String(tab.dataset.view === name));
    $("#view-instances").hidden = name !== "instances";
    $("#view-fleet").hidden = name !== "fleet";
    if (name === "fleet") this.fleet.show();
    else this.fleet.hide();
  }
}

const dashboard = new Dashboard();
const token = storedToken();
if (token) dashboard.start().catch(() => dashboard.signOut("Could not reach the server; sign in again."));
else dashboard.setSignedIn(false);
