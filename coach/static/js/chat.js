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
  var pending = {};  // conversation id -> { body, after }: sent over the socket, not back yet

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

  // At most one read signal a second: a busy channel would otherwise send one per arriving message
  // from every open page. The last one always goes (a timer sends what the pause held back).
  var readSentAt = 0;
  var readTimer = null;

  function markRead() {
    if (document.visibilityState !== "visible") { return; }
    var wait = 1000 - (Date.now() - readSentAt);
    if (wait > 0) {
      if (!readTimer) { readTimer = setTimeout(function () { readTimer = null; markRead(); }, wait); }
      return;
    }
    readSentAt = Date.now();
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

  function newestMessage(list) {
    var items = list.querySelectorAll("[data-seq]");
    return items.length ? items[items.length - 1] : null;
  }

  // After messages arrived: the composer is emptied once the message it sent is back (a message
  // lost with the connection, or refused, stays there to send again); "Seen" speaks of my newest
  // message, so it shows only while the newest message is mine, and a new one of mine empties it
  // until the other member reads that too.
  function afterMessages(arrived) {
    liveLists().forEach(function (list) {
      var id = list.getAttribute("data-conversation");
      var last = newestMessage(list);
      var seq = last ? parseInt(last.getAttribute("data-seq"), 10) || 0 : 0;
      var mine = last !== null && last.classList.contains("mine");
      var receipt = document.getElementById("receipt-" + id);
      if (arrived && mine && seq > (parseInt(list.getAttribute("data-newest"), 10) || 0) && receipt) {
        receipt.textContent = "";
      }
      list.setAttribute("data-newest", String(seq));
      if (receipt) { receipt.classList.toggle("receipt-off", !mine); }
      var waiting = pending[id];
      if (waiting && mine && seq > waiting.after) {
        delete pending[id];
        var box = document.querySelector("form[data-chat-composer] textarea[data-conversation='" + id + "']");
        if (box && box.value.trim() === waiting.body) { box.value = ""; }
      }
    });
  }

  // Before htmx swaps a push: messages the page already has (a replay overlapping a push) are
  // dropped, and so are swaps whose target this page does not show (a conversation's badge on a
  // page without the list, a presence dot of someone not on it): htmx would log each as an error.
  htmx.defineExtension("chat", {
    transformResponse: function (text, xhr) {
      if (xhr) { return text; }
      var template = document.createElement("template");
      template.innerHTML = text;
      template.content.querySelectorAll("[hx-swap-oob^='beforeend'] article[id^='msg-']").forEach(function (el) {
        if (document.getElementById(el.id)) { el.remove(); }
      });
      Array.prototype.slice.call(template.content.children).forEach(function (el) {
        var oob = el.getAttribute("hx-swap-oob") || "";
        var colon = oob.indexOf(":");
        var target = colon >= 0 ? oob.slice(colon + 1) : (el.id ? "#" + CSS.escape(el.id) : "");
        if (target && !document.querySelector(target)) { el.remove(); }
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

  document.body.addEventListener("htmx:wsClose", function () {
    open = false;
    pending = {};  // what was not back may be lost: the composer still has it, and may send it again
  });

  // A pushed signal (e.g. "posts-changed": someone posted in a space of mine) becomes an event on
  // <body> that parts of the page listen for (the feed's "N new posts" bar asks at once).
  function relaySignal() {
    var signal = document.getElementById("live-signal");
    var name = signal && signal.getAttribute("data-signal");
    if (name) {
      signal.removeAttribute("data-signal");
      htmx.trigger(document.body, name);
    }
  }

  document.body.addEventListener("htmx:wsAfterMessage", function () {
    relaySignal();
    liveLists().forEach(function (list) {
      var empty = list.querySelector(".empty");
      if (empty && list.querySelector("[data-seq]")) { empty.remove(); }
      scrollDown(list, false);
    });
    document.querySelectorAll("[data-typing]").forEach(function (el) {
      clearTimeout(typingTimers[el.id]);
      typingTimers[el.id] = setTimeout(function () { el.textContent = ""; }, 4000);
    });
    var error = document.getElementById("chat-error");
    if (error && error.textContent.trim()) { pending = {}; }  // refused: the text stays, to correct
    afterMessages(true);
    markRead();
  });

  // The layout renders the nav badge empty and the socket fills it; a boosted navigation renders
  // the layout again, so the new page keeps the badge the socket last pushed.
  var badge = null;
  document.body.addEventListener("htmx:beforeSwap", function () {
    badge = document.getElementById("chat-unread");
  });
  document.body.addEventListener("htmx:afterSwap", function () {
    var fresh = document.getElementById("chat-unread");
    if (badge && fresh && fresh !== badge && !fresh.textContent.trim()) { fresh.replaceWith(badge); }
    badge = null;
  });

  // A boosted navigation brought a conversation into the page: ask for what it lacks.
  document.body.addEventListener("htmx:afterSettle", function () {
    liveLists().forEach(function (list) { scrollDown(list, true); });
    afterMessages(false);
    resumeAll();
    markRead();
  });

  document.addEventListener("DOMContentLoaded", function () {
    liveLists().forEach(function (list) { scrollDown(list, true); });
    afterMessages(false);
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
    var conversation = String(data.get("conversation"));
    if (!body) { event.preventDefault(); return; }
    if (pending[conversation] && pending[conversation].body === body) {
      event.preventDefault();  // on its way already (Enter pressed twice)
      event.stopPropagation();
      return;
    }
    if (send({ type: "send", conversation: conversation, body: body })) {
      event.preventDefault();
      event.stopPropagation();
      var list = document.getElementById("messages-" + conversation);
      pending[conversation] = { body: body, after: list ? lastSeq(list) : 0 };
      var error = document.getElementById("chat-error");
      if (error) { error.textContent = ""; }
    }
    // Not connected: the form posts as a page request (and the page shows the message).
  }, true);
})();
