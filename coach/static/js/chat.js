// Chat over the page's WebSocket (htmx's ws extension on <body> keeps it open and swaps what
// the server pushes). This adds what the extension does not know about: telling the server
// how far each conversation on the page goes (so a reconnect replays exactly what is missing),
// dropping a pushed message the page already shows, typing and read signals, presence
// heartbeats, and sending the composer over the socket when it is open (a plain POST when not).
(function () {
  "use strict";

  var socket = null;
  var open = false;
  var typingSentAt = 0;
  var typingTimers = {};

  function send(frame) {
    if (!socket || !open) { return false; }
    socket.send(JSON.stringify(frame), document.body);
    return true;
  }

  function lastSeq(list) {
    var seq = 0;
    list.querySelectorAll("[data-seq]").forEach(function (el) {
      seq = Math.max(seq, parseInt(el.getAttribute("data-seq"), 10) || 0);
    });
    return seq;
  }

  function liveLists() {
    return Array.prototype.slice.call(document.querySelectorAll("[data-live][data-conversation]"));
  }

  function resumeAll() {
    liveLists().forEach(function (list) {
      send({ type: "resume", conversation: list.getAttribute("data-conversation"), after: lastSeq(list) });
    });
  }

  function markRead() {
    if (document.visibilityState !== "visible") { return; }
    liveLists().forEach(function (list) {
      var seq = lastSeq(list);
      if (seq > (parseInt(list.getAttribute("data-read"), 10) || 0)) {
        list.setAttribute("data-read", String(seq));
        send({ type: "read", conversation: list.getAttribute("data-conversation"), seq: seq });
      }
    });
  }

  function presence() {
    send({ type: "ping", state: document.visibilityState === "visible" ? "online" : "away" });
  }

  function scrollDown(list, force) {
    var nearBottom = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
    if (force || nearBottom) { list.scrollTop = list.scrollHeight; }
  }

  // Messages the page already has (a replay overlapping a push) are dropped before htmx swaps.
  htmx.defineExtension("chat", {
    transformResponse: function (text, xhr) {
      if (xhr || text.indexOf("msg-") < 0) { return text; }
      var template = document.createElement("template");
      template.innerHTML = text;
      template.content.querySelectorAll("[hx-swap-oob^='beforeend'] article[id^='msg-']").forEach(function (el) {
        if (document.getElementById(el.id)) { el.remove(); }
      });
      return template.innerHTML;
    }
  });

  document.body.addEventListener("htmx:wsOpen", function (event) {
    socket = event.detail.socketWrapper;
    open = true;
    resumeAll();
    markRead();
  });

  document.body.addEventListener("htmx:wsClose", function () { open = false; });

  document.body.addEventListener("htmx:wsAfterMessage", function () {
    liveLists().forEach(function (list) {
      var empty = list.querySelector(".empty");
      if (empty && list.querySelector("[data-seq]")) { empty.remove(); }
      scrollDown(list, false);
    });
    document.querySelectorAll("[data-typing]").forEach(function (el) {
      clearTimeout(typingTimers[el.id]);
      typingTimers[el.id] = setTimeout(function () { el.textContent = ""; }, 4000);
    });
    markRead();
  });

  // A boosted navigation brought a conversation into the page: ask for what it lacks.
  document.body.addEventListener("htmx:afterSettle", function () {
    liveLists().forEach(function (list) { scrollDown(list, true); });
    resumeAll();
    markRead();
  });

  document.addEventListener("DOMContentLoaded", function () {
    liveLists().forEach(function (list) { scrollDown(list, true); });
  });

  document.addEventListener("visibilitychange", function () {
    presence();
    markRead();
  });
  setInterval(presence, 20000);

  document.addEventListener("input", function (event) {
    var box = event.target.closest("[data-chat-composer] textarea");
    if (!box || Date.now() - typingSentAt < 2000) { return; }
    typingSentAt = Date.now();
    send({ type: "typing", conversation: box.getAttribute("data-conversation") });
  });

  // Enter sends, Shift+Enter starts a new line.
  document.addEventListener("keydown", function (event) {
    var box = event.target.closest("[data-chat-composer] textarea");
    if (box && event.key === "Enter" && !event.shiftKey && !event.isComposing) {
      event.preventDefault();
      box.form.requestSubmit();
    }
  });

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-chat-composer]");
    if (!form) { return; }
    var data = new FormData(form);
    var body = String(data.get("body") || "").trim();
    if (!body) { event.preventDefault(); return; }
    if (send({ type: "send", conversation: data.get("conversation"), body: body })) {
      event.preventDefault();
      event.stopPropagation();
      form.querySelector("textarea").value = "";
      var error = document.getElementById("chat-error");
      if (error) { error.textContent = ""; }
    }
    // Not connected: the form posts as a page request (and the page shows the message).
  }, true);
})();
