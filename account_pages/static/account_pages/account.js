// Dashtam account pages: the one script of /account/*. No framework, no build step.
//
// Every page is a server-rendered template whose <body data-page="..."> names it; this module
// wires that page to the public JSON API (/api/v1/). The bearer tokens live in sessionStorage
// (this tab only) and are sent in the Authorization header; requests carry no cookies
// (credentials: "omit"), and the API accepts no cookie anyway. Errors are problem+json: the
// page reads `detail` into an alert region and `errors` next to the fields they name.

const API = "/api/v1/";
const STORE = "dashtam.auth";
const FLASH = "dashtam.flash";
const HOME = "/account/security";

// --- Tokens -------------------------------------------------------------------------------
function tokens() {
  try {
    return JSON.parse(sessionStorage.getItem(STORE) || "null");
  } catch {
    return null;
  }
}

function saveTokens(body) {
  const old = tokens() || {};
  sessionStorage.setItem(STORE, JSON.stringify({
    access: body.access,
    refresh: body.refresh || old.refresh,
    session_id: body.session_id || old.session_id,
    // When to refresh: a little before the access token expires, so no request is refused for it.
    refresh_at: Date.now() + Math.max(0, (body.expires_in || 0) - 30) * 1000,
  }));
}

function clearTokens() {
  sessionStorage.removeItem(STORE);
}

// --- The API ---------------------------------------------------------------------------------
class Problem extends Error {
  constructor(status, body) {
    super((body && (body.detail || body.title)) || `The request failed (HTTP ${status}).`);
    this.status = status;
    this.code = (body && body.code) || "";
    this.errors = (body && body.errors) || {};
  }
}

let refreshing = null;

async function refreshTokens() {
  const current = tokens();
  if (!current || !current.refresh) return false;
  if (!refreshing) {
    refreshing = call("POST", "auth/refresh", { refresh: current.refresh })
      .then((body) => { saveTokens(body); return true; })
      .catch(() => false)
      .finally(() => { refreshing = null; });
  }
  return refreshing;
}

