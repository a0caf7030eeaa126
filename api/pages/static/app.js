// Pages work without this file; with it, times count down (a button waiting for one stays
// disabled until then) and a code's delivery updates in place.
(function () {
  "use strict";

  function pad(n) { return n < 10 ? "0" + n : String(n); }

  // <span data-countdown="ISO time" data-template="… %s …" data-done="text">: the template
  // with the m:ss left, then the done text.
  function countdowns() {
    var now = Date.now();
    document.querySelectorAll("[data-countdown]").forEach(function (el) {
      var left = Math.round((Date.parse(el.getAttribute("data-countdown")) - now) / 1000);
      if (left <= 0) {
        el.textContent = el.getAttribute("data-done") || "";
        el.removeAttribute("data-countdown");
        return;
      }
      var minutes = Math.floor(left / 60);
      var template = el.getAttribute("data-template") || "%s";
      el.textContent = template.replace("%s", minutes + ":" + pad(left % 60));
    });
    // <button data-until="ISO time">: disabled until then (without this file the page says
    // when it works, and pressing it sooner says so again).
    document.querySelectorAll("button[data-until]").forEach(function (button) {
      var early = Date.parse(button.getAttribute("data-until")) > now;
      button.disabled = early;
      if (!early) { button.removeAttribute("data-until"); }
    });
  }

  // <p data-delivery-case="rc_..." data-delivery="sending" data-text-sent="..." ...>
  function watchDelivery() {
    var el = document.querySelector("[data-delivery-case]");
    if (!el) { return; }
    var state = el.getAttribute("data-delivery");
    if (state !== "sending" && state !== "retrying") { return; }
    var url = "/v1/recovery/" + encodeURIComponent(el.getAttribute("data-delivery-case"));
    fetch(url, { headers: { "Accept": "application/json" }, credentials: "same-origin" })
      .then(function (response) { return response.ok ? response.json() : null; })
      .then(function (body) {
        if (body && body.delivery && body.delivery !== state) {
          var text = el.getAttribute("data-text-" + body.delivery);
          if (text) { el.textContent = text; }
          el.setAttribute("data-delivery", body.delivery);
          state = body.delivery;
        }
      })
      .catch(function () { /* the next poll tries again */ })
      .finally(function () {
        if (state === "sending" || state === "retrying") { setTimeout(watchDelivery, 2000); }
      });
  }

  // <div data-more> fields (empty ones hidden) and <button data-add-more hidden>: the button
  // shows the next one, until none is left. Without this file every field shows.
  function moreFields() {
    var button = document.querySelector("button[data-add-more]");
    if (!button) { return; }
    function hiddenOnes() {
      return Array.prototype.filter.call(
        document.querySelectorAll("[data-more]"), function (el) { return el.hidden; });
    }
    document.querySelectorAll("[data-more]").forEach(function (el) {
      var input = el.querySelector("input");
      el.hidden = !(input && input.value);
    });
    button.hidden = hiddenOnes().length === 0;
    button.addEventListener("click", function () {
      var next = hiddenOnes()[0];
      if (!next) { return; }
      next.hidden = false;
      next.querySelector("input").focus();
      button.hidden = hiddenOnes().length === 0;
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    moreFields();
    countdowns();
    setInterval(countdowns, 1000);
    setTimeout(watchDelivery, 1500);
  });
})();
