// Clients: the list (/clients, with the API's state and protocol filters;
// client id and user name match anywhere in the text), a detail view
// (/sessions/{id}) and kick (DELETE /clients/{id}).  Refreshed every 5 s.

import { del, get, seg } from "../api.js";
import { announce, field, formatDuration, h, section, table } from "../util.js";

export const title = "Clients";
const REFRESH_MS = 5000;

export function render(main) {
  const [idField, idInput] = field("Client id contains", h("input", { id: "filter-client" }));
  const [userField, userInput] = field("User name contains", h("input", { id: "filter-user" }));
  const [stateField, stateSelect] = field("State", h("select", { id: "filter-state" },
    h("option", { value: "" }, "Any"), h("option", { value: "connected" }, "Connected"),
    h("option", { value: "disconnected" }, "Disconnected")));
  const [protoField, protoSelect] = field("Protocol", h("select", { id: "filter-proto" },
    h("option", { value: "" }, "Any"), h("option", { value: "3" }, "MQTT 3.1"),
    h("option", { value: "4" }, "MQTT 3.1.1"), h("option", { value: "5" }, "MQTT 5.0")));
  const form = h("form", { class: "inline", role: "search", "aria-label": "Filter clients" },
    idField, userField, stateField, protoField,
    h("button", { type: "submit" }, "Filter"));
  const list = h("div", { id: "client-list" });
  const detail = h("div", { id: "client-detail", "aria-live": "polite" });
  main.append(h("h1", {}, "Clients"), form, list, detail);

  async function showDetail(clientId) {
    try {
      const { data } = await get(`/sessions/${seg(clientId)}`);
      const rows = [
        ["Client id", data.client_id], ["User name", data.username || "(none)"],
        ["State", data.conn_state], ["Protocol", `${data.proto_name} ${data.proto_ver}`],
        ["Listener", data.listener || "-"], ["Address", data.peer || "-"],
        ["Keepalive", `${data.keepalive} s`], ["Clean start", String(data.clean_start)],
        ["Session expiry", `${data.session_expiry_interval} s`],
        ["Connected for", data.connected_for === null ? "-" : formatDuration(data.connected_for)],
        ["Queue", `${data.mqueue_len} of ${data.mqueue_max}`],
        ["In flight", data.inflight_max === null ? String(data.inflight)
          : `${data.inflight} of ${data.inflight_max}`],
        ["Awaiting PUBREL", String(data.awaiting_rel)],
      ];
      detail.replaceChildren(section(`Client ${data.client_id}`,
        h("div", { class: "panel" }, h("dl", {}, rows.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)]))),
        table("Subscriptions", [
          { label: "Topic filter", cell: (s) => h("code", {}, s.topic) },
          { label: "QoS", cell: (s) => String(s.qos) },
          { label: "No local", cell: (s) => (s.no_local ? "yes" : "no") },
          { label: "Retain as published", cell: (s) => (s.retain_as_published ? "yes" : "no") },
        ], data.subscriptions)));
      detail.querySelector("h2").setAttribute("tabindex", "-1");
      detail.querySelector("h2").focus();
    } catch (error) {
      announce(`No details for ${clientId}: ${error.message}`, true);
    }
  }

  async function kick(clientId) {
    try {
      await del(`/clients/${seg(clientId)}`);
      announce(`Kicked ${clientId}.`);
    } catch (error) {
      announce(`Could not kick ${clientId}: ${error.message}`, true);
    }
    await refresh();
  }

  async function refresh() {
    const query = new URLSearchParams();
    if (stateSelect.value) query.set("conn_state", stateSelect.value);
    if (protoSelect.value) query.set("proto_ver", protoSelect.value);
    const text = query.toString();
    const { data } = await get(`/clients${text ? `?${text}` : ""}`);
    const idPart = idInput.value.trim();
    const userPart = userInput.value.trim();
    const rows = data.filter((c) => c.client_id.includes(idPart) && c.username.includes(userPart));
    list.replaceChildren(table(`${rows.length} client${rows.length === 1 ? "" : "s"}`, [
      { label: "Client id", cell: (c) => c.client_id },
      { label: "User name", cell: (c) => c.username },
      { label: "State", cell: (c) => c.conn_state },
      { label: "Protocol", cell: (c) => String(c.proto_ver) },
      { label: "Keepalive", cell: (c) => `${c.keepalive} s` },
      {
        label: "Actions",
        cell: (c) => [
          h("button", { type: "button", class: "quiet", "aria-label": `Details of ${c.client_id}`,
            onclick: () => showDetail(c.client_id) }, "Details"),
          " ",
          c.conn_state === "connected"
            ? h("button", { type: "button", class: "danger", "aria-label": `Kick ${c.client_id}`,
              dataset: { kick: c.client_id }, onclick: () => kick(c.client_id) }, "Kick")
            : null,
        ],
      },
    ], rows, (c) => ({ dataset: { clientId: c.client_id, state: c.conn_state } })));
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    refresh().catch((error) => announce(error.message, true));
  });
  refresh().catch(() => {});
  // The automatic refresh waits while the keyboard focus is in the list,
  // so redrawing it never pulls the focus from under the user.
  const timer = setInterval(() => {
    if (!list.contains(document.activeElement)) refresh().catch(() => {});
  }, REFRESH_MS);
  return () => clearInterval(timer);
}
