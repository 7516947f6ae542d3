// Onboarding auto-save: 2 s after the last keystroke the draft is PUT to the server.
// Offline saves retry with backoff; a save that lost a race (409) overwrites nothing and asks;
// an expired CSRF token is renewed. Without this script the same form works by plain posts.
(function () {
  "use strict";
  var form = document.getElementById("onboarding-form");
  if (!form || form.getAttribute("data-autosave") !== "on") return;

  var DEBOUNCE_MS = 2000;
  var MAX_RETRY_MS = 30000;
  var stage = form.getAttribute("data-stage");
  var version = parseInt(form.getAttribute("data-version"), 10);
  var status = document.getElementById("save-status");
  var conflictBox = document.getElementById("conflict-live");
  var timer = null;
  var inFlight = null;
  var edits = 0;       // bumps on every change
  var savedEdits = 0;  // the edit count the server has
  var retryMs = 1000;
  var submitting = false;

  function say(text) { status.textContent = text; }
  function dirty() { return edits !== savedEdits; }

  function csrfToken() {
    return form.querySelector('input[name="csrf_token"]').value;
  }

  function setCsrfToken(token) {
    form.querySelector('input[name="csrf_token"]').value = token;
    var meta = document.querySelector('meta[name="csrf-token"]');
    if (meta) meta.setAttribute("content", token);
  }

  function setVersion(value) {
    version = value;
    form.setAttribute("data-version", String(value));
    form.querySelector('input[name="version"]').value = String(value);
  }

  function collect() {
    var data = {};
    var elements = form.elements;
    for (var i = 0; i < elements.length; i++) {
      var el = elements[i];
      if (!el.name || el.name === "csrf_token" || el.name === "version" || el.name === "action") {
        continue;
      }
      var group = form.querySelectorAll('input[type="checkbox"][name="' + el.name + '"]');
      if (el.type === "checkbox" && group.length > 1) {
        if (!data[el.name]) data[el.name] = [];
        if (el.checked) data[el.name].push(el.value);
      } else if (el.type === "checkbox") {
        data[el.name] = el.checked;
      } else {
        data[el.name] = el.value;
      }
    }
    return data;
  }

  function fill(data) {
    Object.keys(data || {}).forEach(function (name) {
      var value = data[name];
      var inputs = form.querySelectorAll('[name="' + name + '"]');
      inputs.forEach(function (el) {
        if (el.type === "checkbox") {
          el.checked = Array.isArray(value) ? value.indexOf(el.value) !== -1 : !!value;
        } else {
          el.value = value == null ? "" : String(value);
        }
      });
    });
  }

  function schedule() {
    edits += 1;
    say("Unsaved changes");
    clearTimeout(timer);
    timer = setTimeout(save, DEBOUNCE_MS);
  }

  function renewToken() {
    return fetch("/api/csrf-token", { credentials: "same-origin", cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (body) { setCsrfToken(body.csrf_token); });
  }

  function save(renewed) {
    clearTimeout(timer);
    if (inFlight) { timer = setTimeout(save, 300); return inFlight; }
    var sending = edits;
    say("Saving…");
    inFlight = fetch("/api/onboarding/progress", {
      method: "PUT",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
      body: JSON.stringify({ stage: stage, data: collect(), version: version }),
    }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (body) {
        return { status: response.status, body: body };
      });
    }).then(function (result) {
      inFlight = null;
      if (result.status === 200) {
        setVersion(result.body.version);
        savedEdits = sending;
        retryMs = 1000;
        say(dirty() ? "Unsaved changes" : "Saved");
        if (dirty()) timer = setTimeout(save, DEBOUNCE_MS);
      } else if (result.status === 409) {
        showConflict(result.body.error.current);
      } else if (result.status === 400 && result.body.error &&
                 result.body.error.code === "csrf_failed" && !renewed) {
        return renewToken().then(function () { return save(true); });
      } else if (result.status === 401) {
        say("Your session ended. Log in again; what you typed here is kept in this page.");
      } else if (result.status === 422) {
        say("Some answers cannot be saved yet; check the highlighted fields.");
      } else {
        retryLater();
      }
    }).catch(function () {
      inFlight = null;
      retryLater();
    });
    return inFlight;
  }

  function retryLater() {
    say("Offline — will retry");
    clearTimeout(timer);
    timer = setTimeout(save, retryMs);
    retryMs = Math.min(retryMs * 2, MAX_RETRY_MS);
  }

  function showConflict(current) {
    say("Not saved");
    conflictBox.textContent = "";
    var text = document.createElement("p");
    text.textContent = "These answers were changed in another window or on another device " +
      "since you opened this page. Nothing has been overwritten.";
    var theirs = document.createElement("button");
    theirs.type = "button";
    theirs.textContent = "Load the newer answers";
    theirs.addEventListener("click", function () {
      fill((current.data || {})[stage] || {});
      setVersion(current.version);
      savedEdits = edits;
      conflictBox.classList.add("hidden");
      say("Loaded the newer answers");
    });
    var mine = document.createElement("button");
    mine.type = "button";
    mine.className = "button-primary";
    mine.textContent = "Keep my answers";
    mine.addEventListener("click", function () {
      setVersion(current.version);
      conflictBox.classList.add("hidden");
      save();
    });
    var actions = document.createElement("div");
    actions.className = "actions";
    actions.appendChild(mine);
    actions.appendChild(theirs);
    conflictBox.appendChild(text);
    conflictBox.appendChild(actions);
    conflictBox.classList.remove("hidden");
  }

  // A time zone not chosen yet: suggest the browser's own (saved once the person goes on).
  var zone = form.querySelector('select[name="time_zone"]');
  if (zone && !zone.value && window.Intl) {
    var guess = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (guess && Array.prototype.some.call(zone.options, function (o) { return o.value === guess; })) {
      zone.value = guess;
    }
  }

  form.addEventListener("input", schedule);
  form.addEventListener("change", schedule);

  form.addEventListener("submit", function (event) {
    if (submitting) return;
    clearTimeout(timer);
    if (inFlight) {
      // Let the running save finish so the post carries the newest version.
      event.preventDefault();
      var submitter = event.submitter;
      inFlight.then(function () {
        submitting = true;
        savedEdits = edits;
        form.requestSubmit(submitter);
      });
      return;
    }
    savedEdits = edits;  // the post itself saves what is typed
  });

  window.addEventListener("beforeunload", function (event) {
    if (dirty() && !submitting) {
      event.preventDefault();
      event.returnValue = "";
    }
  });
})();
