// Publish and subscribe: a form that publishes through the REST API
// (POST /mqtt/publish) and a live view of a subscription made from this
// browser over MQTT-over-WebSocket to the broker's own WS listener (its
// port and path from /listeners; the host is the one this page came from).

import { get, post } from "../api.js";
import { connect } from "../mqtt.js";
import { announce, field, h, section } from "../util.js";

export const title = "Publish and subscribe";
const KEPT = 200;

function propertyRow(rows) {
  const [keyField] = field("Property name", h("input", { class: "prop-key" }));
  const [valueField] = field("Value", h("input", { class: "prop-value" }));
  const row = h("div", { class: "toolbar prop-row" }, keyField, valueField);
  row.append(h("button", { type: "button", class: "quiet", onclick: () => row.remove() }, "Remove"));
  rows.append(row);
  row.querySelector("input").focus();
}

function publishForm() {
  const [topicField, topic] = field("Topic", h("input", { id: "pub-topic", required: true }));
  const [qosField, qos] = field("QoS", h("select", { id: "pub-qos" },
    [0, 1, 2].map((n) => h("option", { value: String(n) }, String(n)))));
  const retain = h("input", { type: "checkbox", id: "pub-retain" });
  const [payloadField, payload] = field("Payload", h("textarea", { id: "pub-payload", rows: 4 }));
  const rows = h("div", { id: "pub-props" });
  const error = h("p", { class: "error", id: "pub-error", role: "alert" });
  const form = h("form", { id: "publish-form", "aria-label": "Publish a message" },
    h("div", { class: "toolbar" }, topicField, qosField,
      h("div", { class: "check" }, retain, h("label", { for: "pub-retain" }, "Retain"))),
    payloadField,
    h("fieldset", {}, h("legend", {}, "User properties (MQTT 5 subscribers)"), rows,
      h("button", { type: "button", class: "quiet", id: "pub-add-prop", onclick: () => propertyRow(rows) },
        "Add a property")),
    error,
    h("button", { type: "submit", id: "pub-send" }, "Publish"));
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.textContent = "";
    const properties = {};
    for (const row of rows.querySelectorAll(".prop-row")) {
      const key = row.querySelector(".prop-key").value;
      if (key) properties[key] = row.querySelector(".prop-value").value;
    }
    const body = {
      topic: topic.value, payload: payload.value, qos: Number(qos.value), retain: retain.checked,
      clientid: "dashboard",
    };
    if (Object.keys(properties).length) body.properties = { user_properties: properties };
    try {
      await post("/mqtt/publish", body);
      topic.removeAttribute("aria-invalid");
      announce(`Published to ${topic.value}.`);
    } catch (failure) {
      topic.setAttribute("aria-invalid", "true");
      error.textContent = failure.body.code === 108
        ? "Not published: check the topic (no wildcards) and the QoS."
        : `Not published: ${failure.message}`;
    }
  });
  return form;
}

async function websocketUrl() {
  const { data } = await get("/listeners");
  const secure = window.location.protocol === "https:";
  const wanted = secure ? ["wss", "ws"] : ["ws", "wss"];
  for (const kind of wanted) {
    const listener = data.find((l) => l.type === kind && l.running);
    if (listener) {
      const scheme = kind === "wss" ? "wss" : "ws";
      return `${scheme}://${window.location.hostname}:${listener.port}${listener.path || "/mqtt"}`;
    }
  }
  return null;
}

function liveView(state) {
  const [filterField, filter] = field("Topic filter", h("input", { id: "sub-filter", value: "#" }));
  const [userField, user] = field("MQTT user name (if required)", h("input", { id: "sub-user", autocomplete: "off" }));
  const [passField, pass] = field("MQTT password", h("input", { id: "sub-pass", type: "password", autocomplete: "off" }));
  const button = h("button", { type: "submit", id: "sub-start" }, "Subscribe");
  const stateLine = h("p", { id: "sub-state" }, "Not subscribed.");
  const log = h("ol", { class: "log", id: "sub-log", role: "log", "aria-label": "Messages received" });
  const form = h("form", { id: "subscribe-form", "aria-label": "Live subscription" },
    h("div", { class: "toolbar" }, filterField, userField, passField), button);

  function stop() {
    if (state.client) state.client.close();
    state.client = null;
    button.textContent = "Subscribe";
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    if (state.client) {
      stop();
      return;
    }
    const url = await websocketUrl();
    if (!url) {
      stateLine.textContent = "The broker has no WebSocket listener (listeners.ws).";
      return;
    }
    const topicFilter = filter.value || "#";
    stateLine.textContent = `Connecting to ${url}…`;
    state.client = connect(url, {
      clientId: `dashboard-${Math.random().toString(16).slice(2, 10)}`,
      username: user.value, password: pass.value,
    }, {
      onConnect() {
        state.client.subscribe(topicFilter);
        stateLine.textContent = `Subscribed to ${topicFilter} over ${url}.`;
        stateLine.dataset.live = "yes";
        button.textContent = "Unsubscribe";
      },
      onRefused() {
        stateLine.textContent = `The broker refused the subscription to ${topicFilter}.`;
      },
      onMessage(message) {
        const item = h("li", { dataset: { topic: message.topic } },
          h("span", { class: "topic" }, message.topic), " ",
          h("span", { class: "meta" }, `${new Date().toLocaleTimeString()}${message.retain ? ", retained" : ""}`),
          h("pre", {}, message.text));
        log.prepend(item);
        while (log.children.length > KEPT) log.lastChild.remove();
      },
      onClose(reason) {
        state.client = null;
        button.textContent = "Subscribe";
        stateLine.dataset.live = "no";
        stateLine.textContent = `Not subscribed (${reason}).`;
      },
    });
  });
  return [form, stateLine, log];
}

export function render(main) {
  const state = { client: null };
  main.append(
    h("h1", {}, "Publish and subscribe"),
    h("div", { class: "two" },
      section("Publish", publishForm()),
      section("Live subscription", liveView(state))),
  );
  return () => {
    if (state.client) state.client.close();
  };
}
