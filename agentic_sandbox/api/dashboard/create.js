// The Create dialog: a form that builds an Instance manifest and applies it through the API.
//
// Applying sends the manifest with dryRun=All first, so the server validates it and plans it
// without writing anything, and only then creates it. Each field error of the server's problem
// document is shown next to the control its path names. Errors that match no control are
// listed at the top of the form.

import { ApiError, request } from "./api.js";
import { clear, el, toYaml } from "./dom.js";

const API_VERSION = "sandbox.agentic.dev/v1alpha1";
const RUN_STRATEGIES = ["Always", "RerunOnFailure", "Once", "Manual", "Halted"];
const NETWORKS = ["bridge", "none", "host"];
const CUSTOM_IMAGE = "__custom__";

let fieldSequence = 0;

// One labelled control with its error line; `control.dataset.field` is the manifest path.
function field(label, control, { help, field: path } = {}) {
  fieldSequence += 1;
  control.id ||= `create-field-${fieldSequence}`;
  const error = el("p", { class: "field-error", id: `${control.id}-error`, "aria-live": "polite" });
  const described = [error.id];
  let helpText = null;
  if (help) {
    helpText = el("p", { class: "help", id: `${control.id}-help` }, help);
    described.unshift(helpText.id);
  }
  control.setAttribute("aria-describedby", described.join(" "));
  if (path) control.dataset.field = path;
  return el("div", { class: "field" }, el("label", { for: control.id }, label), control, helpText, error);
}

function errorLineOf(control) {
  return document.getElementById(`${control.id}-error`);
}

function parseLabels(text) {
  const labels = {};
  for (const term of text.split(",")) {
    if (!term.trim()) continue;
    const [key, ...rest] = term.split("=");
    labels[key.trim()] = rest.join("=").trim();
  }
  return labels;
}

export class CreateDialog {
  constructor({ dialog, onCreated }) {
    this.dialog = dialog;
    this.onCreated = onCreated;
  }

  async open() {
    this.build();
    this.dialog.showModal();
    this.name.focus();
    await this.loadChoices();
  }

