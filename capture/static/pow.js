// Solves the form's ALTCHA proof-of-work challenge before it is submitted.
(function () {
  "use strict";
  var form = document.querySelector("form[data-lv-challenge]");
  if (!form || !window.crypto || !crypto.subtle) return;
  var challenge = JSON.parse(form.getAttribute("data-lv-challenge"));
  var field = form.querySelector("input[name=altcha]");
  var enc = new TextEncoder();
  function hex(buffer) {
    return Array.prototype.map.call(new Uint8Array(buffer), function (b) {
      return ("0" + b.toString(16)).slice(-2);
    }).join("");
  }
  async function solve() {
    for (var n = 0; n <= challenge.maxnumber; n++) {
      var digest = await crypto.subtle.digest("SHA-256", enc.encode(challenge.salt + n));
      if (hex(digest) === challenge.challenge) return n;
    }
    return null;
  }
  var solved = solve().then(function (number) {
    field.value = btoa(JSON.stringify({
      algorithm: challenge.algorithm, challenge: challenge.challenge, number: number,
      salt: challenge.salt, signature: challenge.signature
    }));
  });
  form.addEventListener("submit", function (event) {
    if (field.value) return;
    event.preventDefault();
    solved.then(function () { form.submit(); });
  });
})();
