// Rules: the rule engine's rules (/rules), created, edited, switched on
// and off and deleted here.  A refused rule's reason is shown under the
// field it is about: the SQL parser's message (with its position) under
// the SQL, a bad action parameter (named by the X-NanoMQ-Error-Param
// header, api.js) under that parameter's field, anything else under the
// form.

import { del, get, post, put } from "../api.js";
import { announce, field, h, section, table } from "../util.js";

export const title = "Rules";

const CODES = {
  107: "Something required is missing (the SQL, or an action parameter).",
  108: "The SQL or a parameter is not valid.",
  109: "The request was not a JSON object.",
  111: "That action is not supported.",
};

async function localAddress() {
  const { data } = await get("/listeners");
  const tcp = data.find((l) => l.type === "tcp" && l.running);
  return tcp ? `mqtt-tcp://127.0.0.1:${tcp.port}` : "mqtt-tcp://127.0.0.1:1883";
}

export function render(main) {
  const editing = { id: null };
  const [sqlField, sql] = field("SQL", h("textarea", { id: "rule-sql", rows: 3, spellcheck: "false" }),
    'For example: SELECT payload, topic FROM "sensors/#" WHERE qos > 0');
  const sqlError = h("p", { class: "error", id: "rule-sql-error", role: "alert" });
  sql.setAttribute("aria-describedby", `${sql.getAttribute("aria-describedby")} rule-sql-error`);
  const [kindField, kind] = field("Action", h("select", { id: "rule-action" },
    h("option", { value: "repub" }, "Republish (repub)"),
    h("option", { value: "sqlite" }, "SQLite table (sqlite)")));
  const [topicField, topic] = field("Republish to topic", h("input", { id: "rule-topic" }));
  const [addressField, address] = field("Broker address", h("input", { id: "rule-address" }),
    "This broker's own address republishes in-process.");
  const [tableField, tableName] = field("Table", h("input", { id: "rule-table" }));
  // Each field that a refusal can name has its error line under it.
  const lines = new Map([[sql, sqlError]]);
  for (const [wrapper, control] of [[kindField, kind], [topicField, topic], [addressField, address], [tableField, tableName]]) {
    const line = h("p", { class: "error", id: `${control.id}-error`, role: "alert" });
    control.setAttribute("aria-describedby", `${control.getAttribute("aria-describedby") || ""} ${line.id}`.trim());
    wrapper.append(line);
    lines.set(control, line);
  }
  const formError = h("p", { class: "error", id: "rule-error", role: "alert" });
  const byParam = { rawsql: sql, name: kind, topic, address, table: tableName };
  const heading = h("h2", { id: "rule-form-title" }, "New rule");
  const submit = h("button", { type: "submit", id: "rule-save" }, "Create rule");
  const cancel = h("button", { type: "button", class: "quiet", hidden: true, onclick: () => reset() }, "Cancel edit");
  const form = h("form", { id: "rule-form", "aria-labelledby": "rule-form-title" },
    heading, sqlField, sqlError, kindField, topicField, addressField, tableField,
    h("div", { class: "toolbar" }, submit, cancel), formError);

  function clearErrors() {
    for (const [control, line] of lines) {
      line.textContent = "";
      control.removeAttribute("aria-invalid");
    }
    formError.textContent = "";
  }

  /** Show a refusal under the field it names (else under the form). */
  function showError(error) {
    const text = error.body.message || error.reason || CODES[error.body.code] || error.message;
    const control = byParam[error.param] || null;
    if (!control || control.closest("[hidden]")) {
      formError.textContent = error.param ? `${error.param}: ${text}` : text;
      submit.focus();
      return;
    }
    control.setAttribute("aria-invalid", "true");
    lines.get(control).textContent = text;
    control.focus();
  }
  const list = h("div", { id: "rule-list" });
  main.append(h("h1", {}, "Rules"), list, form);

  function showKind() {
    const repub = kind.value === "repub";
    topicField.hidden = !repub;
    addressField.hidden = !repub;
    tableField.hidden = repub;
  }
  kind.addEventListener("change", showKind);

  function reset() {
    editing.id = null;
    heading.textContent = "New rule";
    submit.textContent = "Create rule";
    cancel.hidden = true;
    kind.disabled = false;
    sql.value = "";
    clearErrors();
  }

  function edit(rule) {
    editing.id = rule.id;
    heading.textContent = `Edit rule ${rule.id}`;
    submit.textContent = "Save rule";
    cancel.hidden = false;
    kind.value = rule.name;
    kind.disabled = true;
    showKind();
    sql.value = rule.rawsql;
    sql.focus();
  }

  async function refresh() {
    const { data } = await get("/rules");
    list.replaceChildren(table(`${data.length} rule${data.length === 1 ? "" : "s"}`, [
      { label: "Id", cell: (r) => `rule:${r.id}` },
      { label: "Action", cell: (r) => r.name },
      { label: "SQL", cell: (r) => h("code", {}, r.rawsql) },
      { label: "State", cell: (r) => (r.enabled ? "enabled" : "disabled") },
      {
        label: "Actions",
        cell: (r) => [
          h("button", { type: "button", class: "quiet", "aria-label": `Edit rule ${r.id}`, onclick: () => edit(r) }, "Edit"),
          " ",
          h("button", {
            type: "button", class: "quiet", "aria-label": `${r.enabled ? "Disable" : "Enable"} rule ${r.id}`,
            onclick: () => change(r.id, { enabled: !r.enabled }, r.enabled ? "disabled" : "enabled"),
          }, r.enabled ? "Disable" : "Enable"),
          " ",
          h("button", { type: "button", class: "danger", "aria-label": `Delete rule ${r.id}`, onclick: () => remove(r.id) }, "Delete"),
        ],
      },
    ], data, (r) => ({ dataset: { ruleId: String(r.id), sql: r.rawsql } })));
  }

  async function change(id, body, what) {
    try {
      await put(`/rules/rule:${id}`, body);
      announce(`Rule ${id} ${what}.`);
    } catch (error) {
      announce(`Rule ${id} not changed: ${error.body.message || CODES[error.body.code] || error.message}`, true);
    }
    await refresh();
  }

  async function remove(id) {
    try {
      await del(`/rules/rule:${id}`);
      announce(`Rule ${id} deleted.`);
    } catch (error) {
      announce(`Rule ${id} not deleted: ${error.message}`, true);
    }
    if (editing.id === id) reset();
    await refresh();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const params = kind.value === "repub"
      ? { topic: topic.value, address: address.value }
      : { table: tableName.value };
    try {
      if (editing.id === null) {
        const body = await post("/rules", { rawsql: sql.value, actions: [{ name: kind.value, params }] });
        announce(`Rule ${body.data.id} created.`);
      } else {
        await put(`/rules/rule:${editing.id}`, { rawsql: sql.value });
        announce(`Rule ${editing.id} saved.`);
      }
      reset();
      await refresh();
    } catch (error) {
      showError(error);
    }
  });

  showKind();
  localAddress().then((value) => { address.value = value; }).catch(() => {});
  refresh().catch(() => {});
  return null;
}
