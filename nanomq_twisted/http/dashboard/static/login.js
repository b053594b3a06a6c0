// The login page: POST /api/v4/dashboard/login, then on to the dashboard.
// The session lives in an HttpOnly cookie set by that answer; this page
// never stores a credential.

const MESSAGES = {
  103: "Wrong user name, password or token.",
  109: "Fill in the user name and password (or a token).",
  116: "That token has expired.",
};

/** /api/v4/dashboard/whoami: whether we are logged in and how to log in. */
async function whoami() {
  const response = await fetch("/api/v4/dashboard/whoami", {
    headers: { "X-NanoMQ-Dashboard": "1" }, credentials: "same-origin", cache: "no-store",
  });
  return response.ok ? (await response.json()).data : { logged_in: false, auth_type: "basic" };
}

async function submit(event) {
  event.preventDefault();
  const error = document.getElementById("login-error");
  error.textContent = "";
  const token = document.getElementById("token").value.trim();
  const body = token
    ? { token }
    : {
      username: document.getElementById("username").value,
      password: document.getElementById("password").value,
    };
  let response;
  try {
    response = await fetch("/api/v4/dashboard/login", {
      method: "POST",
      headers: { "Content-Type": "application/json", "X-NanoMQ-Dashboard": "1" },
      body: JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch (_failure) {
    error.textContent = "The broker cannot be reached.";
    return;
  }
  if (response.ok) {
    window.location.assign("/dashboard/#/overview");
    return;
  }
  let code = null;
  if (response.status === 429) {
    // Too many failed logins from this address (Retry-After seconds).
    const wait = response.headers.get("Retry-After");
    error.textContent = `Too many failed logins: try again in ${wait} s.`;
    document.getElementById(token ? "token" : "username").focus();
    return;
  }
  try {
    code = (await response.json()).code;
  } catch (_failure) {
    code = null;
  }
  error.textContent = MESSAGES[code] || `Login refused (HTTP ${response.status}).`;
  document.getElementById(token ? "token" : "username").focus();
}

async function start() {
  if (new URLSearchParams(window.location.search).has("expired")) {
    document.getElementById("expired").hidden = false;
  }
  document.getElementById("login-form").addEventListener("submit", submit);
  const who = await whoami();
  if (who.logged_in) {
    window.location.assign("/dashboard/#/overview");
    return;
  }
  if (who.auth_type === "jwt") {
    document.getElementById("token-login").open = true;
    document.getElementById("token").focus();
    return;
  }
  document.getElementById("username").focus();
}

start();