async function call(method, path, body, { auth = false, retry = true } = {}) {
  const headers = { Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  if (auth) {
    let current = tokens();
    if (!current) {
      toLogin();
      throw new Problem(401, { detail: "Sign in first." });
    }
    if (retry && typeof current.refresh_at === "number" && Date.now() >= current.refresh_at && await refreshTokens()) {
      current = tokens();
    }
    headers.Authorization = `Bearer ${current.access}`;
  }
  let response;
  try {
    response = await fetch(API + path, {
      method, headers, credentials: "omit", cache: "no-store",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch {
    throw new Problem(0, { detail: "The server could not be reached. Check your connection and try again." });
  }
  const text = response.status === 204 ? "" : await response.text();
  let data = null;
  if (text) {
    try {
      data = JSON.parse(text);
    } catch {
      data = { detail: `The server answered HTTP ${response.status}.` };
    }
  }
  if (response.ok) return data;
  if (auth && response.status === 401) {
    if (retry && data && (data.code === "TOKEN_INVALID" || data.code === "NOT_AUTHENTICATED")
        && await refreshTokens()) {
      return call(method, path, body, { auth, retry: false });
    }
    clearTokens();
    setFlash((data && data.detail) || "Your session ended. Sign in again.");
    toLogin();
  }
  throw new Problem(response.status, data);
}

const get = (path) => call("GET", path, undefined, { auth: true });
const send = (method, path, body) => call(method, path, body, { auth: true });
const publicPost = (path, body) => call("POST", path, body);
const list = (data) => (Array.isArray(data) ? data : (data && data.results) || []);

// --- Navigation -------------------------------------------------------------------------------
function safeNext(value) {
  // Only a path of our own pages: never another origin ("//evil", "https://...", "/\\evil").
  return value && value.startsWith("/account/") && !/[\\\s]/.test(value) ? value : null;
}

function toLogin() {
  if (document.body.dataset.page === "login") return;
  const next = encodeURIComponent(location.pathname + location.search);
  location.assign(`/account/login?next=${next}`);
}

function signedIn(body) {
  saveTokens(body);
  const next = safeNext(new URLSearchParams(location.search).get("next"));
  location.assign(next || HOME);
}

function setFlash(message) {
  sessionStorage.setItem(FLASH, message);
}

// A token or an authorization code in the address bar is read once, then removed from it
// (and from the history), so it is not left in the tab for the next person or a screenshot.
function takeQuery(...names) {
  const params = new URLSearchParams(location.search);
  const values = Object.fromEntries(names.map((name) => [name, params.get(name) || ""]));
  if (names.some((name) => params.has(name))) history.replaceState(null, "", location.pathname);
  return values;
}

// --- Messages and forms ----------------------------------------------------------------------
const $ = (selector, root = document) => root.querySelector(selector);

function flash(message) {
  const box = $("#flash");
  box.textContent = message;
}

function clearProblem(form) {
  const box = $("#problem");
  box.hidden = true;
  box.textContent = "";
  if (form) {
    form.querySelectorAll(".error").forEach((node) => node.remove());
    form.querySelectorAll("[aria-invalid]").forEach((input) => {
      input.removeAttribute("aria-invalid");
      const ids = (input.getAttribute("aria-describedby") || "").split(" ").filter((id) => !id.startsWith("err-"));
      if (ids.length) input.setAttribute("aria-describedby", ids.join(" "));
      else input.removeAttribute("aria-describedby");
    });
  }
}

function showProblem(error, form) {
  const problem = error instanceof Problem ? error : new Problem(0, { detail: String(error && error.message || error) });
  const box = $("#problem");
  box.textContent = problem.message;
  box.hidden = false;
  let first = null;
  if (form) {
    for (const [field, messages] of Object.entries(problem.errors)) {
      const input = form.querySelector(`[name="${CSS.escape(field)}"]`);
      if (!input) continue;
      const note = document.createElement("p");
      note.className = "error";
      note.id = `err-${input.id}`;
      note.textContent = [].concat(messages).join(" ");
      input.closest(".field").append(note);
      input.setAttribute("aria-invalid", "true");
      input.setAttribute("aria-describedby", `${input.getAttribute("aria-describedby") || ""} ${note.id}`.trim());
      first = first || input;
    }
  }
  (first || box).focus();
}

function values(form) {
  const out = {};
  for (const element of form.elements) {
    if (!element.name) continue;
    if (element.type === "checkbox") out[element.name] = element.checked;
    else out[element.name] = element.value;
  }
  return out;
}

// Runs `handler(values)` on submit; the submit button is disabled meanwhile, and a problem is shown.
function onSubmit(form, handler) {
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    clearProblem(form);
    const buttons = form.querySelectorAll("button");
    buttons.forEach((button) => { button.disabled = true; });
    try {
      await handler(values(form), form);
    } catch (error) {
      showProblem(error, form);
    } finally {
      buttons.forEach((button) => { button.disabled = false; });
    }
  });
}

function onClick(button, handler) {
  if (!button) return;
  button.addEventListener("click", async () => {
    clearProblem(button.closest("form"));
    button.disabled = true;
    try {
      await handler();
    } catch (error) {
      showProblem(error, button.closest("form"));
    } finally {
      button.disabled = false;
    }
  });
}

function el(tag, props = {}, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (key === "dataset") Object.assign(node.dataset, value);
    else if (key in node) node[key] = value;
    else node.setAttribute(key, value);
  }
  node.append(...children.filter((child) => child !== null && child !== undefined));
  return node;
}

function when(value) {
  if (!value) return "never";
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : date.toLocaleString();
}

// --- WebAuthn (passkeys) ----------------------------------------------------------------------
function fromB64url(value) {
  const base64 = value.replace(/-/g, "+").replace(/_/g, "/") + "===".slice((value.length + 3) % 4);
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0)).buffer;
}

function toB64url(buffer) {
  let binary = "";
  new Uint8Array(buffer).forEach((byte) => { binary += String.fromCharCode(byte); });
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function passkeysSupported() {
  return "passkeys" in document.body.dataset && Boolean(window.PublicKeyCredential && navigator.credentials);
}

function creationOptions(json) {
  const options = json.publicKey || json;
  if (PublicKeyCredential.parseCreationOptionsFromJSON) return PublicKeyCredential.parseCreationOptionsFromJSON(options);
  return {
    ...options,
    challenge: fromB64url(options.challenge),
    user: { ...options.user, id: fromB64url(options.user.id) },
    excludeCredentials: (options.excludeCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })),
  };
}

