// Counts the click with a POST (which link scanners do not make), then goes on to
// the target, replacing this page in the history so "back" returns to the mail.
(function () {
  "use strict";
  var form = document.getElementById("lv-click");
  if (!form || !window.fetch || !window.URLSearchParams) {
    return; // the button posts the form and the server redirects
  }
  var target = form.getAttribute("data-target");
  var go = function () { window.location.replace(target); };
  fetch(form.action, {
    method: "POST",
    body: new URLSearchParams({ js: "1" }),
    credentials: "omit",
    keepalive: true
  }).then(go, go);
})();
