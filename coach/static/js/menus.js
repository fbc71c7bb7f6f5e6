// The header's <details> menus: they open and close by their summary without this file. With it, opening one
// closes the others, and a click outside or Escape closes an open one (focus goes back to its summary).
(function () {
  "use strict";
  function menus() { return document.querySelectorAll("details.menu[open]"); }
  function close(except) {
    menus().forEach(function (menu) { if (menu !== except) { menu.open = false; } });
  }
  document.addEventListener("toggle", function (event) {
    var menu = event.target;
    if (menu instanceof HTMLDetailsElement && menu.classList.contains("menu") && menu.open) { close(menu); }
  }, true);
  document.addEventListener("click", function (event) {
    var inside = event.target instanceof Element ? event.target.closest("details.menu") : null;
    close(inside);
    // A link chosen in a menu: the boosted navigation keeps the header, so the menu is closed by hand.
    if (inside && event.target.closest(".menu-panel a")) { inside.open = false; }
  });
  document.addEventListener("keydown", function (event) {
    if (event.key !== "Escape") { return; }
    menus().forEach(function (menu) {
      var hadFocus = menu.contains(document.activeElement);
      menu.open = false;
      if (hadFocus) { menu.querySelector("summary").focus(); }
    });
  });
})();
