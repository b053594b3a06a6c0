// Overview: node, version, uptime and counts (/stats), the listeners with
// their connections (/listeners), and charts of the last 15 minutes
// (/metrics/history), all refreshed every 5 seconds.

import { get } from "../api.js";
import { lineChart } from "../chart.js";
import { formatBytes, formatDuration, h, section, table } from "../util.js";

export const title = "Overview";
const REFRESH_MS = 5000;

const CARDS = [
  ["Node", "node"], ["Version", "version"], ["Uptime", "uptime"],
  ["Connections", "connections"], ["Sessions", "sessions"],
  ["Subscriptions", "subscriptions"], ["Retained messages", "retained"],
];

const KINDS = { tcp: "TCP", tls: "TLS", ws: "WS", wss: "WSS", quic: "QUIC" };

const rate = (v) => `${(Number(v) || 0).toFixed(v >= 10 || !v ? 0 : 1)}/s`;
const byteRate = (v) => `${formatBytes(v)}/s`;

export function render(main) {
  const values = {};
  const cards = h("dl", { class: "cards" }, CARDS.map(([label, key]) => {
    values[key] = h("dd", { id: `stat-${key}` }, "…");
    return h("div", { class: "card" }, h("dt", {}, label), values[key]);
  }));
  const charts = [
    lineChart("Messages per second", [
      { label: "in", key: "received_rate" }, { label: "out", key: "sent_rate" }], rate),
    lineChart("Bytes per second", [
      { label: "in", key: "bytes_received_rate" }, { label: "out", key: "bytes_sent_rate" }],
    byteRate),
    lineChart("Dropped messages per second", [{ label: "dropped", key: "dropped_rate" }], rate),
    lineChart("Connections", [{ label: "connections", key: "connections" }], (v) => String(v)),
  ];
  charts.forEach((chart, i) => { chart.element.id = `chart-${i}`; });
  const listeners = h("div", { id: "listeners" });
  main.append(
    h("h1", {}, "Overview"),
    section("Broker", cards),
    section("Last 15 minutes", h("div", { class: "charts" }, charts.map((c) => c.element))),
    section("Listeners", listeners),
  );

  // The samples seen so far: each refresh asks only for newer ones.
  let samples = [];
  async function refresh() {
    const since = samples.length ? `?since=${samples[samples.length - 1].time}` : "";
    const [stats, listening, history] = await Promise.all([
      get("/stats"), get("/listeners"), get(`/metrics/history${since}`)]);
    for (const [, key] of CARDS) {
      const value = stats.data[key];
      values[key].textContent = key === "uptime" ? formatDuration(value) : String(value);
    }
    const { span } = history.data;
    samples = samples.concat(history.data.samples);
    const oldest = samples.length ? samples[samples.length - 1].time - span : 0;
    samples = samples.filter((sample) => sample.time >= oldest);
    for (const chart of charts) chart.update(samples, span);
    listeners.replaceChildren(table("Connections per listener", [
      { label: "Kind", cell: (l) => KINDS[l.type] || l.type },
      { label: "Name", cell: (l) => l.name },
      { label: "Address", cell: (l) => `${l.host}:${l.port}${l.path || ""}` },
      { label: "State", cell: (l) => (l.running ? "listening" : "not listening") },
      { label: "Connections", cell: (l) => String(l.connections) },
    ], listening.data, (l) => ({ dataset: { listener: l.name } })));
  }

  refresh().catch(() => {});
  const timer = setInterval(() => refresh().catch(() => {}), REFRESH_MS);
  return () => clearInterval(timer);
}
