// Chat over the page's WebSocket (htmx's ws extension on <body> keeps it open and swaps what
// the server pushes). This adds what the extension does not know about: telling the server
// how far each conversation on the page goes (so a reconnect replays exactly what is missing),
// dropping a pushed message the page already shows, typing and read signals, presence
// heartbeats, and sending the composer over the socket when it is open (a plain POST when not).
// A lost connection shows: a status line by the composer, presence dots greyed (nobody's presence can
// be known meanwhile), and what is written while the browser is offline waits on the page as
// "Sending…", to go over the socket once it is back (with the client id it got, so it is stored once).
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

  // Which conversations this page shows, each up to its newest message, and no others (the list is
  // empty on a page without one): the server replays what a list lacks, follows those, and stops
  // following what an earlier page showed, so that conversation's messages count in the badge.
  // The page also asks for the presence of whom it shows: its dots were drawn before the socket
  // followed them (at render, or before a lost connection greyed them), and presence travels only on
  // changes, so a change in between would otherwise stay unseen until the next one.
  function sendView() {
    var lists = liveLists();
    var frame = { type: "view", conversations: lists.map(function (list) {
      return { conversation: list.getAttribute("data-conversation"), after: lastSeq(list) };
    }) };
    if (lists.length) { frame.presence = true; }
    send(frame);
  }

  // Each message gets an id of its own before it is first sent, kept while it may be sent again (a
  // reconnect, the form fallback): the server stores one message per id. A new id once the text
  // changes, so a message lost with the connection and then rewritten is not taken for the old one.
  var sentBodies = {};  // client id -> what was sent with it (text and media)
  var sentTexts = {};  // client id -> the text alone

  function newClientId() {
    var bytes = crypto.getRandomValues(new Uint8Array(16));  // randomUUID() needs a secure context
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(bytes, function (b) { return (b + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" +
      hex.slice(20);
  }

  function clientIdFor(form, body) {
    var field = form.querySelector("input[data-client-id]");
    if (!field) { return null; }
    if (!field.value || (field.value in sentBodies && sentBodies[field.value] !== body)) {
      field.value = newClientId();
    }
    sentBodies[field.value] = body;
    return field.value;
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
      var grew = arrived && seq > (parseInt(list.getAttribute("data-newest"), 10) || 0);
      if (grew && mine) {
        if (receipt) { receipt.textContent = ""; }
        scrollDown(list, true);  // what I sent shows, wherever I had scrolled to
      }
      var typing = document.getElementById("typing-" + id);
      if (grew && !mine && typing) { typing.textContent = ""; }  // their message came: no longer typing
      list.setAttribute("data-newest", String(seq));
      if (receipt) { receipt.classList.toggle("receipt-off", !mine); }
      var box = document.querySelector("form[data-chat-composer] textarea[data-conversation='" + id + "']");
      var field = box && box.form.querySelector("input[data-client-id]");
      var sent = field && Object.prototype.hasOwnProperty.call(sentBodies, field.value) ? field.value : null;
      if (sent && list.querySelector("article.mine[data-client-id='" + sent + "']")) {
        // The composer's message is on the page (its echo, or the replay after a reconnect).
        delete pending[id];
        if (box.value.trim() === sentTexts[sent]) { box.value = ""; }
        box.form.querySelectorAll("input[name=attachments]:checked").forEach(function (c) { c.checked = false; });
        var attach = box.form.querySelector("details.attach");
        if (attach) { attach.open = false; }
        field.value = newClientId();  // the next message's
      } else if (!field && pending[id] && mine && seq > pending[id].after) {
        var waiting = pending[id];
        delete pending[id];
        if (box && box.value.trim() === waiting.body) { box.value = ""; }
      }
    });
  }

  // --- the connection's state, and messages written while offline ----------------------------------
  var everOpen = false;  // a page whose socket never opened (live updates paused) posts its forms
  var queued = [];  // send frames written while offline, in order, until each is back from the server

  function connectionDown() { return everOpen && (!open || !navigator.onLine); }

  function showConnection() {
    var down = connectionDown();
    var status = document.getElementById("chat-status");
    if (status) {
      status.textContent = !down ? "" : navigator.onLine ? "Connection lost — reconnecting…" :
        "Offline — reconnecting… Messages you write now are sent when you are back online.";
      status.hidden = !down;
    }
    document.querySelectorAll("section.chat").forEach(function (el) { el.classList.toggle("chat-offline", down); });
    document.querySelectorAll(".presence").forEach(function (dot) { dot.classList.toggle("presence-stale", down); });
  }

  // A message written while offline: shown at once as mine, "Sending…", and the composer is free again.
  function hold(form, frame) {
    var list = document.getElementById("messages-" + frame.conversation);
    if (list) {
      var bubble = document.createElement("article");
      bubble.className = "message mine pending";
      bubble.id = "pending-" + frame.client_id;
      var meta = document.createElement("p");
      meta.className = "message-meta";
      var who = document.createElement("strong");
      who.textContent = "You";
      var note = document.createElement("span");
      note.className = "pending-note";
      note.textContent = "Sending…";
      meta.append(who, " ", note);
      bubble.append(meta);
      if (frame.body) {
        var text = document.createElement("p");
        text.className = "message-body pre";
        text.textContent = frame.body;
        bubble.append(text);
      }
      if (frame.attachments.length) {
        var extra = document.createElement("p");
        extra.className = "muted";
        extra.textContent = frame.attachments.length === 1 ? "With 1 attachment" :
          "With " + frame.attachments.length + " attachments";
        bubble.append(extra);
      }
      var empty = list.querySelector(".empty");
      if (empty) { empty.remove(); }
      list.append(bubble);
      scrollDown(list, true);
    }
    queued.push(frame);
    var box = form.querySelector("textarea");
    if (box) { box.value = ""; }
    form.querySelectorAll("input[name=attachments]:checked").forEach(function (c) { c.checked = false; });
    var field = form.querySelector("input[data-client-id]");
    if (field) { field.value = newClientId(); }  // the next message's
  }

  // Everything held goes, in order, whenever the socket is (back) open; a frame sent twice (a second
  // drop before it came back) is stored once by its client id.
  function flush() {
    if (!open || !navigator.onLine) { return; }
    queued.forEach(function (frame) { send(frame); });
  }

  // A held message is back (the server's copy is on the page): its bubble goes.
  function settleHeld() {
    queued = queued.filter(function (frame) {
      if (!document.querySelector("article.mine[data-client-id='" + frame.client_id + "']")) { return true; }
      var bubble = document.getElementById("pending-" + frame.client_id);
      if (bubble) { bubble.remove(); }
      return false;
    });
  }

  window.addEventListener("offline", showConnection);
  window.addEventListener("online", function () {
    showConnection();
    flush();
  });

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
    everOpen = true;
    showConnection();
    sendView();
    flush();
    markRead();
  });

  document.body.addEventListener("htmx:wsClose", function () {
    open = false;
    pending = {};  // what was not back may be lost: the composer still has it, and may send it again
    showConnection();
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

  // Whether a list was scrolled to its end is known only before the push makes it longer.
  var wasAtEnd = {};
  document.body.addEventListener("htmx:wsBeforeMessage", function () {
    wasAtEnd = {};
    liveLists().forEach(function (list) {
      wasAtEnd[list.id] = list.scrollHeight - list.scrollTop - list.clientHeight < 120;
    });
  });

  document.body.addEventListener("htmx:wsAfterMessage", function () {
    relaySignal();
    liveLists().forEach(function (list) {
      var empty = list.querySelector(".empty");
      if (empty && list.querySelector("[data-seq]")) { empty.remove(); }
      scrollDown(list, wasAtEnd[list.id] !== false);
    });
    document.querySelectorAll("[data-typing]").forEach(function (el) {
      clearTimeout(typingTimers[el.id]);
      typingTimers[el.id] = setTimeout(function () { el.textContent = ""; }, 4000);
    });
    var error = document.getElementById("chat-error");
    if (error && error.textContent.trim()) { pending = {}; }  // refused: the text stays, to correct
    settleHeld();
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

  // A boosted navigation changed the page (a conversation came, or went): say what it shows now.
  document.body.addEventListener("htmx:afterSettle", function () {
    liveLists().forEach(function (list) { scrollDown(list, true); });
    afterMessages(false);
    sendView();
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
    var media = data.getAll("attachments").map(String);  // a photo or a clip may go without words
    if (!body && !media.length) { event.preventDefault(); return; }
    if (pending[conversation] && pending[conversation].body === body && !media.length) {
      event.preventDefault();  // on its way already (Enter pressed twice)
      event.stopPropagation();
      return;
    }
    var clientId = clientIdFor(form, JSON.stringify([body, media]));  // the form fallback posts it too
    sentTexts[clientId] = body;
    if (everOpen && !navigator.onLine) {  // neither the socket nor a form would reach the server now
      event.preventDefault();
      event.stopPropagation();
      hold(form, { type: "send", conversation: conversation, body: body, attachments: media, client_id: clientId });
      return;
    }
    if (send({ type: "send", conversation: conversation, body: body, attachments: media, client_id: clientId })) {
      event.preventDefault();
      event.stopPropagation();
      var list = document.getElementById("messages-" + conversation);
      pending[conversation] = { body: body, after: list ? lastSeq(list) : 0 };
      var error = document.getElementById("chat-error");
      if (error) { error.textContent = ""; }
    }
    // Not connected: the form posts as a page request (and the page shows the message).
  }, true);

  // The form's post did not reach the server (the network went as it was sent): the message waits on
  // the page like one written offline. Its client id is the one the post carried, so if the post did
  // get through after all, the server still stores it once.
  document.body.addEventListener("htmx:sendError", function (event) {
    var form = event.detail.elt && event.detail.elt.closest && event.detail.elt.closest("form[data-chat-composer]");
    if (!form) { return; }
    var data = new FormData(form);
    var field = form.querySelector("input[data-client-id]");
    if (!field || !field.value) { return; }
    hold(form, { type: "send", conversation: String(data.get("conversation")),
                 body: String(data.get("body") || "").trim(), attachments: data.getAll("attachments").map(String),
                 client_id: field.value });
    showConnection();
  });
})();
