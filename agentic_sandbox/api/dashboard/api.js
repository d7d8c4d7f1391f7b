// The API client: the token kept for the browser tab, JSON requests, and problem documents.
//
// The token lives in sessionStorage, so it is gone when the tab closes, and it is sent only in
// the Authorization header, never in a URL.

const TOKEN_KEY = "agentic-sandbox.token";

export function storedToken() {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function storeToken(token) {
  sessionStorage.setItem(TOKEN_KEY, token);
}

export function forgetToken() {
  sessionStorage.removeItem(TOKEN_KEY);
}

// Called with the problem document when the server rejects the token (401).
let unauthorizedHandler = () => {};

export function onUnauthorized(handler) {
  unauthorizedHandler = handler;
}

// An error response: `problem` is the RFC 7807 document (code, detail, errors[]).
export class ApiError extends Error {
  constructor(status, problem) {
    super(problem.detail || `request failed with HTTP ${status}`);
    this.status = status;
    this.problem = problem;
  }

  get code() {
    return this.problem.code || "";
  }

  get fieldErrors() {
    return Array.isArray(this.problem.errors) ? this.problem.errors : [];
  }
}

export function authHeaders(token = storedToken()) {
  return { Authorization: `Bearer ${token}` };
}

export function apiUrl(path, query = {}) {
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(query)) {
    if (value !== undefined && value !== null && value !== "") url.searchParams.set(name, value);
  }
  return url;
}

async function problemOf(response) {
  const text = await response.text();
  try {
    const body = JSON.parse(text);
    if (body && typeof body === "object") return body;
  } catch {
    // Not JSON, such as a proxy's error page: the text is the detail.
  }
  return { status: response.status, detail: text.trim() || response.statusText, errors: [] };
}

// Send a request and return the parsed JSON body; raise ApiError for an error status.
// `token` overrides the stored token, for checking a token before it is stored.
export async function request(path, { method = "GET", query, body, token, signal } = {}) {
  const headers = { ...authHeaders(token ?? storedToken()), Accept: "application/json" };
  const init = { method, headers, signal, cache: "no-store" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  const response = await fetch(apiUrl(path, query), init);
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401 && token === undefined) unauthorizedHandler(problem);
    throw new ApiError(response.status, problem);
  }
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

// Open a streaming GET and return the response, whose body the caller reads.
export async function openStream(path, { query, headers = {}, signal } = {}) {
  const response = await fetch(apiUrl(path, query), {
    headers: { ...authHeaders(), ...headers },
    signal,
    cache: "no-store",
  });
  if (!response.ok) {
    const problem = await problemOf(response);
    if (response.status === 401) unauthorizedHandler(problem);
    throw new ApiError(response.status, problem);
  }
  return response;
}

export function instancePath(key, suffix = "") {
  const [, name] = key.split("/");
  return `/api/v1/instances/${encodeURIComponent(name)}${suffix}`;
}

export function namespaceOf(key) {
  return key.split("/")[0];
}

export function keyOf(instance) {
  return `${instance.metadata.namespace || "default"}/${instance.metadata.name}`;
}
