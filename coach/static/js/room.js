// The call in a session room: a WebRTC mesh (one RTCPeerConnection per other participant, at most six
// people) signalled over the room's WebSocket (protocol: docs/ARCHITECTURE.md, "Session rooms").
//
// Loaded from the room page's <head>: a boosted click swaps only the body and htmx runs no body scripts,
// but the head-support extension adds the new page's head scripts, so the call starts whether the page was
// loaded in full or swapped in. When the room leaves the document (a boosted navigation away, pagehide) the
// call hangs up and the camera and microphone are released.
//
// Negotiation: the newcomer offers to everyone its `welcome` lists; "perfect negotiation" settles glare
// (polite = the lower peer id) and carries ICE restarts. Each connection has exactly one audio and one video
// transceiver from its first offer on, so muting, switching devices and screen sharing only replace the
// track a sender sends (RTCRtpSender.replaceTrack): no renegotiation.
(function () {
  "use strict";

  if (window.coachRoom) { window.coachRoom.scan(); return; }  // head-support added the script again

  var PING_MS = 15000;
  var PONG_LATE_MS = 40000;  // two pings without an answer: the socket is dead even if the browser has not noticed
  var STATS_MS = 2000;
  var MAX_BACKOFF_MS = 10000;
  var SCREEN_BITRATE = 4000000;  // generous: text on a shared screen must stay readable
  // A camera at VGA: in a mesh each person uploads one copy per other participant (five in a full room), and
  // the bits are better spent on a shared screen, which is sent at its full resolution.
  var CAMERA = { width: { ideal: 640 }, height: { ideal: 480 }, frameRate: { ideal: 24, max: 30 } };

  // One id per room per page load, kept across socket reconnects and a leave-and-rejoin.
  var peerIds = new WeakMap();

  function newPeerId() {
    if (window.crypto.randomUUID) { return window.crypto.randomUUID(); }
    // randomUUID exists only in a secure context; a LAN test over plain http still gets a v4 UUID.
    var b = window.crypto.getRandomValues(new Uint8Array(16));
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" + hex.slice(16, 20) + "-" + hex.slice(20);
  }

  // A fresh RTCPeerConnection on the other side has a new DTLS certificate: an offer whose fingerprint differs
  // from the one we hold means the other page started over (a reload, a reconnect), not a renegotiation.
  function fingerprint(sdp) {
    var m = /^a=fingerprint:(.+)$/m.exec(sdp || "");
    return m ? m[1].trim() : "";
  }

  function supported() {
    return !!(window.RTCPeerConnection && navigator.mediaDevices && navigator.mediaDevices.getUserMedia &&
      window.WebSocket);
  }

  // A page that arrived by a boosted swap still has the previous document's Permissions-Policy (camera=()).
  function cameraAllowedHere() {
    var policy = document.permissionsPolicy || document.featurePolicy;
    if (!policy || !policy.allowsFeature) { return true; }
    try { return policy.allowsFeature("camera") && policy.allowsFeature("microphone"); } catch (e) { return true; }
  }

  function mediaError(error) {
    var name = error && error.name;
    if (name === "NotAllowedError" || name === "SecurityError") { return "permission was refused"; }
    if (name === "NotFoundError" || name === "OverconstrainedError") { return "none was found"; }
    if (name === "NotReadableError" || name === "AbortError") { return "another app is using it"; }
    return "it could not be started";
  }

  function ms(seconds) { return Math.round(seconds * 1000); }

  function qualityOf(sample) {
    if (sample.rtt === null && sample.loss === null && sample.fps === null) { return "connecting"; }
    var rtt = sample.rtt || 0;
    var loss = sample.loss || 0;
    var fps = sample.fps;
    if (rtt > 0.4 || loss > 0.08 || (fps !== null && fps < 5)) { return "poor"; }
    if (rtt > 0.15 || loss > 0.02 || (fps !== null && fps < 15)) { return "fair"; }
    return "good";
  }

  var QUALITY_TEXT = {
    connecting: "Connecting…", good: "Good connection", fair: "Fair connection", poor: "Poor connection",
    reconnecting: "Reconnecting…", failed: "Connection lost"
  };

  function Call(root) {
    this.root = root;
    this.box = root.querySelector("[data-call]");
    this.grid = root.querySelector("[data-call-grid]");
    this.statusLine = root.querySelector("[data-call-status]");
    this.notice = root.querySelector("[data-call-notice]");
    this.live = root.querySelector("[data-call-live]");
    this.selfTile = root.querySelector("[data-tile=self]");
    this.selfVideo = root.querySelector("[data-self-video]");
    this.template = root.querySelector("[data-tile-template]");
    if (!peerIds.has(root)) { peerIds.set(root, newPeerId()); }
    this.peerId = peerIds.get(root);
    this.iceServers = [];
    this.peers = new Map();  // peer id -> Peer
    this.roster = new Map();  // peer id -> {member, name, role}: who the server said is in the room
    this.outgoing = new MediaStream();  // what this page sends: microphone + camera or screen
    this.mic = null;
    this.camera = null;
    this.screen = null;
    this.muted = false;
    this.cameraOff = false;
    this.socket = null;
    this.welcomed = false;
    this.attempt = 0;
    this.stopped = false;
    this.timers = {};
    this.lastPong = 0;
  }

  Call.prototype.start = function () {
    var self = this;
    this.stopped = false;
    this.box.hidden = false;
    this.root.querySelector("[data-call-left]").hidden = true;
    this.root.querySelector("[data-call-stopped]").hidden = true;
    if (!navigator.mediaDevices.getDisplayMedia) { this.button("screen").hidden = true; }
    this.say("Starting your camera and microphone…");
    return this.openDevices().then(function () {
      if (self.stopped) { self.releaseDevices(); return; }
      self.refreshDevices();
      self.connect();
      self.timers.stats = setInterval(function () { self.sample(); }, STATS_MS);
    });
  };

  // ---- local media -------------------------------------------------------------------------------------

  Call.prototype.openDevices = function () {
    var self = this;
    var md = navigator.mediaDevices;
    var video = CAMERA;
    return md.getUserMedia({ audio: true, video: video }).then(function (stream) {
      self.takeTracks(stream);
    }).catch(function (videoError) {
      return md.getUserMedia({ audio: true }).then(function (stream) {
        self.takeTracks(stream);
        self.warn("Your camera is not available (" + mediaError(videoError) + "): you are in the call with your microphone only.");
      }).catch(function (audioError) {
        return md.getUserMedia({ video: video }).then(function (stream) {
          self.takeTracks(stream);
          self.warn("Your microphone is not available (" + mediaError(audioError) + "): the others can see but not hear you.");
        }).catch(function () {
          self.warn("Your camera and microphone are not available (" + mediaError(audioError) +
            "): you can see and hear the others, but they cannot see or hear you.");
        });
      });
    }).then(function () { self.showSelf(); self.syncButtons(); });
  };

  Call.prototype.takeTracks = function (stream) {
    this.mic = stream.getAudioTracks()[0] || null;
    this.camera = stream.getVideoTracks()[0] || null;
    if (this.camera) { this.camera.contentHint = "motion"; }
    this.rebuildOutgoing();
  };

  Call.prototype.outgoingVideo = function () {
    return this.screen || (this.cameraOff ? null : this.camera);
  };

  Call.prototype.rebuildOutgoing = function () {
    var out = this.outgoing;
    out.getTracks().forEach(function (t) { out.removeTrack(t); });
    if (this.mic) { out.addTrack(this.mic); }
    var video = this.outgoingVideo();
    if (video) { out.addTrack(video); }
    this.emit("room:local-tracks", { stream: out });
    this.emit("room:tracks", { peer: this.peerId, stream: out, name: this.root.getAttribute("data-name"), local: true });
  };

  Call.prototype.showSelf = function () {
    var video = this.outgoingVideo();
    this.selfVideo.srcObject = video ? new MediaStream([video]) : null;
    this.selfTile.classList.toggle("is-mirrored", !!video && video === this.camera);
    this.selfTile.classList.toggle("is-video-off", !video);
    this.selfTile.querySelector("[data-flag-audio]").hidden = !(this.muted || !this.mic);
    this.selfTile.querySelector("[data-flag-video]").hidden = !!video;
    this.selfTile.querySelector("[data-flag-screen]").hidden = !this.screen;
  };

  Call.prototype.releaseDevices = function () {
    [this.mic, this.camera, this.screen].forEach(function (t) { if (t) { t.stop(); } });
    this.mic = this.camera = this.screen = null;
    this.selfVideo.srcObject = null;
    this.rebuildOutgoing();
  };

  Call.prototype.eachPeer = function (fn) {
    this.peers.forEach(fn);
  };

  // Every peer's video sender sends what this page shows now; a screen is sent at full resolution.
  Call.prototype.replaceVideo = function () {
    var self = this;
    var track = this.outgoingVideo();
    var work = [];
    this.eachPeer(function (peer) {
      if (!peer.video) { return; }
      work.push(peer.video.sender.replaceTrack(track).then(function () { return self.tuneSender(peer); })
        .catch(function (error) { console.warn("room: replacing the video track failed", error); }));
    });
    this.rebuildOutgoing();
    this.showSelf();
    return Promise.all(work);
  };

  Call.prototype.replaceAudio = function () {
    var track = this.mic;
    var work = [];
    this.eachPeer(function (peer) {
      if (peer.audio) { work.push(peer.audio.sender.replaceTrack(track).catch(function () {})); }
    });
    this.rebuildOutgoing();
    return Promise.all(work);
  };

  // A shared screen keeps its resolution (the coach reads it) and gives up frame rate instead; a camera is
  // left to the browser's usual trade-offs.
  Call.prototype.tuneSender = function (peer) {
    if (!peer.video) { return Promise.resolve(); }
    var sender = peer.video.sender;
    var params = sender.getParameters();
    if (!params.encodings || !params.encodings.length) { return Promise.resolve(); }
    var sharing = !!this.screen;
    params.encodings.forEach(function (encoding) {
      encoding.scaleResolutionDownBy = 1;
      if (sharing) { encoding.maxBitrate = SCREEN_BITRATE; } else { delete encoding.maxBitrate; }
    });
    params.degradationPreference = sharing ? "maintain-resolution" : "balanced";
    return sender.setParameters(params).catch(function (error) {
      console.warn("room: the sender's encoding was not changed", error);
    });
  };

  Call.prototype.toggleMute = function () {
    if (!this.mic) { this.warn("There is no microphone to unmute: check the microphone picker below."); return; }
    this.muted = !this.muted;
    this.mic.enabled = !this.muted;
    this.announce(this.muted ? "Your microphone is muted." : "Your microphone is on.");
    this.syncButtons();
    this.showSelf();
    this.sendState();
  };

  Call.prototype.toggleCamera = function () {
    var self = this;
    if (!this.cameraOff) {
      // Off means off: the track stops, so the camera's light goes out too.
      this.cameraOff = true;
      if (this.camera) { this.camera.stop(); this.camera = null; }
      this.announce("Your camera is off.");
      return this.replaceVideo().then(function () { self.syncButtons(); self.sendState(); });
    }
    return this.openCamera(this.selectedDevice("videoinput")).then(function (ok) {
      if (!ok) { return; }
      self.cameraOff = false;
      self.announce("Your camera is on.");
      return self.replaceVideo().then(function () { self.syncButtons(); self.sendState(); });
    });
  };

  Call.prototype.openCamera = function (deviceId) {
    var self = this;
    var video = Object.assign({}, CAMERA);
    if (deviceId) { video.deviceId = { exact: deviceId }; }
    return navigator.mediaDevices.getUserMedia({ video: video }).then(function (stream) {
      if (self.camera) { self.camera.stop(); }
      self.camera = stream.getVideoTracks()[0];
      self.camera.contentHint = "motion";
      self.refreshDevices();
      return true;
    }).catch(function (error) {
      self.warn("The camera could not be started (" + mediaError(error) + ").");
      return false;
    });
  };

  Call.prototype.openMic = function (deviceId) {
    var self = this;
    var audio = deviceId ? { deviceId: { exact: deviceId } } : true;
    return navigator.mediaDevices.getUserMedia({ audio: audio }).then(function (stream) {
      if (self.mic) { self.mic.stop(); }
      self.mic = stream.getAudioTracks()[0];
      self.mic.enabled = !self.muted;
      return self.replaceAudio().then(function () { self.syncButtons(); self.showSelf(); self.sendState(); });
    }).catch(function (error) {
      self.warn("The microphone could not be started (" + mediaError(error) + ").");
    });
  };

  Call.prototype.toggleScreen = function () {
    var self = this;
    if (this.screen) { return this.stopScreen(); }
    return navigator.mediaDevices.getDisplayMedia({ video: { frameRate: { ideal: 15, max: 30 } }, audio: false })
      .then(function (stream) {
        var track = stream.getVideoTracks()[0];
        if (self.stopped) { track.stop(); return; }
        track.contentHint = "detail";
        // The browser's own "Stop sharing" ends the track: back to the camera.
        track.addEventListener("ended", function () { if (self.screen === track) { self.stopScreen(); } });
        self.screen = track;
        self.announce("You are sharing your screen.");
        return self.replaceVideo().then(function () { self.syncButtons(); self.sendState(); });
      }).catch(function (error) {
        if (error && error.name === "NotAllowedError") { self.announce("Screen sharing was cancelled."); return; }
        self.warn("Your screen could not be shared (" + mediaError(error) + ").");
      });
  };

  Call.prototype.stopScreen = function () {
    var self = this;
    if (!this.screen) { return Promise.resolve(); }
    var track = this.screen;
    this.screen = null;
    track.stop();
    this.announce("You stopped sharing your screen.");
    return this.replaceVideo().then(function () { self.syncButtons(); self.sendState(); });
  };

  Call.prototype.selectedDevice = function (kind) {
    var select = this.root.querySelector("select[data-device=" + kind + "]");
    return select ? select.value : "";
  };

  Call.prototype.switchDevice = function (kind, deviceId) {
    var self = this;
    if (kind === "audioinput") { return this.openMic(deviceId); }
    if (this.cameraOff) { return Promise.resolve(); }  // used when the camera is turned on again
    return this.openCamera(deviceId).then(function (ok) { if (ok && !self.screen) { return self.replaceVideo(); } });
  };

  // Device lists (labels appear once a permission was given); a plugged or unplugged device refreshes them.
  Call.prototype.refreshDevices = function () {
    var self = this;
    if (!navigator.mediaDevices.enumerateDevices) { return; }
    navigator.mediaDevices.enumerateDevices().then(function (devices) {
      ["videoinput", "audioinput"].forEach(function (kind) {
        var select = self.root.querySelector("select[data-device=" + kind + "]");
        if (!select) { return; }
        var current = kind === "videoinput" ? self.camera : self.mic;
        var currentId = current && current.getSettings ? current.getSettings().deviceId : select.value;
        var list = devices.filter(function (d) { return d.kind === kind && d.deviceId; });
        select.textContent = "";
        list.forEach(function (device, i) {
          var option = document.createElement("option");
          option.value = device.deviceId;
          option.textContent = device.label || (kind === "videoinput" ? "Camera " : "Microphone ") + (i + 1);
          option.selected = device.deviceId === currentId;
          select.appendChild(option);
        });
        if (!list.length) {
          var none = document.createElement("option");
          none.value = "";
          none.textContent = kind === "videoinput" ? "No camera found" : "No microphone found";
          select.appendChild(none);
        }
        select.disabled = !list.length;
      });
    }).catch(function () {});
  };

  Call.prototype.button = function (action) {
    return this.root.querySelector("[data-action=" + action + "]");
  };

  Call.prototype.syncButtons = function () {
    var mute = this.button("mute");
    mute.setAttribute("aria-pressed", String(this.muted || !this.mic));
    mute.textContent = this.muted || !this.mic ? "Unmute" : "Mute";
    var camera = this.button("camera");
    camera.setAttribute("aria-pressed", String(this.cameraOff || !this.camera));
    camera.textContent = this.cameraOff || !this.camera ? "Camera on" : "Camera off";
    var screen = this.button("screen");
    screen.setAttribute("aria-pressed", String(!!this.screen));
    screen.textContent = this.screen ? "Stop sharing" : "Share screen";
  };

  Call.prototype.myState = function () {
    return { type: "state", audio: !!this.mic && !this.muted, video: !!this.camera && !this.cameraOff,
      screen: !!this.screen };
  };

  Call.prototype.sendState = function () { this.send(this.myState()); };

  // ---- the socket ----------------------------------------------------------------------------------------

  Call.prototype.connect = function () {
    var self = this;
    if (this.stopped) { return; }
    var url = new URL(this.root.getAttribute("data-socket"), window.location.href);
    url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    var socket = new WebSocket(url.href);
    var opened = false;
    this.socket = socket;
    this.welcomed = false;
    socket.addEventListener("open", function () {
      opened = true;
      self.lastPong = Date.now();
      socket.send(JSON.stringify({ type: "join", peer: self.peerId }));
    });
    socket.addEventListener("message", function (event) {
      if (self.socket !== socket) { return; }
      var message;
      try { message = JSON.parse(event.data); } catch (e) { return; }
      if (message && typeof message.type === "string") { self.receive(message); }
    });
    socket.addEventListener("close", function () {
      if (self.socket !== socket) { return; }
      self.socket = null;
      self.welcomed = false;
      clearInterval(self.timers.ping);
      if (self.stopped) { return; }
      self.reconnectLater(opened);
    });
  };

  Call.prototype.reconnectLater = function (wasOpen) {
    var self = this;
    var delay = Math.min(1000 * Math.pow(2, this.attempt), MAX_BACKOFF_MS);
    this.attempt += 1;
    this.say("Reconnecting…");
    if (this.attempt === 1) { this.announce("The connection dropped. Reconnecting…"); }
    this.root.classList.add("is-reconnecting");
    clearTimeout(this.timers.reconnect);
    // A refused handshake looks like any dropped connection to a browser; after a few, ask the page itself
    // whether the room is still open for us (ended, cancelled, signed out) rather than retrying for ever.
    var check = !wasOpen && this.attempt >= 3 ? this.stillOpen() : Promise.resolve(true);
    check.then(function (open) {
      if (self.stopped) { return; }
      if (!open) { self.stop("This room is no longer open to you."); return; }
      self.timers.reconnect = setTimeout(function () { self.connect(); }, delay);
    });
  };

  Call.prototype.stillOpen = function () {
    return fetch(window.location.href, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok) { return false; }
        return response.text().then(function (html) { return html.indexOf('id="room"') !== -1; });
      }).catch(function () { return true; });  // offline: keep trying
  };

  // Back online: try at once instead of waiting out the back-off.
  Call.prototype.online = function () {
    if (this.stopped || this.socket) { return; }
    clearTimeout(this.timers.reconnect);
    this.attempt = 0;
    this.connect();
  };

  Call.prototype.send = function (frame) {
    if (!this.socket || this.socket.readyState !== WebSocket.OPEN) { return false; }
    if (frame.type !== "join" && !this.welcomed) { return false; }
    this.socket.send(JSON.stringify(frame));
    return true;
  };

  Call.prototype.receive = function (message) {
    this.emit("room:message", message);
    switch (message.type) {
      case "welcome": return this.welcome(message);
      case "joined": return this.joined(message);
      case "offer": case "answer": return this.description(message);
      case "candidate": return this.candidate(message);
      case "state": return this.remoteState(message);
      case "left": return this.left(message.peer);
      case "pong": this.lastPong = Date.now(); return;
      case "full": return this.stop("The room is full: " + (message.max || this.root.getAttribute("data-max") || 6) +
        " people are already in the call.");
      case "closed": return this.stop(message.reason || "The call closed.");
      case "ended": return this.stop((message.by ? message.by : "The coach") + " ended the session for everyone.");
      case "error":
        console.warn("room: the server refused a frame:", message.code, message.message);
        // Refused before the welcome (the relay unavailable for a moment): not in the room yet, so try again.
        if (!this.welcomed && this.socket) { this.socket.close(); }
        return;
      default: return;
    }
  };

  Call.prototype.welcome = function (message) {
    var self = this;
    var reconnect = this.attempt > 0 || this.peers.size > 0;
    this.welcomed = true;
    this.attempt = 0;
    this.lastPong = Date.now();
    this.root.classList.remove("is-reconnecting");
    if (Array.isArray(message.ice_servers)) { this.iceServers = message.ice_servers; }
    this.say("Connected");
    if (reconnect) { this.announce("Reconnected."); }
    var listed = new Set();
    (message.peers || []).forEach(function (info) {
      if (!info || !info.peer || info.peer === self.peerId) { return; }
      listed.add(info.peer);
      self.roster.set(info.peer, info);
      // The newcomer (or the one who was away) offers: a fresh connection, whatever the old one's state.
      var peer = self.peerFor(info.peer);
      if (info.state) { peer.state = info.state; }
      self.openConnection(peer, true);
    });
    this.peers.forEach(function (peer, id) { if (!listed.has(id)) { self.dropPeer(id); } });
    this.sendState();
    clearInterval(this.timers.ping);
    this.timers.ping = setInterval(function () { self.heartbeat(); }, PING_MS);
    this.layout();
  };

  Call.prototype.heartbeat = function () {
    if (!this.socket) { return; }
    if (Date.now() - this.lastPong > PONG_LATE_MS) { this.socket.close(); return; }  // a half-open socket
    this.send({ type: "ping" });
  };

  Call.prototype.joined = function (message) {
    if (!message.peer || message.peer === this.peerId) { return; }
    this.roster.set(message.peer, message);
    var peer = this.peerFor(message.peer);
    this.nameTile(peer);
    this.announce((message.name || "Someone") + " joined the call.");
    this.layout();
  };

  Call.prototype.left = function (id) {
    if (!id || !this.peers.has(id)) { return; }
    var name = this.nameOf(id);
    this.dropPeer(id);
    this.roster.delete(id);
    this.announce(name + " left the call.");
  };

  Call.prototype.nameOf = function (id) {
    var info = this.roster.get(id);
    return (info && info.name) || "Someone";
  };

  // ---- peers -----------------------------------------------------------------------------------------------

  Call.prototype.peerFor = function (id) {
    var peer = this.peers.get(id);
    if (peer) { return peer; }
    var tile = this.template.content.firstElementChild.cloneNode(true);
    tile.setAttribute("data-peer", id);
    peer = { id: id, pc: null, tile: tile, video: null, audio: null, stream: new MediaStream(), makingOffer: false,
      ignoreOffer: false, polite: this.peerId < id, state: { audio: true, video: true, screen: false },
      sample: null, previous: null, restartTimer: null, remoteFingerprint: "" };
    tile.querySelector("video").srcObject = peer.stream;
    this.grid.appendChild(tile);
    this.peers.set(id, peer);
    this.nameTile(peer);
    this.showRemoteState(peer);
    this.layout();
    return peer;
  };

  Call.prototype.nameTile = function (peer) {
    var info = this.roster.get(peer.id) || {};
    var name = info.name || "Someone";
    peer.tile.querySelector("[data-name]").textContent = info.role === "coach" ? name + " (coach)" : name;
    peer.tile.querySelector("[data-placeholder]").textContent = name;
    peer.tile.setAttribute("aria-label", name);
    peer.tile.setAttribute("data-name", name);
    if (info.member) { peer.tile.setAttribute("data-member", info.member); }
  };

  Call.prototype.dropPeer = function (id) {
    var peer = this.peers.get(id);
    if (!peer) { return; }
    this.closeConnection(peer);
    peer.tile.querySelector("video").srcObject = null;
    peer.tile.remove();
    this.peers.delete(id);
    this.emit("room:peer-left", { peer: id });
    this.emit("room:tracks", { peer: id, stream: null });
    this.layout();
  };

  Call.prototype.closeConnection = function (peer) {
    clearTimeout(peer.restartTimer);
    if (peer.pc) {
      var pc = peer.pc;
      pc.ontrack = pc.onnegotiationneeded = pc.onicecandidate = null;
      pc.oniceconnectionstatechange = pc.onconnectionstatechange = null;
      pc.close();
    }
    peer.pc = null;
    peer.audio = peer.video = null;
    peer.makingOffer = peer.ignoreOffer = false;
    peer.previous = peer.sample = null;
    peer.remoteFingerprint = "";
    peer.stream.getTracks().forEach(function (t) { peer.stream.removeTrack(t); });
  };

  Call.prototype.openConnection = function (peer, offering) {
    var self = this;
    this.closeConnection(peer);
    var pc = new RTCPeerConnection({ iceServers: this.iceServers });
    peer.pc = pc;
    if (offering) {
      // One audio and one video transceiver, sending whatever we have (or nothing yet): later changes are
      // replaceTrack calls on these senders.
      var init = { direction: "sendrecv", streams: [this.outgoing] };
      peer.audio = pc.addTransceiver(this.mic || "audio", init);
      peer.video = pc.addTransceiver(this.outgoingVideo() || "video", init);
    }
    pc.ontrack = function (event) {
      var track = event.track;
      peer.stream.getTracks().forEach(function (t) {
        if (t.kind === track.kind && t !== track) { peer.stream.removeTrack(t); }
      });
      if (peer.stream.getTracks().indexOf(track) === -1) { peer.stream.addTrack(track); }
      self.play(peer);
      self.emit("room:tracks", { peer: peer.id, stream: peer.stream, name: self.nameOf(peer.id) });
    };
    pc.onnegotiationneeded = function () {
      if (!self.welcomed) { return; }  // welcome makes a fresh connection anyway
      peer.makingOffer = true;
      pc.setLocalDescription().then(function () {
        self.send({ type: "offer", to: peer.id, sdp: pc.localDescription.sdp });
      }).catch(function (error) {
        console.warn("room: could not make an offer", error);
      }).then(function () { peer.makingOffer = false; });
    };
    pc.onicecandidate = function (event) {
      self.send({ type: "candidate", to: peer.id, candidate: event.candidate ? event.candidate.toJSON() : null });
    };
    pc.oniceconnectionstatechange = function () { self.iceChanged(peer); };
    pc.onconnectionstatechange = function () {
      self.showConnection(peer);
      if (pc.connectionState === "connected") { self.tuneSender(peer); }
    };
    this.showConnection(peer);
    return pc;
  };

  // Perfect negotiation (https://w3c.github.io/webrtc-pc/#perfect-negotiation-example): the impolite side
  // ignores a colliding offer, the polite side rolls its own back (setRemoteDescription does it).
  Call.prototype.description = function (message) {
    var self = this;
    var from = message.from;
    if (!from || from === this.peerId || typeof message.sdp !== "string") { return; }
    var peer = this.peerFor(from);
    if (message.type === "offer") {
      var print = fingerprint(message.sdp);
      if (!peer.pc || (peer.remoteFingerprint && print && print !== peer.remoteFingerprint)) {
        this.openConnection(peer, false);  // the other page started over: so do we
      }
    } else if (!peer.pc) {
      return;  // an answer for a connection we have dropped
    }
    var pc = peer.pc;
    var collision = message.type === "offer" && (peer.makingOffer || pc.signalingState !== "stable");
    peer.ignoreOffer = !peer.polite && collision;
    if (peer.ignoreOffer) { return; }
    var remote = { type: message.type, sdp: message.sdp };
    pc.setRemoteDescription(remote).then(function () {
      if (peer.pc !== pc) { return; }
      peer.remoteFingerprint = fingerprint(message.sdp) || peer.remoteFingerprint;
      if (message.type !== "offer") { return; }
      return self.adoptTransceivers(peer).then(function () { return pc.setLocalDescription(); }).then(function () {
        self.send({ type: "answer", to: peer.id, sdp: pc.localDescription.sdp });
      });
    }).catch(function (error) {
      console.warn("room: could not apply the " + message.type + " from " + from, error);
    });
  };

  // The answering side sends on the transceivers the offer created (one audio, one video).
  Call.prototype.adoptTransceivers = function (peer) {
    if (peer.audio && peer.video) { return Promise.resolve(); }
    var self = this;
    var work = [];
    peer.pc.getTransceivers().forEach(function (t) {
      var kind = t.receiver.track && t.receiver.track.kind;
      var track = null;
      if (kind === "audio" && !peer.audio) { peer.audio = t; track = self.mic; }
      else if (kind === "video" && !peer.video) { peer.video = t; track = self.outgoingVideo(); }
      else { return; }
      t.direction = "sendrecv";
      if (t.sender.setStreams) { t.sender.setStreams(self.outgoing); }
      work.push(t.sender.replaceTrack(track));
    });
    return Promise.all(work);
  };

  Call.prototype.candidate = function (message) {
    var peer = this.peers.get(message.from);
    if (!peer || !peer.pc || !message.candidate) { return; }
    peer.pc.addIceCandidate(message.candidate).catch(function (error) {
      if (!peer.ignoreOffer) { console.warn("room: a candidate was refused", error); }
    });
  };

  // A path that broke (a network change, a drop) is mended with an ICE restart by the polite side; the other
  // side steps in if the connection stays failed, in case the polite side cannot.
  Call.prototype.iceChanged = function (peer) {
    var self = this;
    var pc = peer.pc;
    if (!pc) { return; }
    var state = pc.iceConnectionState;
    clearTimeout(peer.restartTimer);
    if (state !== "disconnected" && state !== "failed") { this.showConnection(peer); return; }
    var wait = state === "failed" ? (peer.polite ? 0 : 5000) : (peer.polite ? 2000 : 8000);
    peer.restartTimer = setTimeout(function () {
      if (peer.pc !== pc || !self.welcomed) { return; }
      if (pc.iceConnectionState === "disconnected" || pc.iceConnectionState === "failed") { pc.restartIce(); }
    }, wait);
    this.showConnection(peer);
  };

  Call.prototype.play = function (peer) {
    var self = this;
    var video = peer.tile.querySelector("video");
    var playing = video.play();
    if (playing && playing.catch) {
      playing.catch(function () {
        // No sound without a user gesture on this browser: play muted and offer a button.
        video.muted = true;
        video.play().catch(function () {});
        self.button("sound").hidden = false;
      });
    }
  };

  Call.prototype.soundOn = function () {
    this.peers.forEach(function (peer) {
      var video = peer.tile.querySelector("video");
      video.muted = false;
      video.play().catch(function () {});
    });
    this.button("sound").hidden = true;
  };

  Call.prototype.remoteState = function (message) {
    var peer = this.peers.get(message.from);
    if (!peer) { return; }
    peer.state = { audio: message.audio !== false, video: message.video !== false, screen: message.screen === true };
    this.showRemoteState(peer);
  };

  Call.prototype.showRemoteState = function (peer) {
    var s = peer.state;
    var tile = peer.tile;
    tile.querySelector("[data-flag-audio]").hidden = s.audio;
    tile.querySelector("[data-flag-video]").hidden = s.video || s.screen;
    tile.querySelector("[data-flag-screen]").hidden = !s.screen;
    tile.classList.toggle("is-video-off", !s.video && !s.screen);
    tile.classList.toggle("is-screen", s.screen);
  };

  Call.prototype.showConnection = function (peer) {
    var pc = peer.pc;
    var label = peer.tile.querySelector("[data-quality]");
    var level;
    if (!pc) { level = "connecting"; }
    else if (pc.connectionState === "failed" || pc.iceConnectionState === "failed") { level = "failed"; }
    else if (pc.iceConnectionState === "disconnected") { level = "reconnecting"; }
    else if (pc.connectionState !== "connected") { level = "connecting"; }
    else { level = peer.sample ? peer.sample.quality : "connecting"; }
    label.setAttribute("data-level", level);
    label.textContent = QUALITY_TEXT[level];
    var s = peer.sample;
    label.title = s && level !== "connecting" ? [
      s.rtt === null ? null : "Round trip " + ms(s.rtt) + " ms",
      s.loss === null ? null : "packet loss " + (s.loss * 100).toFixed(1) + "%",
      s.fps === null ? null : Math.round(s.fps) + " frames a second",
      s.width ? s.width + "×" + s.height : null
    ].filter(Boolean).join(" · ") : "";
  };

  // ---- quality -------------------------------------------------------------------------------------------

  Call.prototype.readStats = function (peer) {
    if (!peer.pc) { return Promise.resolve(null); }
    return peer.pc.getStats().then(function (report) {
      var out = { framesDecoded: 0, framesPerSecond: null, width: 0, height: 0, bytesReceived: 0, trackId: null,
        rtt: null, packetsLost: 0, packetsReceived: 0, at: performance.now() };
      var pairId = null;
      var pairs = {};
      report.forEach(function (s) {
        if (s.type === "inbound-rtp") {
          out.packetsLost += s.packetsLost || 0;
          out.packetsReceived += s.packetsReceived || 0;
          out.bytesReceived += s.bytesReceived || 0;
          if (s.kind === "video") {
            out.framesDecoded = s.framesDecoded || 0;
            out.framesPerSecond = typeof s.framesPerSecond === "number" ? s.framesPerSecond : null;
            out.width = s.frameWidth || 0;
            out.height = s.frameHeight || 0;
            out.trackId = s.trackIdentifier || null;
          }
        } else if (s.type === "transport" && s.selectedCandidatePairId) {
          pairId = s.selectedCandidatePairId;
        } else if (s.type === "candidate-pair") {
          pairs[s.id] = s;
        }
      });
      var pair = pairId ? pairs[pairId] : Object.keys(pairs).map(function (k) { return pairs[k]; })
        .filter(function (p) { return p.nominated && p.state === "succeeded"; })[0];
      if (pair && typeof pair.currentRoundTripTime === "number") { out.rtt = pair.currentRoundTripTime; }
      return out;
    });
  };

  Call.prototype.sample = function () {
    var self = this;
    this.peers.forEach(function (peer) {
      var pc = peer.pc;
      if (!pc || pc.connectionState !== "connected") { return; }
      self.readStats(peer).then(function (now) {
        if (!now || peer.pc !== pc) { return; }
        var before = peer.previous;
        var loss = null;
        var fps = now.framesPerSecond;
        if (before) {
          var lost = now.packetsLost - before.packetsLost;
          var got = now.packetsReceived - before.packetsReceived;
          loss = lost + got > 0 ? Math.max(0, lost) / (Math.max(0, lost) + got) : 0;
          if (fps === null && now.at > before.at) {
            fps = (now.framesDecoded - before.framesDecoded) * 1000 / (now.at - before.at);
          }
        }
        // A peer whose camera is off sends no frames: that is not a bad connection.
        var expectVideo = peer.state.video || peer.state.screen;
        var sample = { rtt: now.rtt, loss: loss, fps: expectVideo ? fps : null, width: now.width, height: now.height };
        sample.quality = qualityOf(sample);
        peer.previous = now;
        peer.sample = sample;
        self.showConnection(peer);
      }).catch(function () {});
    });
  };

  // ---- page ----------------------------------------------------------------------------------------------

  Call.prototype.layout = function () {
    this.grid.setAttribute("data-count", String(this.peers.size));
    var count = this.peers.size + 1;
    if (this.welcomed) {
      this.say(count === 1 ? "Connected · waiting for the others to join" : "Connected · " + count + " people in the call");
    }
  };

  Call.prototype.say = function (text) { this.statusLine.textContent = text; };

  Call.prototype.announce = function (text) {
    // Cleared first so the same words twice ("Reconnecting…") are read twice.
    var live = this.live;
    live.textContent = "";
    setTimeout(function () { live.textContent = text; }, 50);
  };

  Call.prototype.warn = function (text) {
    this.notice.textContent = text;
    this.notice.hidden = false;
  };

  Call.prototype.emit = function (name, detail) {
    this.root.dispatchEvent(new CustomEvent(name, { bubbles: true, detail: detail }));
  };

  // Everything stops: the peers, the socket, the devices. `leave` tells the server the stay ended now.
  Call.prototype.hangup = function (sayLeave) {
    var self = this;
    if (this.stopped) { return; }
    this.stopped = true;
    Object.keys(this.timers).forEach(function (k) { clearTimeout(self.timers[k]); clearInterval(self.timers[k]); });
    if (sayLeave) { this.send({ type: "leave" }); }
    var socket = this.socket;
    this.socket = null;
    this.welcomed = false;
    if (socket) { try { socket.close(1000); } catch (e) { /* already closing */ } }
    Array.from(this.peers.keys()).forEach(function (id) { self.dropPeer(id); });
    this.releaseDevices();
    this.root.classList.remove("is-reconnecting");
    this.emit("room:hangup", {});
  };

  Call.prototype.leave = function () {
    this.hangup(true);
    this.box.hidden = true;
    this.root.querySelector("[data-call-left]").hidden = false;
    this.announce("You left the call.");
    var rejoin = this.button("rejoin");
    if (rejoin) { rejoin.focus(); }
  };

  Call.prototype.stop = function (text) {
    this.hangup(false);
    this.box.hidden = true;
    this.root.querySelector("[data-call-stopped-text]").textContent = text;
    this.root.querySelector("[data-call-stopped]").hidden = false;
    this.announce(text);
  };

  Call.prototype.rejoin = function () {
    this.muted = false;
    this.cameraOff = false;
    this.attempt = 0;
    this.roster.clear();
    this.notice.hidden = true;
    this.start();
  };

  // ---- wiring --------------------------------------------------------------------------------------------

  var call = null;

  function scan() {
    if (call && !document.contains(call.root)) {  // the room left the document (a boosted navigation)
      call.hangup(true);
      call = null;
    }
    var root = document.querySelector("#room[data-room]");
    if (!root || (call && call.root === root)) { return; }
    if (!root.querySelector("[data-call]")) { return; }
    if (!supported()) {
      var unsupported = root.querySelector("[data-room-unsupported]");
      if (unsupported) { unsupported.hidden = false; }
      return;
    }
    if (!cameraAllowedHere()) {
      // Reached by a boosted swap: load the page in full once so its own Permissions-Policy applies.
      var key = "coach-room-reloaded:" + window.location.pathname;
      if (!window.sessionStorage.getItem(key)) {
        window.sessionStorage.setItem(key, "1");
        window.location.reload();
        return;
      }
    }
    window.sessionStorage.removeItem("coach-room-reloaded:" + window.location.pathname);
    call = new Call(root);
    call.start().catch(function (error) {
      console.error("room: the call did not start", error);
      call.warn("The call could not start. Reload the page to try again.");
    });
  }

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("#room [data-action]");
    if (!button || !call || !call.root.contains(button)) { return; }
    switch (button.getAttribute("data-action")) {
      case "mute": call.toggleMute(); break;
      case "camera": call.toggleCamera(); break;
      case "screen": call.toggleScreen(); break;
      case "sound": call.soundOn(); break;
      case "leave": call.leave(); break;
      case "rejoin": call.rejoin(); break;
      default: return;
    }
  });

  document.addEventListener("change", function (event) {
    var select = event.target.closest && event.target.closest("#room select[data-device]");
    if (!select || !call) { return; }
    call.switchDevice(select.getAttribute("data-device"), select.value);
  });

  if (navigator.mediaDevices && navigator.mediaDevices.addEventListener) {
    navigator.mediaDevices.addEventListener("devicechange", function () { if (call) { call.refreshDevices(); } });
  }
  window.addEventListener("online", function () { if (call) { call.online(); } });
  window.addEventListener("pagehide", function () { if (call) { call.hangup(true); call = null; } });
  // A back-forward cache restore brings the page back without running scripts: start again.
  window.addEventListener("pageshow", function (event) { if (event.persisted) { scan(); } });
  document.addEventListener("htmx:afterSettle", scan);
  document.addEventListener("htmx:historyRestore", scan);

  // Read-only view for the tests, operators (from the console) and the page's other scripts (the recorder).
  window.coachRoom = {
    scan: scan,
    connected: function () { return !!(call && call.welcomed); },
    peers: function () {
      if (!call) { return []; }
      return Array.from(call.peers.values()).map(function (peer) {
        var info = call.roster.get(peer.id) || {};
        return { peer: peer.id, member: info.member || null, name: info.name || null, role: info.role || null,
          state: Object.assign({}, peer.state), connection: peer.pc ? peer.pc.connectionState : "new",
          ice: peer.pc ? peer.pc.iceConnectionState : "new", quality: peer.sample ? peer.sample.quality : null };
      });
    },
    stats: function (id) {
      var peer = call && call.peers.get(id);
      if (!peer) { return Promise.resolve(null); }
      return call.readStats(peer).then(function (s) {
        if (!s) { return null; }
        s.quality = peer.sample ? peer.sample.quality : null;
        s.loss = peer.sample ? peer.sample.loss : null;
        return s;
      });
    },
    me: function () { return call ? call.peerId : null; },
    localVideoTrack: function () { return call ? call.outgoingVideo() : null; },
    localStream: function () { return call ? call.outgoing : null; },
    // Everyone's stream, mine first (`local`): what the recorder composes.
    streams: function () {
      if (!call) { return []; }
      var mine = { peer: call.peerId, member: call.root.getAttribute("data-member"),
        name: call.root.getAttribute("data-name"), role: call.root.getAttribute("data-role"), local: true,
        stream: call.outgoing };
      return [mine].concat(window.coachRoom.remoteStreams().map(function (s) { s.local = false; return s; }));
    },
    remoteStreams: function () {
      if (!call) { return []; }
      return Array.from(call.peers.values()).map(function (peer) {
        var info = call.roster.get(peer.id) || {};
        return { peer: peer.id, member: info.member || null, name: info.name || null, role: info.role || null,
          stream: peer.stream };
      });
    }
  };

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", scan);
  } else {
    scan();
  }
})();