function requestOptions(json) {
  const options = json.publicKey || json;
  if (PublicKeyCredential.parseRequestOptionsFromJSON) return PublicKeyCredential.parseRequestOptionsFromJSON(options);
  return {
    ...options,
    challenge: fromB64url(options.challenge),
    allowCredentials: (options.allowCredentials || []).map((c) => ({ ...c, id: fromB64url(c.id) })),
  };
}

function credentialJSON(credential) {
  if (typeof credential.toJSON === "function") return credential.toJSON();
  const r = credential.response;
  const response = { clientDataJSON: toB64url(r.clientDataJSON) };
  if (r.attestationObject) {
    response.attestationObject = toB64url(r.attestationObject);
    response.transports = r.getTransports ? r.getTransports() : [];
  } else {
    response.authenticatorData = toB64url(r.authenticatorData);
    response.signature = toB64url(r.signature);
    if (r.userHandle) response.userHandle = toB64url(r.userHandle);
  }
  return {
    id: credential.id, rawId: toB64url(credential.rawId), type: credential.type, response,
    authenticatorAttachment: credential.authenticatorAttachment || undefined,
    clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
  };
}

async function passkeyAssertion(optionsBody) {
  if (!passkeysSupported()) throw new Problem(0, { detail: "This browser cannot use passkeys." });
  const options = await publicPost("auth/passkeys/authentication/options", optionsBody);
  let credential;
  try {
    credential = await navigator.credentials.get({ publicKey: requestOptions(options) });
  } catch {
    throw new Problem(0, { detail: "No passkey was used. Try again, or sign in another way." });
  }
  return credentialJSON(credential);
}

// --- The second-factor step (after a password or a magic link) --------------------------------
function secondFactor(answer) {
  const step = $("#step-mfa");
  document.querySelectorAll("[data-first-step]").forEach((node) => { node.hidden = true; });
  step.hidden = false;
  const methods = answer.methods || [];
  $("#mfa-code-field").hidden = !(methods.includes("totp") || methods.includes("recovery_code"));
  $("#mfa-passkey-box").hidden = !(methods.includes("passkey") && passkeysSupported());
  $("#step-mfa-title").focus();
  flash("Enter a code from your authenticator app to finish signing in.");
  onSubmit($("#mfa-form"), async (data) => {
    signedIn(await publicPost("auth/login/mfa", { mfa_token: answer.mfa_token, code: data.code.trim() }));
  });
  onClick($("#mfa-passkey"), async () => {
    const passkey = await passkeyAssertion({ mfa_token: answer.mfa_token });
    signedIn(await publicPost("auth/login/mfa", { mfa_token: answer.mfa_token, passkey }));
  });
}

function loggedIn(answer) {
  if (answer && answer.mfa_required) secondFactor(answer);
  else signedIn(answer);
}

// --- Pages ---------------------------------------------------------------------------------------
const pages = {};

pages.login = () => {
  const form = $("#login-form");
  if (!passkeysSupported()) $("#passkey-sign-in").hidden = true;
  const email = () => $("#login-email").value.trim();
  onSubmit(form, async (data) => {
    try {
      loggedIn(await publicPost("auth/login", { email: data.email.trim(), password: data.password }));
    } catch (error) {
      if (error.code === "EMAIL_NOT_VERIFIED") $("#resend-box").hidden = false;
      throw error;
    }
  });
  onClick($("#mfa-cancel"), async () => { location.reload(); });
  onClick($("#passkey-sign-in"), async () => {
    const credential = await passkeyAssertion(email() ? { email: email() } : {});
    loggedIn(await publicPost("auth/passkeys/authentication", { credential }));
  });
  onClick($("#magic-link-request"), async () => {
    if (!email()) {
      $("#login-email").focus();
      throw new Problem(0, { detail: "Type your email address first, then ask for the link." });
    }
    const answer = await publicPost("auth/magic-link", { email: email() });
    flash(`${answer.detail} Open the link in it to sign in.`);
  });
  onClick($("#resend-verification"), async () => {
    const answer = await publicPost("auth/resend-verification", { email: email() });
    flash(answer.detail);
  });
};

pages.register = () => {
  onSubmit($("#register-form"), async (data, form) => {
    const body = { email: data.email.trim(), password: data.password };
    if (data.first_name.trim()) body.first_name = data.first_name.trim();
    if (data.last_name.trim()) body.last_name = data.last_name.trim();
    await publicPost("auth/register", body);
    form.reset();
    flash("Check your inbox: open the link in the email we sent to verify your address, then sign in.");
  });
};

