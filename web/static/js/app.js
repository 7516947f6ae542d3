// Practice Platform: progressive enhancement only. Every page works without this file.
(function () {
  "use strict";
  window.Platform = window.Platform || {};
  window.Platform.csrfToken = function () {
    var meta = document.querySelector('meta[name="csrf-token"]');
    return meta ? meta.getAttribute("content") : "";
  };
})();
