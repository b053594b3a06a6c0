// Bridges: each bridge's state and counters (/bridge-status) and
// configuration (/bridges); switch one on or off (/bridges/switch), edit
// its connector (PUT /bridges/{name}, which reconnects), add and remove
// remote subscriptions (/bridges/sub, /bridges/unsub), create one
// (POST /bridges, bridge_form.js) and delete one after a confirmation
// (DELETE /bridges/{name}).  The list refreshes every few seconds, so a
// new bridge is seen connecting; not while the focus is in it.

import { del, get, post, put, seg } from "../api.js";
import { announce, field, h, section, table } from "../util.js";
import { bridgeForm } from "./bridge_form.js";

const REFRESH_MS = 3000;

export const title = "Bridges";

export function render(main) {
  const list = h("div", { id: "bridge-list" });
  const confirm = h("div", { id: "bridge-confirm" });
  const detail = h("div", { id: "bridge-detail" });
  const heading = h("h1", {}, "Bridges");
  const form = bridgeForm(async (name) => {
    announce(`Bridge ${name} created.`);
    await refresh();
  });
  main.append(heading, list, confirm, detail, form);

  function askDelete(name, opener) {
    const cancel = h("button", { type: "button", class: "quiet", id: "bridge-confirm-cancel" }, "Cancel");
    const yes = h("button", { type: "button", class: "danger", id: "bridge-confirm-delete" }, `Delete ${name}`);
    const box = h("div", {
      class: "panel", role: "alertdialog", "aria-labelledby": "bridge-confirm-title",
      "aria-describedby": "bridge-confirm-text",
    }, h("h2", { id: "bridge-confirm-title" }, `Delete bridge ${name}?`),
    h("p", { id: "bridge-confirm-text" }, "It disconnects and is removed; the messages it still "
      + "holds for the remote are dropped. A bridge from the configuration file stays deleted "
      + "after a restart (with sqlite on) until it is created again."),
    h("div", { class: "toolbar" }, yes, cancel));
    cancel.addEventListener("click", () => {
      confirm.replaceChildren();
      if (opener && opener.isConnected) opener.focus();
      else heading.focus();
    });
    yes.addEventListener("click", async () => {
      confirm.replaceChildren();
      if (detail.dataset.bridge === name) {
        detail.replaceChildren();
        delete detail.dataset.bridge;
      }
      await act(`Bridge ${name} deleted.`, () => del(`/bridges/${seg(name)}`));
      heading.focus();
    });
    confirm.replaceChildren(box);
    cancel.focus();
  }

  async function act(what, call) {
    try {
      await call();
      announce(what);
    } catch (error) {
      announce(`${what.replace(/\.$/, "")} failed: ${error.message}`, true);
    }
    await refresh();
  }

  function showDetail(node) {
    const name = node.name;
    const [connectorField, connector] = field("Connector (JSON)", h("textarea", {
      id: "bridge-connector", rows: 10, spellcheck: "false",
    }), "Saving reconnects the bridge with these settings.");
    connector.value = JSON.stringify(node.connector, null, 2);
    const connectorError = h("p", { class: "error", role: "alert" });
    const editForm = h("form", { "aria-label": `Connector of ${name}` }, connectorField, connectorError,
      h("button", { type: "submit" }, "Save and reconnect"));
    editForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      connectorError.textContent = "";
      let parsed;
      try {
        parsed = JSON.parse(connector.value);
      } catch (error) {
        connectorError.textContent = `Not JSON: ${error.message}`;
        return;
      }
      try {
        await put(`/bridges/${seg(name)}`, { [name]: { ...parsed, forwards: node.forwards, subscription: node.subscription } });
        announce(`Bridge ${name} reconfigured.`);
      } catch (error) {
        connectorError.textContent = `Refused (code ${error.body.code}): check the fields.`;
      }
    });
    const [remoteField, remote] = field("Remote topic", h("input", { id: "bridge-sub-remote" }));
    const [localField, local] = field("Local topic", h("input", { id: "bridge-sub-local" }));
    const [qosField, qos] = field("QoS", h("select", {}, [0, 1, 2].map((n) => h("option", { value: String(n) }, String(n)))));
    const subForm = h("form", { class: "inline", "aria-label": `Add a subscription to ${name}` },
      remoteField, localField, qosField, h("button", { type: "submit" }, "Subscribe"));
    subForm.addEventListener("submit", (event) => {
      event.preventDefault();
      act(`Bridge ${name} subscribed to ${remote.value}.`, () => post(`/bridges/sub/${seg(name)}`, {
        data: { subscription: [{ remote_topic: remote.value, local_topic: local.value || remote.value, qos: Number(qos.value) }] },
      }));
    });
    detail.dataset.bridge = name;
    detail.replaceChildren(section(`Bridge ${name}`,
      table("Forwards (local to remote)", [
        { label: "Local topic", cell: (f) => h("code", {}, f.local_topic) },
        { label: "Remote topic", cell: (f) => h("code", {}, f.remote_topic) },
      ], node.forwards),
      table("Subscriptions (remote to local)", [
        { label: "Remote topic", cell: (s) => h("code", {}, s.remote_topic) },
        { label: "Local topic", cell: (s) => h("code", {}, s.local_topic) },
        { label: "QoS", cell: (s) => String(s.qos) },
        {
          label: "Actions",
          cell: (s) => h("button", {
            type: "button", class: "danger", "aria-label": `Unsubscribe ${s.remote_topic}`,
            onclick: () => act(`Bridge ${name} unsubscribed from ${s.remote_topic}.`,
              () => post(`/bridges/unsub/${seg(name)}`, { data: { unsubscription: [{ topic: s.remote_topic }] } })),
          }, "Unsubscribe"),
        },
      ], node.subscription),
      subForm, editForm));
  }

  async function refresh() {
    const [status, view] = await Promise.all([get("/bridge-status"), get("/bridges")]);
    const nodes = Object.fromEntries(view.data.bridge.nodes.map((n) => [n.name, n]));
    list.replaceChildren(table(`${status.data.length} bridge${status.data.length === 1 ? "" : "s"}`, [
      { label: "Name", cell: (b) => b.name },
      { label: "Server", cell: (b) => h("code", {}, b.server) },
      {
        label: "State",
        cell: (b) => (!b.enabled ? "off" : `${b.connected ? "connected" : "not connected"} (${b.connected} of ${b.connections})`),
      },
      { label: "Sent", cell: (b) => String(b.sent) },
      { label: "Received", cell: (b) => String(b.received) },
      { label: "Dropped", cell: (b) => String(b.dropped) },
      {
        label: "Actions",
        cell: (b) => [
          h("button", { type: "button", class: "quiet", "aria-label": `Details of ${b.name}`,
            onclick: () => nodes[b.name] && showDetail(nodes[b.name]) }, "Details"),
          " ",
          h("button", {
            type: "button", class: "quiet", "aria-label": `Turn ${b.name} ${b.enabled ? "off" : "on"}`,
            onclick: () => act(`Bridge ${b.name} turned ${b.enabled ? "off" : "on"}.`,
              () => post(`/bridges/switch/${seg(b.name)}`, { data: { bridge_switch: !b.enabled } })),
          }, b.enabled ? "Turn off" : "Turn on"),
          " ",
          h("button", {
            type: "button", class: "danger", "aria-label": `Delete ${b.name}`,
            onclick: (event) => askDelete(b.name, event.currentTarget),
          }, "Delete"),
        ],
      },
    ], status.data, (b) => ({
      dataset: { bridge: b.name, connected: String(b.connected), enabled: String(b.enabled) },
    })));
  }

  refresh().catch(() => {});
  const timer = setInterval(() => {
    if (!list.contains(document.activeElement)) refresh().catch(() => {});
  }, REFRESH_MS);
  return () => clearInterval(timer);
}
