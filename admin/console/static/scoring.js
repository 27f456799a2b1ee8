// The rules editor: keep the line-number gutter as long as the text (works without this file
// for the lines the page was rendered with).
"use strict";
document.addEventListener("DOMContentLoaded", function () {
  var area = document.getElementById("rules-text");
  var gutter = document.querySelector(".editor .gutter");
  if (!area || !gutter) return;
  function renumber() {
    var lines = area.value.split("\n").length + 2;
    if (lines > area.rows) area.rows = lines;
    var numbers = [];
    for (var i = 1; i <= area.rows; i++) numbers.push(i);
    gutter.textContent = numbers.join("\n") + "\n";
  }
  area.addEventListener("input", renumber);
  area.addEventListener("scroll", function () { gutter.scrollTop = area.scrollTop; });
});
