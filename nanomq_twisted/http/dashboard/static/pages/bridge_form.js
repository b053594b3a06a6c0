// The Bridges page's "New bridge" form: what a NanoMQ user writes in a
// bridges.mqtt.<name> block (server, protocol version, client id,
// keepalive, clean start, credentials, forwards, subscriptions), sent as
// POST /bridges {"<name>": {...}} with the same keys.  A refusal names the
// setting (its `key`, e.g. "forwards[0].remote_topic"); the message is
// shown under that field, which is marked invalid and takes the focus.

import { post } from "../api.js";
import { field, h } from "../util.js";

const QOS = [0, 1, 2];

function qosSelect(id) {
  return h("select", { id }, QOS.map((n) => h("option", { value: String(n) }, String(n))));
}

/** An error line under a control, wired to it with aria-describedby. */
function errorFor(control) {
  const error = h("p", { class: "error", id: `${control.id}-error`, role: "alert" });
  const described = control.getAttribute("aria-describedby");
  control.setAttribute("aria-describedby", described ? `${described} ${error.id}` : error.id);
  return error;
}

/** A labelled control and its error line: [wrapper, control]. */
function checked(label, control, hint) {
  const [wrapper] = field(label, control, hint);
  const error = errorFor(control);
  wrapper.append(error);
  return [wrapper, control];
}

/**
 * Repeatable rows of topic pairs (forwards or subscriptions): `first` and
 * `second` are the two topic keys in the order shown.
 */
function topicRows(kind, title, first, second, firstLabel, secondLabel) {
  const rows = [];
  const body = h("div", { id: `bridge-new-${kind}` });
  const add = h("button", { type: "button", class: "quiet", id: `bridge-new-${kind}-add` },
    `Add a ${title.toLowerCase()}`);
  const fieldset = h("fieldset", { class: "panel" }, h("legend", {}, `${title}s`), body, add);

  function addRow() {
    const n = rows.length;
    const prefix = `bridge-new-${kind}-${n}`;
    const [aField, a] = checked(`${title} ${n + 1}: ${firstLabel}`, h("input", { id: `${prefix}-a` }));
    const [bField, b] = checked(`${title} ${n + 1}: ${secondLabel}`, h("input", { id: `${prefix}-b` }));
    const [qField, q] = checked(`${title} ${n + 1}: QoS`, qosSelect(`${prefix}-qos`));
    rows.push({ a, b, q });
    body.append(h("div", { class: "toolbar" }, aField, bField, qField));
    return a;
  }
  add.addEventListener("click", () => addRow().focus());
  addRow();

  return {
    element: fieldset,
    add,
    /** The entries with both topics given (empty rows are left out). */
    values() {
      return rows.filter((r) => r.a.value || r.b.value).map((r) => ({
        [first]: r.a.value, [second]: r.b.value, qos: Number(r.q.value),
      }));
    },
    /** The control a key below this list names ("[0].qos", "[1]", ""). */
    control(rest, index) {
      const row = rows[index];
      if (!row) return add;
      if (rest === `.${second}`) return row.b;
      if (rest === ".qos") return row.q;
      return row.a;
    },
    /** The row index of the n-th entry `values()` sent. */
    sentIndex(n) {
      let seen = -1;
      for (let i = 0; i < rows.length; i += 1) {
        if (rows[i].a.value || rows[i].b.value) seen += 1;
        if (seen === n) return i;
      }
      return rows.length;
    },
  };
}

