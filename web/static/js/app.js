// Practice Platform: progressive enhancement only. Every page works without this file.
(function () {
  "use strict";
  var Platform = (window.Platform = window.Platform || {});
  var READ_AFTER_MS = 4000;

  Platform.csrfToken = function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };

  // A small toast in the live region: screen readers announce it, sighted users see it.
  Platform.toast = function (title, body, link) {
    var region = document.getElementById("live-region");
    if (!region) return;
    var toast = document.createElement("div");
    toast.className = "toast";
    toast.setAttribute("role", "status");
    var heading = document.createElement("strong");
    heading.textContent = title;
    toast.appendChild(heading);
    if (body) {
      var text = document.createElement("span");
      text.textContent = body + " ";
      toast.appendChild(text);
    }
    if (link) {
      var anchor = document.createElement("a");
      anchor.href = link;
      anchor.textContent = "Open";
      toast.appendChild(anchor);
    }
    var close = document.createElement("button");
    close.type = "button";
    close.className = "toast-close";
    close.setAttribute("aria-label", "Dismiss");
    close.textContent = "×";
    close.addEventListener("click", function () { toast.remove(); });
    toast.appendChild(close);
    region.appendChild(toast);
    setTimeout(function () { toast.remove(); }, 12000);
  };

  function markRead(ids) {
    fetch("/api/notifications/read", {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": Platform.csrfToken() },
      body: JSON.stringify({ ids: ids }),
    }).catch(function () { /* shown already; it stays unread until next time */ });
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
      var item = JSON.parse(event.data);
      Platform.toast(item.title, item.body, item.link);
      document.dispatchEvent(new CustomEvent("platform:notification", { detail: item }));
      // Read once it has been on screen a moment: a page that is already being left (the
      // notice raced a navigation) leaves it unread, and the next page shows it.
      setTimeout(function () { markRead([item.id]); }, READ_AFTER_MS);
    });
  }

  document.addEventListener("visibilitychange", listenWhenSeen);
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", listen);
  } else {
    listen();
  }
})();
