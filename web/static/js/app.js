// Practice Platform: progressive enhancement only. Every page works without this file.
(function () {
  "use strict";
  var Platform = (window.Platform = window.Platform || {});
  var MAX_TOASTS = 3;
  var SEEN_KEY = "platform:toasted";
  // What the page shows was read from the database when it was rendered: a notification from
  // before then is already counted in the bell and shown in the page.
  var renderedAt = Date.parse(document.body.getAttribute("data-rendered-at")) || Date.now();

  Platform.csrfToken = function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };

  // -- the header's menu on narrow screens ---------------------------------------------------
  function setUpMenu() {
    var toggle = document.querySelector(".menu-toggle");
    var header = document.querySelector(".site-header");
    if (!toggle || !header) return;
    toggle.addEventListener("click", function () {
      var open = header.classList.toggle("nav-open");
      toggle.setAttribute("aria-expanded", open ? "true" : "false");
    });
    document.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && header.classList.contains("nav-open")) {
        header.classList.remove("nav-open");
        toggle.setAttribute("aria-expanded", "false");
        toggle.focus();
      }
    });
  }

  // -- notifications -------------------------------------------------------------------------
  function markRead(ids) {
    return fetch("/api/notifications/read", {
      method: "POST",
      credentials: "same-origin",
      keepalive: true,
      headers: { "Content-Type": "application/json", "X-CSRFToken": Platform.csrfToken() },
      body: JSON.stringify({ ids: ids }),
    }).then(function (response) {
      return response.ok ? response.json() : null;
    }).then(function (body) {
      if (body && body.marked) changeUnread(-body.marked);
    }).catch(function () { /* it stays unread; the inbox still has it */ });
  }

  function changeUnread(by) {
    var count = document.querySelector(".bell-count");
    if (!count) return;
    var value = Math.max(0, (parseInt(count.getAttribute("data-unread"), 10) || 0) + by);
    count.setAttribute("data-unread", String(value));
    count.firstChild.nodeValue = String(value);
    count.hidden = value === 0;
    var bell = count.closest(".bell");
    if (bell) bell.classList.toggle("has-unread", value > 0);
  }

  function seen() {
    try { return JSON.parse(sessionStorage.getItem(SEEN_KEY) || "[]"); } catch (e) { return []; }
  }

  function remember(id) {
    var ids = seen();
    ids.push(id);
    try { sessionStorage.setItem(SEEN_KEY, JSON.stringify(ids.slice(-100))); } catch (e) { /* private mode */ }
  }

  // A toast in the live region: screen readers announce it, sighted users see it until they
  // dismiss it (dismissing reads it; so does opening its link). The inbox keeps it either way.
  Platform.toast = function (item) {
    var region = document.getElementById("live-region");
    if (!region) return;
    while (region.children.length >= MAX_TOASTS) region.removeChild(region.firstChild);
    var toast = document.createElement("div");
    toast.className = "toast";
    toast.setAttribute("role", "status");
    var heading = document.createElement("strong");
    heading.textContent = item.title;
    toast.appendChild(heading);
    if (item.body) {
      var text = document.createElement("span");
      text.textContent = item.body + " ";
      toast.appendChild(text);
    }
    if (item.link) {
      var anchor = document.createElement("a");
      anchor.href = item.link;
      anchor.textContent = "Open";
      anchor.addEventListener("click", function () { if (item.id) markRead([item.id]); });
      toast.appendChild(anchor);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss: " + item.title);
    close.textContent = "×";
    close.addEventListener("click", function () {
      toast.remove();
      if (item.id) markRead([item.id]);
    });
    toast.appendChild(close);
    region.appendChild(toast);
  };

  // Parts of the page that an event changes (data-live-refresh="kind other-kind", or "*")
  // are fetched again and swapped in place: the practice's status, the client list …
  var refreshing = null;

  function refreshParts(kind) {
    var parts = Array.prototype.filter.call(
      document.querySelectorAll("[data-live-refresh][id]"), function (el) {
        var kinds = el.getAttribute("data-live-refresh").split(/\s+/);
        return kinds.indexOf(kind) !== -1 || kinds.indexOf("*") !== -1;
      });
    if (!parts.length) return;
    clearTimeout(refreshing);
    refreshing = setTimeout(function () {
      fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
        .then(function (response) { return response.ok ? response.text() : null; })
        .then(function (html) {
          if (!html) return;
          var fresh = new DOMParser().parseFromString(html, "text/html");
          parts.forEach(function (el) {
            var replacement = fresh.getElementById(el.id);
            if (replacement) el.innerHTML = replacement.innerHTML;
          });
          document.dispatchEvent(new CustomEvent("platform:refreshed"));
        }).catch(function () { /* the next event, or a reload, brings it */ });
    }, 150);
  }

  function arrived(item) {
    var isNew = Date.parse(item.created_at) > renderedAt;
    if (isNew) {
      changeUnread(1);
      refreshParts(item.kind);
    }
    if (seen().indexOf(item.id) === -1) {
      remember(item.id);
      Platform.toast(item);
    }
    document.dispatchEvent(new CustomEvent("platform:notification", { detail: item }));
  }

  // Live notifications over Server-Sent Events; the browser reconnects on its own. One person
  // holds only a few streams at once: when a newer tab takes this one's place, the server says
  // "replaced" and this tab stops listening until it is looked at again.
  var source = null;

  function listenWhenSeen() {
    if (document.visibilityState === "visible" && !source) listen();
  }

  function listen() {
    var meta = document.querySelector('meta[name="notifications-stream"]');
    if (!meta || !window.EventSource) return;
    source = new EventSource(meta.getAttribute("content"));
    source.addEventListener("replaced", function () {
      source.close();
      source = null;
    });
    source.addEventListener("notification", function (event) {
      arrived(JSON.parse(event.data));
    });
  }

  function start() {
    setUpMenu();
    listen();
  }

  document.addEventListener("visibilitychange", listenWhenSeen);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", start);
  } else {
    start();
  }
})();