pages["forgot-password"] = () => {
  onSubmit($("#forgot-form"), async (data) => {
    const answer = await publicPost("auth/request-password-reset", { email: data.email.trim() });
    flash(answer.detail);
  });
};

pages["verify-email"] = async () => {
  const { token } = takeQuery("token");
  const status = $("#verify-status");
  if (!token) {
    status.textContent = "This page needs the link from your email. Open the link again, or ask for a new one from the sign-in page.";
    return;
  }
  try {
    const answer = await publicPost("auth/verify-email", { token });
    status.textContent = `${answer.detail} You can sign in now.`;
    $("#verify-continue").focus();
  } catch (error) {
    status.textContent = "The address was not verified.";
    showProblem(error);
  }
};

pages["reset-password"] = () => {
  const { token } = takeQuery("token");
  if (!token) flash("This page needs the link from your email. Ask for a new one if it expired.");
  onSubmit($("#reset-form"), async (data, form) => {
    const answer = await publicPost("auth/reset-password", { token, new_password: data.new_password });
    clearTokens();
    form.hidden = true;
    flash(`${answer.detail}`);
  });
};

pages["magic-link"] = () => {
  const { token } = takeQuery("token");
  if (!token) flash("This page needs the link from your email. Ask for a new one on the sign-in page.");
  onSubmit($("#magic-form"), async () => {
    loggedIn(await publicPost("auth/magic-link/verify", { token }));
  });
};

pages.unlock = () => {
  const { token } = takeQuery("token");
  if (!("unlock" in document.body.dataset)) {
    $("#unlock-form").hidden = true;
    flash("Unlocking by email is not available on this server: wait until the lock ends, or reset your password.");
    return;
  }
  if (!token) flash("This page needs the link from your email.");
  onSubmit($("#unlock-form"), async () => {
    loggedIn(await publicPost("auth/unlock", { token }));
  });
};

// Security: sessions, the authenticator app (TOTP) and recovery codes, passkeys.
async function loadSessions() {
  const rows = list(await get("auth/sessions"));
  const body = $("#sessions-table tbody");
  body.replaceChildren(...rows.map((session) => {
    const device = [session.browser, session.os, session.device].filter(Boolean).join(" · ") || "Unknown device";
    const action = session.is_current
      ? el("span", {}, "This device")
      : el("button", { type: "button", className: "link", dataset: { session: session.id } }, "Sign out");
    if (!session.is_current) {
      action.setAttribute("aria-label", `Sign out ${device}`);
      onClick(action, async () => {
        await send("DELETE", `auth/sessions/${session.id}`);
        flash(`Signed out ${device}.`);
        await loadSessions();
      });
    }
    return el("tr", {},
      el("td", {}, device),
      el("td", {}, (session.auth_methods || []).join(" + ") || "password"),
      el("td", {}, session.ip_address || ""),
      el("td", {}, when(session.last_used_at)),
      el("td", {}, action));
  }));
}

function showRecoveryCodes(codes) {
  $("#recovery-codes").replaceChildren(...codes.map((code) => el("li", {}, el("code", {}, code))));
  $("#recovery-codes-box").hidden = false;
  $("#recovery-codes-title").focus();
}

const offers = (name) => name in document.body.dataset;

async function loadTotp() {
  if (!offers("mfa")) {
    $("#totp-status").textContent = "Two-step verification is not available on this server.";
    return;
  }
  let state;
  try {
    state = await get("auth/mfa");
  } catch (error) {
    if (error.status === 404) {
      $("#totp-status").textContent = "Two-step verification is not available on this server.";
      return;
    }
    throw error;
  }
  const totp = state.totp || {};
  const remaining = state.recovery_codes ? state.recovery_codes.remaining : 0;
  $("#totp-status").textContent = totp.enabled
    ? `On since ${when(totp.created_at)}. ${remaining} recovery code${remaining === 1 ? "" : "s"} left.`
    : "Off. Turn it on so that a password alone cannot open your account.";
  $("#totp-start-form").hidden = Boolean(totp.enabled);
  $("#totp-manage").hidden = !totp.enabled;
  if (totp.enabled) $("#totp-enrol").hidden = true;
}