/** The form; `created(name)` is called once the server took the bridge. */
export function bridgeForm(created) {
  const [nameField, name] = checked("Name", h("input", { id: "bridge-new-name", required: true }),
    "Letters, digits, _ and -: the bridges.mqtt.<name> it would have in the file.");
  const [serverField, server] = checked("Server", h("input", {
    id: "bridge-new-server", required: true, placeholder: "mqtt-tcp://127.0.0.1:1883",
  }), "mqtt-tcp://host:port, tls+mqtt-tcp://host:port or mqtt-quic://host:port");
  const [protoField, proto] = checked("MQTT version", h("select", { id: "bridge-new-proto" },
    h("option", { value: "4" }, "3.1.1 (4)"), h("option", { value: "5" }, "5.0 (5)"),
    h("option", { value: "3" }, "3.1 (3)")));
  const [clientField, clientid] = checked("Client id", h("input", { id: "bridge-new-clientid" }),
    "Empty: one is generated.");
  const [keepField, keepalive] = checked("Keepalive (seconds)", h("input", {
    id: "bridge-new-keepalive", type: "number", min: "0", value: "60",
  }));
  const clean = h("input", { id: "bridge-new-clean", type: "checkbox", checked: true });
  const cleanField = h("div", { class: "check" }, clean, h("label", { for: clean.id }, "Clean start"));
  const cleanError = errorFor(clean);
  const [userField, username] = checked("User name", h("input", { id: "bridge-new-username", autocomplete: "off" }));
  const [passField, password] = checked("Password", h("input", {
    id: "bridge-new-password", type: "password", autocomplete: "new-password",
  }));
  const forwards = topicRows("forwards", "Forward", "local_topic", "remote_topic", "local topic", "remote topic");
  const subscription = topicRows("subscription", "Subscription", "remote_topic", "local_topic",
    "remote topic", "local topic");
  const enable = h("input", { id: "bridge-new-enable", type: "checkbox", checked: true });
  const enableField = h("div", { class: "check" }, enable, h("label", { for: enable.id }, "Start it now"));
  const submit = h("button", { type: "submit", id: "bridge-create" }, "Create bridge");
  const general = h("p", { class: "error", id: "bridge-new-error", role: "alert" });
  const form = h("form", { id: "bridge-form", "aria-labelledby": "bridge-form-title", novalidate: true },
    h("h2", { id: "bridge-form-title" }, "New bridge"),
    h("div", { class: "two" }, h("div", {}, nameField, serverField, protoField, clientField, keepField),
      h("div", {}, userField, passField, cleanField, cleanError, enableField)),
    forwards.element, subscription.element, h("div", { class: "toolbar" }, submit), general);

  const controls = {
    name, server, proto_ver: proto, clientid, keepalive, clean_start: clean, username, password,
    enable,
  };

  function clearErrors() {
    for (const invalid of form.querySelectorAll("[aria-invalid]")) invalid.removeAttribute("aria-invalid");
    for (const line of form.querySelectorAll("p.error")) line.textContent = "";
  }

  /** The control a refusal's key names, or null. */
  function controlOf(key) {
    if (!key) return null;
    if (controls[key]) return controls[key];
    const match = /^(forwards|subscription)(?:\[(\d+)\])?(.*)$/.exec(key);
    if (!match) return null;
    const list = match[1] === "forwards" ? forwards : subscription;
    if (match[2] === undefined) return list.add;
    return list.control(match[3], list.sentIndex(Number(match[2])));
  }

  function showError(body) {
    const message = body.message || `Refused (code ${body.code}).`;
    const control = controlOf(body.key);
    const line = control && document.getElementById(`${control.id}-error`);
    if (!line) {
      general.textContent = body.key ? `${body.key}: ${message}` : message;
      submit.focus();
      return;
    }
    line.textContent = message;
    control.setAttribute("aria-invalid", "true");
    control.focus();
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearErrors();
    const node = {
      server: server.value.trim(),
      proto_ver: Number(proto.value),
      keepalive: Number(keepalive.value || 60),
      clean_start: clean.checked,
      enable: enable.checked,
      forwards: forwards.values(),
      subscription: subscription.values(),
    };
    if (clientid.value) node.clientid = clientid.value;
    if (username.value) node.username = username.value;
    if (password.value) node.password = password.value;
    const bridgeName = name.value.trim();
    try {
      await post("/bridges", { [bridgeName]: node });
    } catch (error) {
      showError(error.body || {});
      return;
    }
    form.reset();
    created(bridgeName);
  });
  return form;
}
