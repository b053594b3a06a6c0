// Bridges: each bridge's state and counters (/bridge-status) and
// configuration (/bridges); switch one on or off (/bridges/switch), edit
// its connector (PUT /bridges/{name}, which reconnects), add and remove
// remote subscriptions (/bridges/sub, /bridges/unsub).  Bridges are
// created and deleted in the configuration file (the API has no call for
// it, as NanoMQ's has none); see the Configuration page.

import { get, post, put, seg } from "../api.js";
import { announce, field, h, section, table } from "../util.js";

export const title = "Bridges";

export function render(main) {
  const list = h("div", { id: "bridge-list" });
  const detail = h("div", { id: "bridge-detail" });
  main.append(h("h1", {}, "Bridges"),
    h("p", { class: "notice" }, "Bridges are added and removed in the configuration file (",
      h("a", { href: "#/config" }, "Configuration"), ", then Apply)."),
    list, detail);

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
        ],
      },
    ], status.data));
  }

  refresh().catch(() => {});
  return null;
}