async function loadPasskeys() {
  if (!offers("passkeys")) {
    $("#passkeys-status").textContent = "Passkeys are not available on this server.";
    $("#passkey-add-form").hidden = true;
    return;
  }
  let items;
  try {
    items = list(await get("auth/passkeys"));
  } catch (error) {
    if (error.status === 404) {
      $("#passkeys-status").textContent = "Passkeys are not available on this server.";
      $("#passkey-add-form").hidden = true;
      return;
    }
    throw error;
  }
  if (!passkeysSupported()) $("#passkey-add-form").hidden = true;
  $("#passkeys-status").textContent = items.length
    ? `${items.length} passkey${items.length === 1 ? "" : "s"}.`
    : "No passkey yet. A passkey signs you in without a password, and cannot be phished.";
  $("#passkeys-list").replaceChildren(...items.map(passkeyItem));
}

function passkeyItem(passkey) {
  const nameId = `passkey-${passkey.id}-name`;
  const passwordId = `passkey-${passkey.id}-password`;
  const rename = el("form", { className: "inline", noValidate: true },
    el("div", { className: "field" },
      el("label", { htmlFor: nameId }, `New name for ${passkey.name}`),
      el("input", { id: nameId, name: "name", type: "text", value: passkey.name, maxLength: 64, required: true })),
    el("button", { type: "submit" }, "Rename"));
  onSubmit(rename, async (data) => {
    await send("PATCH", `auth/passkeys/${passkey.id}`, { name: data.name.trim() });
    flash("The passkey was renamed.");
    await loadPasskeys();
  });
  const remove = el("form", { className: "inline", noValidate: true },
    el("div", { className: "field" },
      el("label", { htmlFor: passwordId }, `Your password, to delete ${passkey.name}`),
      el("input", { id: passwordId, name: "password", type: "password", autocomplete: "current-password" })),
    el("button", { type: "submit", className: "danger" }, "Delete"));
  onSubmit(remove, async (data) => {
    await send("DELETE", `auth/passkeys/${passkey.id}`, { password: data.password });
    flash("The passkey was deleted.");
    await loadPasskeys();
  });
  return el("li", { className: "passkey" },
    el("p", {}, el("strong", {}, passkey.name), ` · added ${when(passkey.created_at)} · last used ${when(passkey.last_used_at)}`),
    rename, remove);
}

