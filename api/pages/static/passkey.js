// Passkeys (WebAuthn) in the pages, which work without this file for everything else:
// <form data-passkey="get" data-options="URL"> (a recovery's second step) and
// <form data-passkey="create" data-options="URL"> (the security page's "Add a passkey").
// Its hidden <button data-passkey-start> shows; pressed, it fetches the options (a challenge
// the server keeps), asks the browser, and posts the answer in the form's hidden field
// (`assertion` or `credential`). Without JavaScript the page says a passkey needs it (its
// [data-passkey-no-js] sentence, hidden here).
(function () {
  "use strict";

  function toBytes(text) {
    var b64 = text.replace(/-/g, "+").replace(/_/g, "/");
    while (b64.length % 4) { b64 += "="; }
    var raw = atob(b64);
    var bytes = new Uint8Array(raw.length);
    for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
    return bytes.buffer;
  }

  function toText(buffer) {
    var bytes = new Uint8Array(buffer);
    var raw = "";
    for (var i = 0; i < bytes.length; i++) { raw += String.fromCharCode(bytes[i]); }
    return btoa(raw).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function withIds(list) {
    return (list || []).map(function (item) {
      var copy = Object.assign({}, item);
      copy.id = toBytes(item.id);
      return copy;
    });
  }

  function requestOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.allowCredentials = withIds(json.allowCredentials);
    return { publicKey: options };
  }

  function creationOptions(json) {
    var options = Object.assign({}, json);
    options.challenge = toBytes(json.challenge);
    options.user = Object.assign({}, json.user, { id: toBytes(json.user.id) });
    options.excludeCredentials = withIds(json.excludeCredentials);
    return { publicKey: options };
  }

  function answer(credential) {
    var response = credential.response;
    var out = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      authenticatorAttachment: credential.authenticatorAttachment || null,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: { clientDataJSON: toText(response.clientDataJSON) }
    };
    if (response.attestationObject) {
      out.response.attestationObject = toText(response.attestationObject);
      out.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      out.response.authenticatorData = toText(response.authenticatorData);
      out.response.signature = toText(response.signature);
      out.response.userHandle = response.userHandle ? toText(response.userHandle) : null;
    }
    return JSON.stringify(out);
  }

  function setUp(form) {
    var button = form.querySelector("[data-passkey-start]");
    var status = form.querySelector("[data-passkey-status]");
    var creating = form.getAttribute("data-passkey") === "create";
    var field = form.querySelector(creating ? "input[name=credential]" : "input[name=assertion]");
    if (!button || !field) { return; }
    // The sentence for browsers without JavaScript (a <noscript> is not shown when scripts
    // are turned off by a page's settings rather than the browser's).
    form.querySelectorAll("[data-passkey-no-js]").forEach(function (el) { el.hidden = true; });
    function say(key) {
      if (status) { status.textContent = status.getAttribute("data-" + key) || ""; }
    }
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say("unsupported");
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      if (creating && form.reportValidity && !form.reportValidity()) { return; }
      button.disabled = true;
      say("");
      // Creating: the form's own fields (its CSRF token with them) are posted for the options.
      fetch(form.getAttribute("data-options"), creating ? {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { "Accept": "application/json" },
        credentials: "same-origin"
      } : {
        headers: { "Accept": "application/json" },
        credentials: "same-origin"
      })
        .then(function (reply) {
          if (!reply.ok) { throw new Error("options " + reply.status); }
          return reply.json();
        })
        .then(function (json) {
          return creating
            ? navigator.credentials.create(creationOptions(json))
            : navigator.credentials.get(requestOptions(json));
        })
        .then(function (credential) {
          field.value = answer(credential);
          form.submit();
        })
        .catch(function () {
          say("cancelled");
          button.disabled = false;
        });
    });
  }

  document.querySelectorAll("form[data-passkey]").forEach(setUp);
})();
