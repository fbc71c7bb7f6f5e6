// The time-zone picker: a form shown for the first time presets its zone on the server (from the browser's
// language region, else UTC) and marks the box `data-tz-preset="<that zone>"`. Here the browser's own zone
// (Intl) takes its place while the box still holds the preset, that is, until the person picks one; the
// hint under the box then says where the zone came from. Loaded on every page and run again on what htmx
// swaps in. Without this script the server's preset and its hint stand.
(function () {
  "use strict";

  // Names a browser may report for UTC itself; the picker offers it as "UTC" only.
  var UTC_ALIASES = /^(Etc\/)?(UTC|UCT|GMT|GMT0|Universal|Zulu|Greenwich)$/;

  function browserZone() {
    var zone = "";
    try {
      zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "";
    } catch (error) {
      return "";
    }
    return UTC_ALIASES.test(zone) ? "UTC" : zone;
  }

  // The zone as the list offers it: its current name when the browser reports an old one the option marks
  // (Chromium in India says Asia/Calcutta: data-current="Asia/Kolkata"); "" when the list lacks it.
  function offered(input, zone) {
    var list = input.list || document.getElementById(input.getAttribute("list"));
    if (!list) { return ""; }
    for (var i = 0; i < list.options.length; i += 1) {
      if (list.options[i].value === zone) { return list.options[i].getAttribute("data-current") || zone; }
    }
    return "";
  }

  function fill(root) {
    var zone = browserZone();
    if (!zone) { return; }
    var boxes = (root || document).querySelectorAll("input[data-tz-preset]");
    for (var i = 0; i < boxes.length; i += 1) {
      var input = boxes[i];
      var shown = offered(input, zone);
      if (input.value !== input.getAttribute("data-tz-preset") || !shown) { continue; }
      input.value = shown;
      input.setAttribute("data-tz-preset", shown);
      var field = input.closest(".field");
      var hint = field && field.querySelector(".hint");
      if (!hint && field) {
        hint = document.createElement("small");
        hint.className = "hint";
        field.appendChild(hint);
      }
      if (hint) { hint.textContent = "Your browser's time zone. Choose another if you are elsewhere."; }
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { fill(document); });
  } else {
    fill(document);
  }
  document.addEventListener("htmx:load", function (event) { fill(event.target); });
}());
