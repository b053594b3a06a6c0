// The dashboard's only way to the broker: the REST API under /api/v4.
//
// The session cookie (HttpOnly, set by /api/v4/dashboard/login) goes with
// every request; the X-NanoMQ-Dashboard header is what lets the server
// accept it (a cross-site page cannot send that header).  A 401 means the
// session has ended: back to the login page, saying why.

export class ApiError extends Error {
  constructor(status, body, headers) {
    const reason = headers && headers.get("X-NanoMQ-Error-Message");
    super((body && body.message) || reason || `HTTP ${status}, code ${body && body.code}`);
    this.status = status;
    this.body = body || {};
    // What a refused request got wrong where the body stays NanoMQ's bare
    // {"code":N} (rules): the parameter's name and the reason.
    this.param = (headers && headers.get("X-NanoMQ-Error-Param")) || null;
    this.reason = reason || null;
  }
}

export function loginPage(expired) {
  const target = expired ? "/dashboard/login.html?expired=1" : "/dashboard/login.html";
  window.location.assign(target);
}

/**
 * One request; resolves with the parsed JSON body of a 2xx answer,
 * rejects with an ApiError otherwise.  `body` is JSON unless it is a
 * string (sent as text/plain: /config_update takes raw HOCON).
 */
export async function api(method, path, body) {
  const headers = { "X-NanoMQ-Dashboard": "1" };
  let payload;
  if (typeof body === "string") {
    headers["Content-Type"] = "text/plain; charset=utf-8";
    payload = body;
  } else if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    payload = JSON.stringify(body);
  }
  const response = await fetch(`/api/v4${path}`, {
    method, headers, body: payload, credentials: "same-origin", cache: "no-store",
  });
  let parsed = null;
  const text = await response.text();
  if (text) {
    try {
      parsed = JSON.parse(text);
    } catch (_error) {
      parsed = { code: -1, message: text };
    }
  }
  if (response.status === 401 && !path.startsWith("/dashboard/login")) {
    loginPage(parsed && parsed.code === 116);
    throw new ApiError(401, parsed, response.headers);
  }
  if (response.status < 200 || response.status >= 300 || (parsed && parsed.code)) {
    throw new ApiError(response.status, parsed, response.headers);
  }
  return parsed;
}

export const get = (path) => api("GET", path);
export const post = (path, body) => api("POST", path, body === undefined ? {} : body);
export const put = (path, body) => api("PUT", path, body);
export const del = (path) => api("DELETE", path);

/** Encode one path segment (client ids, bridge names). */
export const seg = (text) => encodeURIComponent(text);
