// The dashboard shell: hash routing between pages, the logout button.
//
// Each page module exports `title` and `render(main)`; render may return
// a function that stops what the page started (timers, a WebSocket) when
// the user leaves it.  After a page is drawn, focus moves to its heading,
// so keyboard and screen-reader users land at the start of the new page.

import { get, post, loginPage } from "./api.js";
import { announce } from "./util.js";

const PAGES = {
  overview: () => import("./pages/overview.js"),
  clients: () => import("./pages/clients.js"),
  topics: () => import("./pages/topics.js"),
  pubsub: () => import("./pages/pubsub.js"),
  bridges: () => import("./pages/bridges.js"),
  rules: () => import("./pages/rules.js"),
  config: () => import("./pages/config.js"),
};

let leave = null;

async function show() {
  const name = (window.location.hash.replace(/^#\/?/, "") || "overview").split("?")[0];
  const load = PAGES[name] || PAGES.overview;
  if (leave) {
    leave();
    leave = null;
  }
  for (const link of document.querySelectorAll("nav a")) {
    if (link.getAttribute("href") === `#/${name}`) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  const page = await load();
  const main = document.getElementById("main");
  main.replaceChildren();
  delete main.dataset.page;
  document.title = `${page.title} - NanoMQ dashboard`;
  announce("");
  leave = page.render(main) || null;
  main.dataset.page = name in PAGES ? name : "overview";
  const heading = main.querySelector("h1");
  if (heading) {
    heading.setAttribute("tabindex", "-1");
    heading.focus();
  }
}

async function start() {
  document.getElementById("logout").addEventListener("click", async () => {
    try {
      await post("/dashboard/logout");
    } finally {
      loginPage(false);
    }
  });
  try {
    const who = await get("/dashboard/whoami");
    const { username, auth_type: kind, logged_in: loggedIn } = who.data;
    if (!loggedIn) {
      loginPage(false);
      return;
    }
    document.getElementById("who").textContent =
      kind === "no_auth" ? "No login required" : `Logged in as ${username}`;
    if (kind === "no_auth") document.getElementById("logout").hidden = true;
  } catch (_error) {
    return; // api.js has gone to the login page
  }
  window.addEventListener("hashchange", show);
  show();
}

start();
