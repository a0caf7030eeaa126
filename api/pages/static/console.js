// The console works without this file. With it, the queue refreshes itself: every
// data-refresh seconds (while the tab is visible) it reads the same address again and puts the
// new results and counts in place, keeping the reviewer's focus and filters.
(function () {
  "use strict";

  function refreshQueue() {
    var results = document.getElementById("queue-results");
    if (!results) { return; }
    var seconds = parseInt(results.getAttribute("data-refresh") || "0", 10);
    if (!(seconds > 0)) { return; }

    function swap(id, fresh) {
      var old = document.getElementById(id);
      var replacement = fresh.getElementById(id);
      if (!old || !replacement) { return; }
      // Nothing is replaced under the reviewer's focus, nor a filter they chose and have not
      // applied yet.
      if (old.contains(document.activeElement) && document.activeElement !== document.body) {
        return;
      }
      var changed = Array.prototype.some.call(old.querySelectorAll("select"), function (s) {
        var chosen = s.querySelector("option[selected]") || s.options[0];
        return chosen && s.value !== chosen.value;
      });
      if (changed) { return; }
      old.replaceWith(replacement);
    }

    function poll() {
      if (document.hidden) { setTimeout(poll, seconds * 1000); return; }
      fetch(window.location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } })
        .then(function (response) {
          if (response.redirected || !response.ok) { return null; }  // signed out: leave it
          return response.text();
        })
        .then(function (html) {
          if (!html) { return; }
          var fresh = new DOMParser().parseFromString(html, "text/html");
          swap("queue-results", fresh);
          swap("queue-filters", fresh);
        })
        .catch(function () { /* the next poll tries again */ })
        .finally(function () { setTimeout(poll, seconds * 1000); });
    }

    setTimeout(poll, seconds * 1000);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", refreshQueue);
  } else {
    refreshQueue();
  }
})();
