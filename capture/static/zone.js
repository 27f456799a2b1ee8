// The visitor's time zone goes with the hosted form (as the widget sends it), so the
// preference center and mails show dates and times in it.
(function () {
  "use strict";
  var field = document.querySelector("form.lv-form input[name=time_zone]");
  if (!field || field.value) return;
  try {
    field.value = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
  } catch (e) { /* an old browser: the instance's time zone is used */ }
})();
