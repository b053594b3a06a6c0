// Subscriptions and topics: the subscription tree (/topic-tree), the
// shared groups (/shared) and the retained messages (/retained: view,
// filter, delete).

import { del, get } from "../api.js";
import { announce, field, formatBytes, h, section, table } from "../util.js";

export const title = "Subscriptions and topics";

/** /topic-tree lists the trie breadth first with child counts: rebuild it. */
export function nest(levels) {
  if (!levels.length) return null;
  const rows = levels.map((row) => row.map((node) => ({ ...node, children: [] })));
  for (let depth = 0; depth + 1 < rows.length; depth += 1) {
    let next = 0;
    for (const node of rows[depth]) {
      node.children = rows[depth + 1].slice(next, next + node.cld_cnt);
      next += node.cld_cnt;
    }
  }
  return rows[0][0];
}

function treeList(node, path) {
  const items = node.children.map((child) => {
    const full = path ? `${path}/${child.topic}` : child.topic;
    const subscribers = child.clientid
      ? h("span", { class: "subs" }, ` (${child.clientid.join(", ")})`)
      : null;
    return h("li", { dataset: { filter: full } }, h("code", {}, child.topic), subscribers,
      child.children.length ? treeList(child, full) : null);
  });
  return h("ul", { class: path ? "" : "tree" }, items);
}

export function render(main) {
  const tree = h("div", { id: "topic-tree", class: "panel" });
  const groups = h("div", { id: "shared-groups" });
  const [filterField, filterInput] = field("Topic filter", h("input", { id: "retained-filter", value: "#" }),
    "An MQTT filter such as sensors/+/temp; # lists all but $ topics.");
  const retainedForm = h("form", { class: "inline", "aria-label": "Filter retained messages" },
    filterField, h("button", { type: "submit" }, "Show"));
  const retained = h("div", { id: "retained" });
  const viewer = h("div", { id: "retained-view", "aria-live": "polite" });
  main.append(
    h("h1", {}, "Subscriptions and topics"),
    h("div", { class: "toolbar" }, h("button", { type: "button", class: "quiet", onclick: () => load() }, "Refresh")),
    section("Topic tree", tree),
    section("Shared subscription groups", groups),
    section("Retained messages", retainedForm, retained, viewer),
  );

  function view(message) {
    viewer.replaceChildren(h("div", { class: "panel" },
      h("h3", {}, "Retained on ", h("code", {}, message.topic)),
      h("p", {}, `QoS ${message.qos}, ${formatBytes(message.size)}, ${message.encoding === "base64" ? "binary (base64)" : "text"}`),
      h("pre", { id: "retained-payload" }, message.payload)));
  }

  async function remove(message) {
    try {
      await del(`/retained?topic=${encodeURIComponent(message.topic)}`);
      announce(`Deleted the retained message of ${message.topic}.`);
    } catch (error) {
      announce(`Could not delete: ${error.message}`, true);
    }
    await loadRetained();
  }

  async function loadRetained() {
    const filter = filterInput.value.trim() || "#";
    let body;
    try {
      body = await get(`/retained?topic=${encodeURIComponent(filter)}`);
      filterInput.removeAttribute("aria-invalid");
    } catch (error) {
      filterInput.setAttribute("aria-invalid", "true");
      announce(`Not a valid topic filter: ${filter}`, true);
      return;
    }
    retained.replaceChildren(table(`${body.total} retained message${body.total === 1 ? "" : "s"}`, [
      { label: "Topic", cell: (m) => h("code", {}, m.topic) },
      { label: "QoS", cell: (m) => String(m.qos) },
      { label: "Size", cell: (m) => formatBytes(m.size) },
      {
        label: "Actions",
        cell: (m) => [
          h("button", { type: "button", class: "quiet", "aria-label": `View ${m.topic}`, onclick: () => view(m) }, "View"),
          " ",
          h("button", { type: "button", class: "danger", "aria-label": `Delete ${m.topic}`, onclick: () => remove(m) }, "Delete"),
        ],
      },
    ], body.data, (m) => ({ dataset: { topic: m.topic } })));
  }

  async function load() {
    const [treeBody, sharedBody] = await Promise.all([get("/topic-tree"), get("/shared")]);
    const root = nest(treeBody.data);
    tree.replaceChildren(root && root.children.length ? treeList(root, "") : h("p", {}, "No subscriptions."));
    groups.replaceChildren(table("Shared groups", [
      { label: "Group", cell: (g) => g.group },
      { label: "Topic filter", cell: (g) => h("code", {}, g.topic) },
      { label: "Members", cell: (g) => g.members.map((m) => `${m.clientid} (QoS ${m.qos})`).join(", ") },
    ], sharedBody.data));
    await loadRetained();
  }

  retainedForm.addEventListener("submit", (event) => {
    event.preventDefault();
    loadRetained();
  });
  load().catch(() => {});
  return null;
}
