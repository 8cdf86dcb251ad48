// The page's client of the REST API: the API key (kept in sessionStorage only, never in localStorage or a
// cookie), requests that carry it, errors turned into one clear line, and the server-sent events of a stream.

const KEY_ITEM = "almanac.apiKey";

/** The key the user gave in this tab, or "" when none. */
export function apiKey() {
  return sessionStorage.getItem(KEY_ITEM) || "";
}

/** Keep `key` for this tab only ("" forgets it). */
export function setApiKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

/** An error answered by the API (status 0: the server could not be reached). */
export class ApiError extends Error {
  constructor(status, type, message, retryAfter) {
    super(message || `HTTP ${status}`);
    this.status = status;
    this.type = type;
    this.retryAfter = retryAfter;
  }
}

/**
 * fetch() with the key, a JSON body (`json`) or a FormData body (`form`); resolves to the Response when it
 * is 2xx, else rejects with an ApiError carrying the API's own message.
 */
export async function request(method, path, { json, form, signal } = {}) {
  const headers = { Accept: "application/json" };
  const key = apiKey();
  if (key) headers.Authorization = `Bearer ${key}`;
  let body;
  if (json !== undefined) {
    headers["Content-Type"] = "application/json";
    body = JSON.stringify(json);
  } else if (form !== undefined) {
    body = form; // the browser writes the multipart boundary
  }
  let response;
  try {
    response = await fetch(path, { method, headers, body, signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError(0, "network", "the server could not be reached", null);
  }
  if (!response.ok) throw await errorOf(response);
  return response;
}

/** GET `path` and parse its JSON body. */
export async function getJson(path) {
  return (await request("GET", path)).json();
}

async function errorOf(response) {
  let type = "";
  let message = "";
  try {
    const body = await response.json();
    type = body?.error?.type ?? "";
    message = body?.error?.message ?? body?.detail ?? "";
  } catch {
    message = response.statusText;
  }
  return new ApiError(response.status, type, String(message), response.headers.get("Retry-After"));
}

/** One line that says what went wrong and what to do, for any error the page meets. */
export function describe(error) {
  if (!(error instanceof ApiError)) return `Unexpected error in the page: ${error.message || error}`;
  const said = error.message ? `: ${error.message}` : "";
  switch (error.status) {
    case 0:
      return "The server could not be reached; check that `almanac serve` is running, then retry.";
    case 401:
      return `An API key is needed (401)${said}. Enter a key under "API key".`;
    case 403:
      return `This key may not do that (403)${said}.`;
    case 413:
      return `Too large (413)${said}.`;
    case 429:
      return `Too many requests (429)${said}. Retry after ${error.retryAfter || "a few"} s.`;
    case 503:
      return `The server is not ready (503)${said}. Retry after ${error.retryAfter || "a few"} s.`;
    default:
      return `Request failed${error.status ? ` (${error.status})` : ""}${said}.`;
  }
}

/**
 * The events of a server-sent event stream, as {event, data} with `data` parsed as JSON (EventSource cannot
 * POST, so the stream of POST /v1/query is read from fetch()'s body). Comment lines (keep-alives) are skipped.
 */
export async function* sseEvents(response) {
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buffer += value;
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const event = parseEvent(buffer.slice(0, end));
      buffer = buffer.slice(end + 2);
      if (event) yield event;
    }
  }
}

function parseEvent(block) {
  let event = "message";
  const data = [];
  for (const line of block.split("\n")) {
    if (!line || line.startsWith(":")) continue;
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    const value = colon < 0 ? "" : line.slice(colon + 1).replace(/^ /, "");
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  return data.length ? { event, data: JSON.parse(data.join("\n")) } : null;
}
