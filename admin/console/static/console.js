// Leadvault console: small progressive enhancements. Every page works without this file.
"use strict";
document.addEventListener("click", function (event) {
  // Copy buttons: <button data-copy="id-of-element">.
  var button = event.target.closest ? event.target.closest("button[data-copy]") : null;
  if (!button) return;
  event.preventDefault();
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source || !navigator.clipboard) return;
  navigator.clipboard.writeText(source.value || source.textContent).then(function () {
    var done = button.getAttribute("data-copied");
    if (done) {
      var label = button.textContent;
      button.textContent = done;
      setTimeout(function () { button.textContent = label; }, 2000);
    }
  });
});
document.addEventListener("click", function (event) {
  // Print buttons: <button data-print>.
  var button = event.target.closest ? event.target.closest("button[data-print]") : null;
  if (button) { event.preventDefault(); window.print(); }
});
document.addEventListener("DOMContentLoaded", function () {
  // "Choose every lead on this page": a checkbox that only exists with this script.
  document.querySelectorAll("input[data-select-all]").forEach(function (all) {
    var name = all.getAttribute("data-select-all");
    var form = all.form || all.closest("form");
    if (!form) return;
    all.hidden = false;
    all.addEventListener("change", function () {
      form.querySelectorAll('input[type=checkbox][name="' + name + '"]').forEach(function (box) {
        box.checked = all.checked;
      });
    });
  });
});
// Copy buttons are hidden until this script runs (without it, select the text and copy).
document.addEventListener("DOMContentLoaded", function () {
  if (!navigator.clipboard) return;
  var buttons = document.querySelectorAll("button[data-copy][hidden]");
  for (var i = 0; i < buttons.length; i++) buttons[i].hidden = false;
});
