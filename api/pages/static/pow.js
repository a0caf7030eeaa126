// The proof of work of the recovery form (an ALTCHA v1 challenge: find the number n for which
// SHA-256(salt + n) is the challenge). When there were many requests for an account, the page
// comes back with a challenge on its form: this file solves it with WebCrypto, in this page,
// and sends the form again with the solution. Without JavaScript (or without WebCrypto, on a
// page that is not served over HTTPS) the page says when to try again instead.
(function () {
  "use strict";

  // How many hashes are in flight at once: WebCrypto answers each with a promise, and
  // waiting for them one by one would spend more time in the event loop than in SHA-256.
  var BATCH = 1024;

  function bytesOf(hex) {
    var out = new Uint8Array(hex.length / 2);
    for (var i = 0; i < out.length; i++) { out[i] = parseInt(hex.substr(i * 2, 2), 16); }
    return out;
  }

  function same(buffer, target) {
    var got = new Uint8Array(buffer);
    for (var i = 0; i < target.length; i++) { if (got[i] !== target[i]) { return false; } }
    return true;
  }

  // The number, or null when none up to maxNumber works. `progress(done, total)` is told now
  // and then.
  async function solve(challenge, progress) {
    var encoder = new TextEncoder();
    var target = bytesOf(challenge.challenge);
    var max = challenge.maxNumber !== undefined ? challenge.maxNumber : challenge.maxnumber;
    for (var start = 0; start <= max; start += BATCH) {
      var end = Math.min(start + BATCH - 1, max);
      var pending = [];
      for (var n = start; n <= end; n++) {
        pending.push(crypto.subtle.digest("SHA-256", encoder.encode(challenge.salt + n)));
      }
      var digests = await Promise.all(pending);
      for (var k = 0; k < digests.length; k++) {
        if (same(digests[k], target)) { return start + k; }
      }
      if (progress && start % (BATCH * 64) === 0) { progress(start, max); }
    }
    return null;
  }

  function payload(challenge, number) {
    return btoa(JSON.stringify({
      algorithm: challenge.algorithm,
      challenge: challenge.challenge,
      number: number,
      salt: challenge.salt,
      signature: challenge.signature,
    }));
  }

  window.ReclaimProofOfWork = { solve: solve, payload: payload };

  function start() {
    var form = document.querySelector("form[data-challenge]");
    if (!form || !window.crypto || !crypto.subtle || !window.TextEncoder) { return; }
    var challenge = JSON.parse(form.getAttribute("data-challenge"));
    var status = document.getElementById("challenge-status");
    var wait = document.getElementById("problem");
    if (status) {
      status.className = "notice";
      status.textContent = form.getAttribute("data-text-working");
    }
    if (wait) { wait.hidden = true; }
    solve(challenge, function (done, total) {
      if (status) {
        status.textContent = form.getAttribute("data-text-working") + " " +
          Math.min(99, Math.round((100 * done) / Math.max(total, 1))) + "%";
      }
    }).then(function (number) {
      if (number === null) {
        if (status) { status.textContent = ""; status.className = ""; }
        if (wait) { wait.hidden = false; }
        return;
      }
      form.querySelector("input[name=altcha]").value = payload(challenge, number);
      if (status) { status.textContent = form.getAttribute("data-text-sending"); }
      form.submit();
    });
  }

  document.addEventListener("DOMContentLoaded", start);
})();