pages.security = async () => {
  onClick($("#sign-out-this"), async () => {
    await signOut();
  });
  onClick($("#sign-out-others"), async () => {
    const answer = await send("DELETE", "auth/sessions/others");
    flash(`Signed out ${answer.revoked} other session${answer.revoked === 1 ? "" : "s"}.`);
    await loadSessions();
  });
  onClick($("#sign-out-all"), async () => {
    await send("DELETE", "auth/sessions/all");
    clearTokens();
    setFlash("You were signed out everywhere.");
    location.assign("/account/login");
  });

  onSubmit($("#totp-start-form"), async (data, form) => {
    const answer = await send("POST", "auth/mfa/totp", { password: data.password });
    form.reset();
    $("#totp-qr").src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(answer.qr_svg)}`;
    $("#totp-secret").textContent = answer.secret;
    $("#totp-enrol").hidden = false;
    $("#totp-confirm-code").focus();
  });
  onSubmit($("#totp-confirm-form"), async (data, form) => {
    const answer = await send("POST", "auth/mfa/totp/confirm", {
      code: data.code.trim(), end_other_sessions: data.end_other_sessions,
    });
    form.reset();
    $("#totp-enrol").hidden = true;
    flash("Two-step verification is on.");
    await loadTotp();
    showRecoveryCodes(answer.recovery_codes);
    if (data.end_other_sessions) await loadSessions();
  });
  onSubmit($("#recovery-form"), async (data, form) => {
    const answer = await send("POST", "auth/mfa/recovery-codes", { password: data.password });
    form.reset();
    await loadTotp();
    showRecoveryCodes(answer.recovery_codes);
  });
  onSubmit($("#totp-disable-form"), async (data, form) => {
    await send("DELETE", "auth/mfa/totp", {
      password: data.password, code: data.code.trim(), end_other_sessions: data.end_other_sessions,
    });
    form.reset();
    $("#recovery-codes-box").hidden = true;
    flash("Two-step verification is off.");
    await loadTotp();
    if (data.end_other_sessions) await loadSessions();
  });

  onSubmit($("#passkey-add-form"), async (data) => {
    const options = await send("POST", "auth/passkeys/registration/options", {});
    let credential;
    try {
      credential = await navigator.credentials.create({ publicKey: creationOptions(options) });
    } catch {
      throw new Problem(0, { detail: "No passkey was created. Try again." });
    }
    await send("POST", "auth/passkeys/registration", { credential: credentialJSON(credential), name: data.name.trim() });
    flash("The passkey was added.");
    await loadPasskeys();
  });

  const me = await get("auth/me");
  $("#whoami").textContent = `Signed in as ${me.email}.`;
  const results = await Promise.allSettled([loadSessions(), loadTotp(), loadPasskeys()]);
  const failed = results.find((result) => result.status === "rejected");
  if (failed) showProblem(failed.reason);
};

// Connections: list, connect, reconnect; the OAuth result landing completes the flow.
pages.connections = async () => {
  const [types, connections] = await Promise.all([get("provider-types"), get("providers")]);
  const names = Object.fromEntries(list(types).map((type) => [type.key, type.name]));
  $("#connect-provider").replaceChildren(...list(types).map((type) => el("option", {
    value: type.key, disabled: !type.configured,
  }, type.configured ? type.name : `${type.name} (not configured on this server)`)));
  const items = list(connections);
  $("#connections-empty").hidden = items.length > 0;
  $("#connections-list").replaceChildren(...items.map((connection) => {
    const reconnect = el("button", { type: "button" }, connection.status === "active" ? "Reconnect" : "Connect again");
    reconnect.setAttribute("aria-label", `Reconnect ${connection.alias}`);
    onClick(reconnect, async () => {
      const answer = await send("POST", `providers/${connection.id}/authorization`, {});
      location.assign(answer.authorization_url);
    });
    return el("li", { className: "connection", dataset: { status: connection.status } },
      el("p", {}, el("strong", {}, connection.alias), ` · ${names[connection.provider_key] || connection.provider_key}`,
        " · ", el("span", { className: "status" }, connection.status),
        connection.last_sync_at ? ` · last synced ${when(connection.last_sync_at)}` : ""),
      reconnect);
  }));
  onSubmit($("#connect-form"), async (data) => {
    const body = { provider_key: data.provider_key };
    if (data.alias.trim()) body.alias = data.alias.trim();
    const answer = await send("POST", "providers", body);
    location.assign(answer.authorization_url);
  });
};

pages["connections-callback"] = async () => {
  const query = takeQuery("provider", "state", "code", "error");
  const status = $("#callback-status");
  if (!query.provider || !query.state) {
    status.textContent = "This page finishes a connection started on the connections page. Start again from there.";
    return;
  }
  const body = query.error ? { state: query.state, error: query.error } : { state: query.state, code: query.code };
  try {
    const answer = await send("POST", `providers/oauth/${encodeURIComponent(query.provider)}/complete`, body);
    status.textContent = answer.detail || "Connected.";
    status.dataset.outcome = answer.outcome;
  } catch (error) {
    status.textContent = "The connection was not completed.";
    showProblem(error);
  }
  $("#callback-continue").focus();
};

async function signOut() {
  const current = tokens();
  if (current) {
    try {
      await call("POST", "auth/logout", { refresh: current.refresh }, { auth: true, retry: true });
    } catch {
      // The session may already be over: this device forgets its tokens either way.
    }
  }
  clearTokens();
  setFlash("You are signed out.");
  location.assign("/account/login");
}

// --- Start -----------------------------------------------------------------------------------
function start() {
  const page = document.body.dataset.page;
  const signed = Boolean(tokens());
  document.querySelectorAll("[data-when]").forEach((item) => {
    item.hidden = (item.dataset.when === "signed-in") !== signed;
  });
  const out = $("#nav-sign-out");
  if (out) out.addEventListener("click", () => { signOut(); });
  const message = sessionStorage.getItem(FLASH);
  if (message) {
    sessionStorage.removeItem(FLASH);
    flash(message);
  }
  if ("needsAuth" in document.body.dataset && !signed) {
    toLogin();
    return;
  }
  const run = pages[page];
  if (run) {
    Promise.resolve(run()).catch((error) => showProblem(error));
  }
}

start();
