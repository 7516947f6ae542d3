// Passkeys: drives navigator.credentials for the elements marked data-passkey="register" or
// data-passkey="authenticate" (web/templates/mfa). The server's options come as JSON with
// base64url strings; the browser wants ArrayBuffers, and its answer goes back as base64url.
(function () {
  "use strict";

  function toBuffer(text) {
    const base64 = text.replace(/-/g, "+").replace(/_/g, "/");
    const padded = base64 + "===".slice((base64.length + 3) % 4);
    const binary = atob(padded);
    const bytes = new Uint8Array(binary.length);
    for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
    return bytes.buffer;
  }

  function toText(buffer) {
    const bytes = new Uint8Array(buffer);
    let binary = "";
    for (let i = 0; i < bytes.length; i += 1) binary += String.fromCharCode(bytes[i]);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function post(root, url, body) {
    const response = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {
        "Content-Type": "application/json",
        Accept: "application/json",
        "X-CSRFToken": root.querySelector('input[name="csrf_token"]').value,
      },
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(function () { return {}; });
    if (!response.ok) {
      throw new Error((data.error && data.error.message) || "That did not work. Please try again.");
    }
    return data;
  }

  function say(root, message) {
    const status = root.querySelector("[data-passkey-status]");
    if (status) status.textContent = message;
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return Object.assign({}, item, { id: toBuffer(item.id) });
    });
  }

  async function register(root, form) {
    const { options } = await post(root, root.dataset.optionsUrl, {});
    const publicKey = Object.assign({}, options, {
      challenge: toBuffer(options.challenge),
      user: Object.assign({}, options.user, { id: toBuffer(options.user.id) }),
      excludeCredentials: descriptors(options.excludeCredentials),
    });
    const credential = await navigator.credentials.create({ publicKey: publicKey });
    const answer = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toText(credential.response.clientDataJSON),
        attestationObject: toText(credential.response.attestationObject),
        transports: credential.response.getTransports ? credential.response.getTransports() : [],
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
    const result = await post(root, root.dataset.verifyUrl, {
      credential: answer,
      name: form.elements.name.value,
      passwordless: form.elements.passwordless ? form.elements.passwordless.checked : false,
    });
    window.location.assign(result.redirect);
  }

  async function authenticate(root) {
    const purpose = root.dataset.purpose;
    const { options } = await post(root, root.dataset.optionsUrl, { purpose: purpose });
    const publicKey = Object.assign({}, options, {
      challenge: toBuffer(options.challenge),
      allowCredentials: descriptors(options.allowCredentials),
    });
    const credential = await navigator.credentials.get({ publicKey: publicKey });
    const answer = {
      id: credential.id,
      rawId: toText(credential.rawId),
      type: credential.type,
      response: {
        clientDataJSON: toText(credential.response.clientDataJSON),
        authenticatorData: toText(credential.response.authenticatorData),
        signature: toText(credential.response.signature),
        userHandle: credential.response.userHandle ? toText(credential.response.userHandle) : null,
      },
      clientExtensionResults: credential.getClientExtensionResults(),
    };
    const result = await post(root, root.dataset.verifyUrl, {
      purpose: purpose, credential: answer, next: root.dataset.next || "",
    });
    window.location.assign(result.redirect);
  }

  function start(root) {
    if (!window.PublicKeyCredential || !navigator.credentials) {
      say(root, "This browser cannot use passkeys.");
      return;
    }
    root.hidden = false;
    const form = root.querySelector("form");
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      say(root, "Follow your browser's prompt…");
      const run = root.dataset.passkey === "register" ? register(root, form) : authenticate(root);
      run.catch(function (error) {
        say(root, error && error.name === "NotAllowedError"
          ? "The passkey prompt was closed or timed out. Try again when you are ready."
          : (error && error.message) || "That did not work. Please try again.");
      });
    });
  }

  document.querySelectorAll("[data-passkey]").forEach(start);
})();
