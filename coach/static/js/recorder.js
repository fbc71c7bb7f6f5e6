// Recording a session room (the coach's page) and the "Recording 03:12" indicator (everyone's page).
//
// The coach's browser composes the call: a 1280x720 canvas with the video of every participant who agreed to be
// recorded (a grid, names written under each), their audio mixed with WebAudio, recorded by MediaRecorder in
// 2 s slices. Slices are buffered and sent to storage as a part once the buffer reaches the part size (one part
// at a time, in order, with retries; a fresh URL after a 403), so a crash loses at most the buffered part. The
// server says when a recording starts or stops (room:message events from room.js), and the panel is fetched
// again when consent changes. Everything lives outside the panel's DOM, which htmx replaces.
(function () {
  "use strict";

  if (window.coachRecorder) { return; }  // loaded again by a boosted swap's head

  var WIDTH = 1280;
  var HEIGHT = 720;
  var FPS = 25;
  var SLICE_MS = 2000;
  var ALIVE_MS = 30000;
  var RETRIES = 5;
  // About 430 MB an hour: an hour's session fits the default largest file (MEDIA_MAX_BYTES, 500 MB).
  var VIDEO_BPS = 900000;
  var AUDIO_BPS = 64000;

  var active = null;  // the Recorder of this page while it records
  var shown = null;  // when the recording the indicator shows started (ms), or null
  var ticker = null;
  var lastNote = null;  // the recorder's last words, kept across panel swaps

  function panel() { return document.querySelector("[data-recording-panel]"); }

  function newKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
  }

  function sleep(ms) { return new Promise(function (resolve) { setTimeout(resolve, ms); }); }

  function api(url, token, body, key) {
    var headers = { "Content-Type": "application/json", "X-CSRFToken": token, "Accept": "application/json" };
    if (key) { headers["Idempotency-Key"] = key; }
    return fetch(url, { method: "POST", credentials: "same-origin", headers: headers,
      body: JSON.stringify(body || {}) }).then(function (response) {
      return response.json().catch(function () { return {}; }).then(function (data) {
        if (!response.ok) {
          var error = new Error(data.error || "The server answered " + response.status + ".");
          error.status = response.status;
          throw error;
        }
        return data;
      });
    });
  }

  // --- the indicator (every participant) ----------------------------------------------------------------

  function two(n) { return (n < 10 ? "0" : "") + n; }

  function tick() {
    var p = panel();
    var indicator = p && p.querySelector("[data-recording-indicator]");
    if (!indicator) { return; }
    indicator.hidden = shown === null;
    if (shown === null) { return; }
    var seconds = Math.max(0, Math.floor((Date.now() - shown) / 1000));
    var text = (seconds >= 3600 ? Math.floor(seconds / 3600) + ":" : "") + two(Math.floor(seconds / 60) % 60) + ":" +
      two(seconds % 60);
    indicator.querySelector("[data-recording-clock]").textContent = text;
  }

  function showRecording(startedAt) {
    var at = startedAt ? Date.parse(startedAt) : NaN;
    shown = isNaN(at) ? Date.now() : at;
    if (!ticker) { ticker = setInterval(tick, 1000); }
    tick();
  }

  function hideRecording() {
    shown = null;
    if (ticker) { clearInterval(ticker); ticker = null; }
    tick();
  }

  function say(text, link) {
    lastNote = { text: text, link: link || null };
    var p = panel();
    var status = p && p.querySelector("[data-record-status]");
    if (!status) { return; }
    status.textContent = text;
    if (link) {
      var a = document.createElement("a");
      a.href = link;
      a.textContent = "Open the recording";
      status.appendChild(document.createTextNode(" "));
      status.appendChild(a);
    }
  }

  // After a page load or a swap of the panel: the indicator, the buttons and my last words as they are now.
  function sync() {
    var p = panel();
    if (!p) { return; }
    if (p.getAttribute("data-running")) { showRecording(p.getAttribute("data-started-at")); } else { hideRecording(); }
    var start = p.querySelector("[data-record-start]");
    var stop = p.querySelector("[data-record-stop]");
    if (start && stop && active) {
      start.hidden = true;
      stop.hidden = false;
      stop.disabled = active.stopping;
    }
    if (lastNote) { say(lastNote.text, lastNote.link); }
  }

  function refreshPanel() {
    var p = panel();
    if (!p || !window.htmx) { return; }
    window.htmx.ajax("GET", p.getAttribute("data-panel-url"), { target: "#room-recording", swap: "outerHTML" });
  }

  // --- the recorder (the coach) -----------------------------------------------------------------------

  function agreedMembers() {
    var found = {};
    var p = panel();
    if (!p) { return found; }
    p.querySelectorAll("li.consent-given[data-consent-member]").forEach(function (li) {
      found[li.getAttribute("data-consent-member")] = true;
    });
    return found;
  }

  // Everyone's stream: room.js's hook, or the call's <video> tiles (each inside an element with data-member).
  function streams() {
    if (window.coachRoom && window.coachRoom.streams) { return window.coachRoom.streams(); }
    var list = [];
    document.querySelectorAll("#room video").forEach(function (video) {
      var tile = video.closest("[data-member]");
      if (video.srcObject && tile) {
        list.push({ member: tile.getAttribute("data-member"), name: tile.getAttribute("data-name") || "",
          stream: video.srcObject, local: tile.hasAttribute("data-local") });
      }
    });
    return list;
  }

  function Recorder(plan, token, audio) {
    this.plan = plan;
    this.token = token;
    this.partBytes = plan.part_bytes;
    this.number = 0;
    this.chunks = [];
    this.buffered = 0;
    this.chain = Promise.resolve();
    this.stopping = false;
    this.failed = null;
    this.sources = {};  // member → {video, audio, name, stream}
    this.canvas = document.createElement("canvas");
    this.canvas.width = WIDTH;
    this.canvas.height = HEIGHT;
    this.ctx = this.canvas.getContext("2d");
    this.audio = audio;
    this.mix = this.audio.createMediaStreamDestination();
    // A silent source keeps the audio track producing samples while nobody speaks.
    var silence = this.audio.createConstantSource ? this.audio.createConstantSource() : null;
    if (silence) { silence.offset.value = 0; silence.connect(this.mix); silence.start(); }
    this.refreshSources();
    var tracks = this.canvas.captureStream(FPS).getVideoTracks().concat(this.mix.stream.getAudioTracks());
    var types = ["video/webm;codecs=vp8,opus", "video/webm;codecs=vp9,opus", "video/webm"];
    var type = types.filter(function (t) { return window.MediaRecorder.isTypeSupported(t); })[0] || "";
    this.recorder = new window.MediaRecorder(new MediaStream(tracks),
      type ? { mimeType: type, videoBitsPerSecond: VIDEO_BPS, audioBitsPerSecond: AUDIO_BPS } : {});
    var self = this;
    this.recorder.ondataavailable = function (event) { self.take(event.data); };
    this.recorder.onstop = function () { self.flush(true); };
    this.recorder.start(SLICE_MS);
    this.drawer = setInterval(function () { self.draw(); }, Math.round(1000 / FPS));
    this.alive = setInterval(function () { self.heartbeat(); }, ALIVE_MS);
  }

  // Which streams go into the recording: those of participants who agreed; others are left out entirely.
  Recorder.prototype.refreshSources = function () {
    var agreed = agreedMembers();
    var self = this;
    var wanted = {};
    streams().forEach(function (s) {
      if (!s.stream || !s.member || !agreed[s.member]) { return; }
      wanted[s.member] = true;
      var known = self.sources[s.member];
      var audioIds = s.stream.getAudioTracks().map(function (t) { return t.id; }).join(",");
      if (known && known.stream === s.stream && known.audioIds === audioIds) {
        known.name = s.name || known.name;
        return;
      }
      if (known) { self.drop(s.member); }
      var video = document.createElement("video");
      video.muted = true;
      video.playsInline = true;
      video.srcObject = s.stream;
      video.play().catch(function () { /* drawn when it can play */ });
      var audio = null;
      if (s.stream.getAudioTracks().length) {
        audio = self.audio.createMediaStreamSource(new MediaStream(s.stream.getAudioTracks()));
        audio.connect(self.mix);
      }
      self.sources[s.member] = { video: video, audio: audio, name: s.name || "", stream: s.stream, audioIds: audioIds };
    });
    Object.keys(this.sources).forEach(function (member) { if (!wanted[member]) { self.drop(member); } });
  };

  Recorder.prototype.drop = function (member) {
    var source = this.sources[member];
    if (!source) { return; }
    if (source.audio) { source.audio.disconnect(); }
    source.video.srcObject = null;
    delete this.sources[member];
  };

  Recorder.prototype.draw = function () {
    var ctx = this.ctx;
    ctx.fillStyle = "#111";
    ctx.fillRect(0, 0, WIDTH, HEIGHT);
    var list = Object.keys(this.sources).map(function (m) { return this.sources[m]; }, this);
    if (!list.length) { return; }
    var cols = Math.ceil(Math.sqrt(list.length));
    var rows = Math.ceil(list.length / cols);
    var w = WIDTH / cols;
    var h = HEIGHT / rows;
    list.forEach(function (source, i) {
      var x = (i % cols) * w;
      var y = Math.floor(i / cols) * h;
      var video = source.video;
      if (video.readyState >= 2 && video.videoWidth) {
        var scale = Math.min(w / video.videoWidth, h / video.videoHeight);
        var dw = video.videoWidth * scale;
        var dh = video.videoHeight * scale;
        ctx.drawImage(video, x + (w - dw) / 2, y + (h - dh) / 2, dw, dh);
      }
      if (source.name) {
        ctx.font = "20px system-ui, sans-serif";
        var width = ctx.measureText(source.name).width + 16;
        ctx.fillStyle = "rgba(0, 0, 0, 0.6)";
        ctx.fillRect(x + 8, y + h - 40, width, 30);
        ctx.fillStyle = "#fff";
        ctx.fillText(source.name, x + 16, y + h - 18);
      }
    });
  };

  Recorder.prototype.take = function (blob) {
    if (!blob || !blob.size || this.failed) { return; }
    this.chunks.push(blob);
    this.buffered += blob.size;
    if (this.buffered >= this.partBytes) { this.flush(false); }
  };

  // Send what is buffered as the next part (every part but the last is at least the part size).
  Recorder.prototype.flush = function (last) {
    var self = this;
    if (this.buffered) {
      var blob = new Blob(this.chunks, { type: "video/webm" });
      this.chunks = [];
      this.buffered = 0;
      this.number += 1;
      var number = this.number;
      this.chain = this.chain.then(function () { return self.send(number, blob); });
    }
    if (last) {
      this.chain = this.chain.then(function () { return self.finish(); }, function (error) { return self.finish(error); });
    }
  };

  Recorder.prototype.send = function (number, blob) {
    var self = this;
    var attempt = 0;
    var once = function () {
      return api(self.plan.parts_url, self.token, { number: number, size: blob.size }).then(function (signed) {
        return fetch(signed.url, { method: "PUT", body: blob }).then(function (response) {
          if (!response.ok) {
            var error = new Error("Storage answered " + response.status + ".");
            error.status = response.status;
            error.storage = true;
            throw error;
          }
          return api(self.plan.parts_url + "/" + number + "/done", self.token);
        });
      }).catch(function (error) {
        // Told "already stored": the earlier try's "done" arrived, its answer did not.
        if (error.status === 409 && /already stored/.test(error.message)) { return; }
        attempt += 1;
        // The server's own refusals (stopped, out of order, no room, not allowed) are final; storage, the network,
        // a part not arrived whole (409 "send it again") and a busy server (5xx) get retries.
        var retry = error.storage || !error.status || error.status >= 500 ||
          (error.status === 409 && /send it again/.test(error.message));
        if (!retry || attempt > RETRIES) { throw error; }
        say("Connection trouble, sending part " + number + " again…");
        return sleep(1000 * Math.pow(2, attempt - 1)).then(once);
      });
    };
    return once().then(function () {
      if (!self.stopping) { say("Recording: " + number + (number === 1 ? " part" : " parts") + " saved."); }
    }, function (error) {
      // Refused for good (no room left, the largest file size): keep what was sent, unless it was stopped anyway.
      self.halt(error.message, !/has stopped/.test(error.message));
      throw error;
    });
  };

  Recorder.prototype.heartbeat = function () {
    var self = this;
    api(this.plan.alive_url, this.token).then(function (answer) {
      if (answer.status !== "recording") { self.halt("The recording was stopped."); }
    }).catch(function () { /* the next part or beat will tell */ });
  };

  // Stop asked by the coach: the recorder's last slice is sent, then the server completes the upload.
  Recorder.prototype.stop = function () {
    if (this.stopping) { return; }
    this.stopping = true;
    say("Saving the last part…");
    if (this.recorder.state !== "inactive") { this.recorder.stop(); } else { this.flush(true); }
  };

  Recorder.prototype.finish = function (error) {
    var self = this;
    this.cleanup();
    if (this.failed) { return; }
    return api(this.plan.stop_url, this.token, {}, newKey()).then(function (answer) {
      say("Saved — processing.", answer.page_url || self.plan.page_url);
    }, function (failure) {
      say((error ? error.message + " " : "") + failure.message, self.plan.page_url);
    }).then(function () { active = null; sync(); refreshPanel(); });
  };

  // The server stopped it (consent withdrawn, the room ended) or refused a part for good: stop recording and
  // send nothing more; with ``save``, ask the server to finish it with the parts it has.
  Recorder.prototype.halt = function (reason, save) {
    if (this.failed) { return; }
    this.failed = reason || "The recording stopped.";
    this.stopping = true;
    if (this.recorder.state !== "inactive") {
      this.recorder.onstop = null;
      this.recorder.stop();
    }
    this.cleanup();
    active = null;
    var self = this;
    var saved = save ? api(this.plan.stop_url, this.token, {}, newKey()).then(function () {
      return " What was sent is saved.";
    }, function () { return ""; }) : Promise.resolve("");
    saved.then(function (more) { say(self.failed + more, self.plan.page_url); refreshPanel(); });
  };

  Recorder.prototype.cleanup = function () {
    clearInterval(this.drawer);
    clearInterval(this.alive);
    var self = this;
    Object.keys(this.sources).forEach(function (member) { self.drop(member); });
    if (this.audio.state !== "closed") { this.audio.close().catch(function () {}); }
  };

  function startRecording(button) {
    var p = panel();
    if (!p || active) { return; }
    if (!window.MediaRecorder || !HTMLCanvasElement.prototype.captureStream) {
      say("This browser cannot record the call. Try a current version of Chrome or Firefox.");
      return;
    }
    button.disabled = true;
    say("Starting…");
    var token = p.getAttribute("data-csrf");
    // Made during the click: an audio context made later (after the request) may stay suspended, silent.
    var AudioContextClass = window.AudioContext || window.webkitAudioContext;
    var audio = new AudioContextClass();
    if (audio.state === "suspended") { audio.resume().catch(function () {}); }
    api(p.getAttribute("data-start-url"), token, {}, newKey()).then(function (plan) {
      try {
        active = new Recorder(plan, token, audio);
      } catch (error) {
        audio.close().catch(function () {});
        say("The recording could not start: " + error.message);
        api(plan.stop_url, token, {}, newKey()).catch(function () {});
        return;
      }
      say("Recording.");
      showRecording(plan.started_at);
      sync();
    }, function (error) {
      audio.close().catch(function () {});
      button.disabled = false;
      say(error.message);
    });
  }

  document.addEventListener("click", function (event) {
    var start = event.target.closest("[data-record-start]");
    if (start) { startRecording(start); return; }
    var stop = event.target.closest("[data-record-stop]");
    if (!stop) { return; }
    stop.disabled = true;
    if (active) { active.stop(); return; }
    // Recording from before a reload of this page: what was sent is saved (the buffered rest was lost).
    var p = panel();
    var url = p && p.getAttribute("data-stop-url");
    if (!url) { return; }
    say("Saving…");
    api(url, p.getAttribute("data-csrf"), {}, newKey()).then(function (answer) {
      say("Saved — processing.", answer.page_url);
    }, function (error) { say(error.message); stop.disabled = false; }).then(refreshPanel);
  });

  document.addEventListener("room:message", function (event) {
    var message = event.detail || {};
    if (message.type === "recording") {
      if (message.status === "started") {
        showRecording(message.started_at);
      } else {
        hideRecording();
        if (active && !active.stopping && message.recording === active.plan.recording_id) {
          active.halt(message.reason === "consent" ? "The recording stopped: " + (message.by || "someone") +
            " withdrew their agreement. What was recorded before is saved." : "The recording was stopped.");
        }
      }
      refreshPanel();
    } else if (message.type === "consent" || message.type === "joined" || message.type === "left") {
      refreshPanel();
    } else if (message.type === "ended") {
      hideRecording();
      if (active && !active.stopping) { active.stop(); }
    }
  });

  // A participant's stream changed (screen share, a late joiner who agreed): the recorder composes anew.
  document.addEventListener("room:tracks", function () { if (active) { active.refreshSources(); } });
  // The coach left the call (room.js hung up): save what was recorded.
  document.addEventListener("room:hangup", function () { if (active && !active.stopping) { active.stop(); } });
  document.addEventListener("htmx:afterSettle", function () {
    sync();
    if (active) { active.refreshSources(); }  // who agreed may have changed
  });
  if (document.readyState === "loading") { document.addEventListener("DOMContentLoaded", sync); } else { sync(); }

  // Read-only, for the tests and the console.
  window.coachRecorder = {
    recording: function () { return !!active; },
    parts: function () { return active ? active.number : 0; },
    sources: function () { return active ? Object.keys(active.sources) : []; },
    state: function () {
      if (!active) { return null; }
      return { recorder: active.recorder.state, type: active.recorder.mimeType, audio: active.audio.state,
        buffered: active.buffered, videos: Object.keys(active.sources).map(function (m) {
          var v = active.sources[m].video;
          return { member: m, ready: v.readyState, width: v.videoWidth, paused: v.paused };
        }) };
    }
  };
})();