  build() {
    this.runtime = el("select", { id: "create-runtime" }, el("option", { value: "docker" }, "Container"), el("option", { value: "libvirt" }, "VM"));
    this.name = el("input", { id: "create-name", autocomplete: "off", spellcheck: "false", required: true });
    this.image = el("select", { id: "create-image" }, el("option", { value: "" }, "Loading images…"));
    this.customImage = el("input", { id: "create-image-ref", autocomplete: "off", spellcheck: "false", placeholder: "registry/name:tag" });
    this.loadout = el("select", { id: "create-loadout" }, el("option", { value: "" }, "Loading loadouts…"));
    this.labels = el("input", { id: "create-labels", autocomplete: "off", placeholder: "app=demo,team=core" });
    this.network = el("input", { id: "create-network", list: "create-networks", value: "bridge", autocomplete: "off" });
    this.runStrategy = el("select", { id: "create-run-strategy" }, RUN_STRATEGIES.map((value) => el("option", { value }, value)));
    this.envRows = el("div", { class: "rows", id: "create-env-rows" });
    this.mountRows = el("div", { class: "rows", id: "create-mount-rows" });
    this.formErrors = el("ul", { class: "form-errors", role: "alert" });
    this.yaml = el("pre", { class: "yaml", id: "create-yaml", hidden: true, tabindex: "0", "aria-label": "Manifest as YAML" });
    this.yamlToggle = el("button", { type: "button", "aria-pressed": "false", "aria-controls": "create-yaml" }, "View as YAML");
    this.status = el("p", { class: "create-status", role: "status" });
    this.submit = el("button", { type: "submit", class: "primary" }, "Create");

    this.imageField = el("div", { class: "image-choice" }, field("Image", this.image, { field: "spec.image" }), field("Image reference", this.customImage, { help: "Used when the image is “Other”.", field: "spec.image-custom" }));
    this.loadoutField = el("div", { class: "loadout-choice", hidden: true }, field("Loadout", this.loadout, { field: "spec.loadout" }));

    this.form = el(
      "form",
      { novalidate: true, class: "create-form" },
      el("h2", { id: "create-title" }, "Create an instance"),
      this.formErrors,
      el("div", { class: "grid" },
        field("Runtime", this.runtime, { field: "spec.runtime" }),
        field("Name", this.name, { help: "Lowercase letters, digits and '-'.", field: "metadata.name" }),
        this.imageField,
        this.loadoutField,
        field("Network", this.network, { help: "bridge, none, host or a network name.", field: "spec.network" }),
        field("Run strategy", this.runStrategy, { field: "spec.runStrategy" }),
        field("Labels", this.labels, { help: "key=value pairs, comma-separated.", field: "metadata.labels" }),
      ),
      el("fieldset", {}, el("legend", {}, "Environment"), this.envRows, el("button", { type: "button", onclick: () => this.addEnvRow() }, "Add variable")),
      el("fieldset", {}, el("legend", {}, "Bind mounts"), el("p", { class: "help" }, "host:container, or host:container:ro for read-only. Host paths must be inside the server's allowed mount roots."), this.mountRows, el("button", { type: "button", onclick: () => this.addMountRow() }, "Add mount")),
      el("datalist", { id: "create-networks" }, NETWORKS.map((value) => el("option", { value }))),
      el("div", { class: "yaml-toggle" }, this.yamlToggle),
      this.yaml,
      this.status,
      el("div", { class: "dialog-buttons" }, el("button", { type: "button", onclick: () => this.dialog.close() }, "Cancel"), this.submit),
    );
    this.runtime.addEventListener("change", () => this.runtimeChanged());
    this.image.addEventListener("change", () => this.imageChanged());
    this.yamlToggle.addEventListener("click", () => this.toggleYaml());
    this.form.addEventListener("input", () => this.refreshYaml());
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.apply();
    });
    clear(this.dialog).append(this.form);
    this.imageChanged();
  }

  async loadChoices() {
    const [images, loadouts] = await Promise.allSettled([request("/api/v1/container-images"), request("/api/v1/loadouts")]);
    clear(this.image);
    if (images.status === "fulfilled") {
      for (const image of images.value.images) {
        const note = image.present === false ? " (not on this host)" : "";
        this.image.append(el("option", { value: image.ref, selected: image.default }, `${image.label} — ${image.ref}${note}`));
      }
    }
    this.image.append(el("option", { value: CUSTOM_IMAGE }, "Other…"));
    clear(this.loadout);
    if (loadouts.status === "fulfilled") {
      for (const loadout of loadouts.value.items) {
        const text = loadout.error ? `${loadout.name} (invalid: ${loadout.error})` : `${loadout.name} — ${loadout.cpus} CPU, ${loadout.memory}`;
        this.loadout.append(el("option", { value: loadout.name, disabled: Boolean(loadout.error) }, text));
      }
    }
    if (this.loadout.options.length === 0) this.loadout.append(el("option", { value: "" }, "No loadouts"));
    this.imageChanged();
  }

  runtimeChanged() {
    const vm = this.runtime.value === "libvirt";
    this.imageField.hidden = vm;
    this.loadoutField.hidden = !vm;
    this.refreshYaml();
  }

  imageChanged() {
    const custom = this.image.value === CUSTOM_IMAGE || this.image.options.length <= 1;
    this.customImage.closest(".field").hidden = !custom;
    this.refreshYaml();
  }

  addEnvRow(name = "", value = "") {
    const index = this.envRows.children.length + 1;
    const nameInput = el("input", { class: "env-name", value: name, autocomplete: "off", spellcheck: "false", "aria-label": `Variable ${index} name` });
    const valueInput = el("input", { class: "env-value", value, autocomplete: "off", spellcheck: "false", "aria-label": `Variable ${index} value` });
    const row = el("div", { class: "row env-row" }, field(`Name`, nameInput), field(`Value`, valueInput), el("button", { type: "button", class: "remove", "aria-label": `Remove variable ${index}`, onclick: () => { row.remove(); this.refreshYaml(); } }, "Remove"));
    this.envRows.append(row);
    nameInput.focus();
  }

  addMountRow(text = "") {
    const index = this.mountRows.children.length + 1;
    const input = el("input", { class: "mount", value: text, autocomplete: "off", spellcheck: "false", placeholder: "/srv/data:/data" });
    const row = el("div", { class: "row mount-row" }, field(`Mount ${index}`, input), el("button", { type: "button", class: "remove", "aria-label": `Remove mount ${index}`, onclick: () => { row.remove(); this.refreshYaml(); } }, "Remove"));
    this.mountRows.append(row);
    input.focus();
  }

  // Build the manifest from the form. Also return the controls of its env and mount entries,
  // so that an error about spec.env.NAME or spec.mounts[i] finds its row.
  manifest() {
    const env = {};
    const envControls = new Map();
    for (const row of this.envRows.querySelectorAll(".env-row")) {
      const name = row.querySelector(".env-name");
      const value = row.querySelector(".env-value");
      if (!name.value && !value.value) continue;
      env[name.value] = value.value;
      envControls.set(name.value, name);
    }

    const mounts = [];
    const mountControls = [];
    for (const input of this.mountRows.querySelectorAll("input.mount")) {
      if (!input.value.trim()) continue;
      mounts.push(input.value.trim());
      mountControls.push(input);
    }

    const spec = { runtime: this.runtime.value };
    if (this.runtime.value === "libvirt") {
      if (this.loadout.value) spec.loadout = this.loadout.value;
    } else {
      const image = this.image.value === CUSTOM_IMAGE || !this.image.value ? this.customImage.value.trim() : this.image.value;
      if (image) spec.image = image;
    }
    if (Object.keys(env).length) spec.env = env;
    if (mounts.length) spec.mounts = mounts;
    if (this.network.value.trim()) spec.network = this.network.value.trim();
    spec.runStrategy = this.runStrategy.value;

    const metadata = { name: this.name.value.trim() };
    const labels = parseLabels(this.labels.value);
    if (Object.keys(labels).length) metadata.labels = labels;
    const body = { apiVersion: API_VERSION, kind: "Instance", metadata, spec };
    return { body, envControls, mountControls };
  }

  toggleYaml() {
    const show = this.yaml.hidden;
    this.yaml.hidden = !show;
    this.yamlToggle.setAttribute("aria-pressed", String(show));
    this.yamlToggle.textContent = show ? "Hide YAML" : "View as YAML";
    this.refreshYaml();
  }

  refreshYaml() {
    if (!this.yaml.hidden) this.yaml.textContent = toYaml(this.manifest().body) + "\n";
  }

  clearErrors() {
    clear(this.formErrors);
    for (const control of this.form.querySelectorAll("[aria-invalid]")) control.removeAttribute("aria-invalid");
    for (const line of this.form.querySelectorAll(".field-error")) line.textContent = "";
  }

  // Find the control a problem's field path names, such as spec.env['A'] or spec.mounts[0].path.
  controlFor(path, { envControls, mountControls }) {
    const env = /^spec\.env(?:\.([^.[\]]+)|\['(.*)'\]|\["(.*)"\])/.exec(path);
    if (env) return envControls.get(env[1] ?? env[2] ?? env[3]) || null;
    const mount = /^spec\.mounts\[(\d+)\]/.exec(path);
    if (mount) return mountControls[Number(mount[1])] || null;
    if (path === "spec.image" && !this.customImage.closest(".field").hidden) return this.customImage;
    const prefix = path.startsWith("metadata.labels") ? "metadata.labels" : path;
    return this.form.querySelector(`[data-field="${CSS.escape(prefix)}"]`);
  }

  showProblem(error, controls) {
    let errors = error.fieldErrors;
    if (error.code === "AlreadyExists") errors = [{ field: "metadata.name", message: error.message }];
    const unplaced = [];
    for (const item of errors) {
      const control = item.field ? this.controlFor(item.field, controls) : null;
      if (!control) {
        unplaced.push(item.field ? `${item.field}: ${item.message}` : item.message);
        continue;
      }
      control.setAttribute("aria-invalid", "true");
      const line = errorLineOf(control);
      line.textContent = line.textContent ? `${line.textContent} ${item.message}` : item.message;
    }
    if (errors.length === 0) unplaced.push(error.message);
    this.formErrors.append(...unplaced.map((text) => el("li", {}, text)));
    const first = this.form.querySelector("[aria-invalid='true']");
    if (first) first.focus();
  }

  async apply() {
    this.clearErrors();
    const controls = this.manifest();
    this.submit.disabled = true;
    try {
      this.status.textContent = "Checking with a dry run…";
      const dryRun = await request("/api/v1/instances", { method: "POST", query: { dryRun: "All" }, body: controls.body });
      const planned = (dryRun.plannedOperations || []).map((operation) => operation.kind).join(", ");
      this.status.textContent = `Dry run passed${planned ? ` (plan: ${planned})` : ""}; creating…`;
      const created = await request("/api/v1/instances", { method: "POST", body: controls.body });
      this.dialog.close();
      this.onCreated(created);
    } catch (error) {
      this.status.textContent = "";
      if (error instanceof ApiError) this.showProblem(error, controls);
      else this.formErrors.append(el("li", {}, `request failed: ${error.message}`));
    } finally {
      this.submit.disabled = false;
    }
  }
}
