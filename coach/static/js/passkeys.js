// Passkeys (WebAuthn): add one on the security page, sign in or confirm it is you with one. Each box marked
// `data-passkey="register|signin|reauth"` names its two JSON steps (options, then verify); this script asks the
// browser (navigator.credentials.create/get), sends the answer back and follows the redirect it gets.
// Loaded on every page (hx-boost swaps bodies, and htmx runs no inline scripts), so everything is delegated
// from `document`. Without WebAuthn (or without this script) the buttons stay hidden and the box says why.
(function () {
  "use strict";

  function supported() {
    return !!(window.PublicKeyCredential && navigator.credentials && navigator.credentials.create &&
              navigator.credentials.get && window.isSecureContext);
  }

  // base64url (no padding), as the server writes binary values in JSON, to bytes and back.
  function toBuffer(text) {
    var base64 = String(text).replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var raw = window.atob(base64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i += 1) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i += 1) { raw += String.fromCharCode(bytes[i]); }
    return window.btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (item) {
      return { type: item.type, id: toBuffer(item.id), transports: item.transports };
    });
  }

  function creationOptions(options) {
    options.challenge = toBuffer(options.challenge);
    options.user.id = toBuffer(options.user.id);
    options.excludeCredentials = withIds(options.excludeCredentials);
    return options;
  }

  function requestOptions(options) {
    options.challenge = toBuffer(options.challenge);
    options.allowCredentials = withIds(options.allowCredentials);
    return options;
  }

  // The credential as JSON, in the shape the server's WebAuthn library reads (WebAuthn level 3's toJSON).
  function serialize(credential) {
    var response = credential.response;
    var json = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults ? credential.getClientExtensionResults() : {},
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      json.response.attestationObject = toText(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toText(response.authenticatorData);
      json.response.signature = toText(response.signature);
      json.response.userHandle = response.userHandle ? toText(response.userHandle) : null;
    }
    return json;
  }

  function post(url, token, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "Accept": "application/json", "X-CSRFToken": token },
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error || "The server answered " + response.status + ". Reload the page and try again.");
          error.redirect = data.redirect;
          throw error;
        }
        return data;
      });
    });
  }

  // What the browser's refusals mean to a person.
  function explain(error, purpose) {
    if (error && error.name === "NotAllowedError") {
      return "The passkey request was cancelled or timed out. Try again when you are ready.";
    }
    if (error && error.name === "InvalidStateError" && purpose === "register") {
      return "This device already holds a passkey for your account.";
    }
    if (error && error.name === "SecurityError") {
      return "This browser refused passkeys for this address. Open the site at its usual address and try again.";
    }
    return (error && error.message) || "Something went wrong. Try again.";
  }

  function reveal() {
    if (!supported()) { return; }
    document.querySelectorAll("[data-passkey]").forEach(function (box) {
      box.querySelectorAll("[data-passkey-ready]").forEach(function (el) { el.hidden = false; });
      box.querySelectorAll("[data-passkey-unsupported]").forEach(function (el) { el.hidden = true; });
    });
  }

  // Load ``url`` as a new page: the same page with another #fragment would only scroll, so it is reloaded.
  function go(url) {
    var target = new URL(url, window.location.href);
    var here = window.location;
    if (target.pathname === here.pathname && target.search === here.search) {
      if (target.hash) { window.history.replaceState(null, "", target.hash); }
      here.reload();
    } else {
      here.assign(target.href);
    }
  }

  function start(button) {
    var box = button.closest("[data-passkey]");
    var purpose = box.getAttribute("data-passkey");
    // The token rendered with this box: the body's hx-headers may be older than the session (a boosted
    // page change after logging out keeps the body element of the page before).
    var token = box.querySelector("[data-passkey-csrf]").value;
    var status = box.querySelector("[data-passkey-status]");
    status.textContent = "";
    button.disabled = true;
    post(box.getAttribute("data-options-url"), token).then(function (options) {
      if (purpose === "register") {
        return navigator.credentials.create({ publicKey: creationOptions(options) });
      }
      return navigator.credentials.get({ publicKey: requestOptions(options) });
    }).then(function (credential) {
      if (!credential) { throw new Error("No passkey was chosen."); }
      var body = { credential: serialize(credential) };
      var name = box.querySelector("[data-passkey-name]");
      if (name) { body.name = name.value; }
      return post(box.getAttribute("data-verify-url"), token, body);
    }).then(function (data) {
      go(data.redirect || "/");
    }).catch(function (error) {
      if (error && error.redirect) { go(error.redirect); return; }
      status.textContent = explain(error, purpose);
      button.disabled = false;
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-passkey-start]");
    if (button && !button.disabled) {
      event.preventDefault();
      start(button);
    }
  });
  document.addEventListener("DOMContentLoaded", reveal);
  document.addEventListener("htmx:load", reveal);
  document.addEventListener("htmx:afterSettle", reveal);
}());
