// Characters left under a review's or a reply's text box: any <textarea data-count="<id>" maxlength="n"> writes
// "n left" into the element with that id as one types. Delegated from the document, so boxes that htmx swaps in
// later count too. Without JavaScript the hint under the box says the limit, and the server checks it.
(function () {
  "use strict";

  function update(box) {
    var out = document.getElementById(box.getAttribute("data-count"));
    var max = parseInt(box.getAttribute("maxlength"), 10);
    if (!out || !max) return;
    var left = max - box.value.length;
    out.textContent = left.toLocaleString() + (left === 1 ? " character left" : " characters left");
    out.classList.toggle("over", left < 0);
  }

  document.addEventListener("input", function (event) {
    if (event.target.matches && event.target.matches("textarea[data-count]")) update(event.target);
  });
  function all() { document.querySelectorAll("textarea[data-count]").forEach(update); }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", all);
  else all();
  document.addEventListener("htmx:afterSettle", all);
})();
