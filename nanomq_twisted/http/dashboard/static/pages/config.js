// Configuration: the file the broker runs from (/config_file), edited
// here and saved with /config_update, which validates it like start-up
// does and refuses it with the file, line and key of the first problem --
// shown under the editor, which puts the cursor on that line.  Saving
// changes the file only; "Apply" restarts listeners, bridges and rules
// from it (/ctrl/restart), "Reload passwords and ACL" re-reads those files
// (/reload).

import { get, post } from "../api.js";
import { announce, h, section } from "../util.js";

export const title = "Configuration";

function selectLine(textarea, line) {
  const lines = textarea.value.split("\n");
  const start = lines.slice(0, line - 1).reduce((n, text) => n + text.length + 1, 0);
  const end = start + (lines[line - 1] || "").length;
  textarea.focus();
  textarea.setSelectionRange(start, end);
  const lineHeight = textarea.scrollHeight / Math.max(lines.length, 1);
  textarea.scrollTop = Math.max(0, (line - 3) * lineHeight);
}

export function render(main) {
  const path = h("p", { id: "config-path" });
  const editor = h("textarea", {
    id: "config-text", rows: 24, spellcheck: "false", "aria-describedby": "config-path config-error",
  });
  const error = h("div", { id: "config-error", role: "alert" });
  const save = h("button", { type: "submit", id: "config-save" }, "Save");
  const apply = h("button", { type: "button", class: "quiet", id: "config-apply" }, "Apply (restart listeners, bridges, rules)");
  const reload = h("button", { type: "button", class: "quiet", id: "config-reload" }, "Reload passwords and ACL");
  const form = h("form", { id: "config-form", "aria-label": "Configuration file" },
    h("label", { for: "config-text" }, "nanomq.conf (HOCON)"), editor, error,
    h("div", { class: "toolbar" }, save, apply, reload));
  main.append(h("h1", {}, "Configuration"), section("File", path, form));

  function showError(body) {
    const where = body.error || {};
    const place = [where.file, where.line ? `line ${where.line}` : null].filter(Boolean).join(", ");
    error.replaceChildren(
      h("p", { class: "error" }, h("strong", {}, "Not saved: "), where.reason || body.message || `code ${body.code}`),
      h("p", { class: "error", id: "config-error-where" },
        place ? `At ${place}` : "", where.key ? `, key ${where.key}` : ""));
    editor.setAttribute("aria-invalid", "true");
    if (where.line) selectLine(editor, where.line);
  }

  async function load() {
    const { data } = await get("/config_file");
    path.textContent = data.path ? `File: ${data.path}` : "The broker runs without a configuration file.";
    editor.value = data.text || "";
    save.disabled = !data.path;
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.replaceChildren();
    try {
      await post("/config_update", editor.value);
      editor.removeAttribute("aria-invalid");
      announce("Saved. Apply to restart listeners, bridges and rules from it.");
    } catch (failure) {
      if (failure.body.code === 118) {
        announce("The file cannot be written.", true);
      } else {
        showError(failure.body);
      }
    }
  });
  apply.addEventListener("click", async () => {
    try {
      await post("/ctrl/restart");
      announce("Restarting listeners, bridges and rules from the file.");
    } catch (failure) {
      announce(`Not restarted: ${failure.body.message || failure.message}`, true);
    }
  });
  reload.addEventListener("click", async () => {
    try {
      await post("/reload", {});
      announce("Passwords and ACL reloaded.");
    } catch (failure) {
      announce(`Not reloaded: ${failure.body.message || failure.message}`, true);
    }
  });
  load().catch(() => {});
  return null;
}
