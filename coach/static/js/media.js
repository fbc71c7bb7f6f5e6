// Media in the browser: direct-to-storage uploads with progress, retries and resume; and
// seeking the review player. Loaded on every page (hx-boost swaps bodies, and htmx runs no
// inline scripts), so everything is delegated from `document`.
(function () {
  "use strict";

  var CONCURRENCY = 3;
  var RETRIES = 5;
  var TYPES = {
    jpg: "image/jpeg", jpeg: "image/jpeg", png: "image/png", webp: "image/webp",
    mp4: "video/mp4", m4v: "video/mp4", mov: "video/quicktime", webm: "video/webm", pdf: "application/pdf"
  };

  function contentType(file) {
    var ext = (file.name.split(".").pop() || "").toLowerCase();
    return TYPES[ext] || file.type || "application/octet-stream";
  }

  function resumeKey(file) {
    return "coach-upload:" + [file.name, file.size, file.lastModified].join(":");
  }

  // A fresh idempotency key: 32 hex digits. getRandomValues, not randomUUID: the latter exists only on HTTPS.
  function newKey() {
    var bytes = new Uint8Array(16);
    window.crypto.getRandomValues(bytes);
    return Array.prototype.map.call(bytes, function (b) { return (b < 16 ? "0" : "") + b.toString(16); }).join("");
  }

  function sleep(ms) {
    return new Promise(function (resolve) { setTimeout(resolve, ms); });
  }

  function humanSize(n) {
    var units = ["bytes", "KB", "MB", "GB"];
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
    // As the server writes sizes (service.human_size): "588.1 KB", "128 KB".
    return (i ? n.toFixed(1).replace(/\.0$/, "") : n) + " " + units[i];
  }

  // A JSON request to our own app, with the form's CSRF token (and, for a request that must not happen twice,
  // its Idempotency-Key).
  function api(method, url, token, body, key) {
    var headers = { "Content-Type": "application/json", "X-CSRFToken": token, "Accept": "application/json" };
    if (key) { headers["Idempotency-Key"] = key; }
    return fetch(url, {
      method: method,
      credentials: "same-origin",
      headers: headers,
      body: body ? JSON.stringify(body) : undefined
    }).then(function (response) {
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

  function Upload(form) {
    this.form = form;
    this.token = form.querySelector("input[name=csrf_token]").value;
    this.box = form.querySelector("[data-upload-progress]");
    this.bar = this.box.querySelector("progress");
    this.status = form.querySelector("[data-upload-status]");
    this.error = form.querySelector("[data-upload-error]");
    this.requests = [];
    this.cancelled = false;
    this.sent = {};
  }

  Upload.prototype.say = function (text) { this.status.textContent = text; };

  Upload.prototype.fail = function (message) {
    this.error.textContent = message;
    this.error.hidden = false;
    this.box.hidden = true;
    this.form.querySelector("button[type=submit]").disabled = false;
  };

  Upload.prototype.progress = function () {
    var done = 0;
    for (var n in this.sent) { done += this.sent[n]; }
    var percent = this.file.size ? Math.floor(100 * done / this.file.size) : 100;
    this.bar.value = percent;
    this.say((this.resumed ? "Resuming… " : "") + percent + "% · " + humanSize(done) + " of " + humanSize(this.file.size));
  };

  Upload.prototype.plan = function () {
    var key = resumeKey(this.file);
    var saved = null;
    try { saved = JSON.parse(localStorage.getItem(key) || "null"); } catch (e) { saved = null; }
    var self = this;
    var fresh = function () {
      var data = new FormData(self.form);
      var intent = {
        filename: self.file.name, size: self.file.size, content_type: contentType(self.file),
        title: data.get("title") || "", audience: data.get("audience") || "staff"
      };
      // One key for this upload, kept across its retries: if an answer is lost on the way, the server
      // answers the retry with that same plan instead of starting a second item.
      var idempotencyKey = newKey();
      var attempt = 0;
      var ask = function () {
        return api("POST", self.form.action, self.token, intent, idempotencyKey).catch(function (error) {
          attempt += 1;
          // No answer at all, still busy with the first try (409) or failing for now (5xx): ask again.
          var again = !error.status || error.status === 409 || error.status >= 500;
          if (self.cancelled || !again || attempt > RETRIES) { throw error; }
          self.say("Connection trouble, trying again…");
          return sleep(1000 * Math.pow(2, attempt - 1)).then(ask);
        });
      };
      return ask().then(function (plan) {
        try { localStorage.setItem(key, JSON.stringify({ resume_url: plan.resume_url })); } catch (e) { /* private mode */ }
        return plan;
      });
    };
    if (!saved || !saved.resume_url) { return fresh(); }
    return api("GET", saved.resume_url, this.token).then(function (plan) {
      self.resumed = true;  // progress() says so: a bare "Resuming…" would be overwritten at once
      return plan;
    }, function () {
      localStorage.removeItem(key);
      return fresh();
    });
  };

  // PUT one part straight to storage; resolves when storage has it.
  Upload.prototype.sendPart = function (part) {
    var self = this;
    var start = (part.number - 1) * this.planned.part_bytes;
    var blob = this.file.slice(start, start + part.size);
    return new Promise(function (resolve, reject) {
      var xhr = new XMLHttpRequest();
      self.requests.push(xhr);
      xhr.open("PUT", part.url);
      xhr.upload.onprogress = function (event) { self.sent[part.number] = event.loaded; self.progress(); };
      xhr.onload = function () {
        if (xhr.status >= 200 && xhr.status < 300) {
          self.sent[part.number] = part.size;
          self.progress();
          resolve();
        } else {
          var error = new Error("Storage answered " + xhr.status + ".");
          error.status = xhr.status;
          reject(error);
        }
      };
      xhr.onerror = function () { reject(new Error("The connection dropped.")); };
      xhr.onabort = function () { reject(new Error("cancelled")); };
      xhr.send(blob);
    });
  };

  Upload.prototype.sendWithRetries = function (part) {
    var self = this;
    var attempt = 0;
    var tryOnce = function () {
      if (self.cancelled) { return Promise.reject(new Error("cancelled")); }
      return self.sendPart(part).catch(function (error) {
        attempt += 1;
        self.sent[part.number] = 0;
        if (self.cancelled || attempt > RETRIES || error.status === 413) { throw error; }
        self.say("Connection trouble, retrying part " + part.number + "…");
        var refresh = error.status === 403 ? self.refreshUrls() : Promise.resolve();
        return refresh.then(function () { return sleep(1000 * Math.pow(2, attempt - 1)); }).then(function () {
          part = self.partsByNumber[part.number];
          return tryOnce();
        });
      });
    };
    return tryOnce();
  };

  // Signed URLs expire; ask for fresh ones without losing what was sent.
  Upload.prototype.refreshUrls = function () {
    var self = this;
    return api("GET", this.planned.resume_url, this.token).then(function (plan) { self.use(plan); });
  };

  Upload.prototype.use = function (plan) {
    this.planned = plan;
    this.partsByNumber = {};
    for (var i = 0; i < plan.parts.length; i++) { this.partsByNumber[plan.parts[i].number] = plan.parts[i]; }
    for (var j = 0; j < plan.done.length; j++) { this.sent[plan.done[j]] = this.partsByNumber[plan.done[j]].size; }
  };

  Upload.prototype.sendMissing = function () {
    var self = this;
    var queue = this.planned.parts.filter(function (p) { return self.planned.done.indexOf(p.number) < 0; });
    var worker = function () {
      var next = queue.shift();
      if (!next) { return Promise.resolve(); }
      return self.sendWithRetries(next).then(worker);
    };
    var workers = [];
    for (var i = 0; i < CONCURRENCY; i++) { workers.push(worker()); }
    return Promise.all(workers);
  };

  Upload.prototype.finalize = function (again) {
    var self = this;
    this.say("Checking the file…");
    return api("POST", this.planned.finalize_url, this.token).catch(function (error) {
      if (error.status === 409 && !again) {  // a part went missing: send it and try once more
        return self.refreshUrls().then(function () { return self.sendMissing(); })
          .then(function () { return self.finalize(true); });
      }
      throw error;
    });
  };

  Upload.prototype.run = function (file) {
    var self = this;
    this.file = file;
    this.error.hidden = true;
    this.box.hidden = false;
    this.bar.value = 0;
    this.form.querySelector("button[type=submit]").disabled = true;
    this.say("Starting…");
    return this.plan().then(function (plan) {
      self.use(plan);
      self.progress();
      return self.sendMissing();
    }).then(function () {
      return self.finalize(false);
    }).then(function (result) {
      localStorage.removeItem(resumeKey(file));
      self.say("Uploaded. Opening…");
      window.location.assign(result.page_url);
    }).catch(function (error) {
      if (error.message === "cancelled") {
        self.fail("Upload paused. Choose the same file again to resume where it stopped.");
      } else {
        if (error.status && error.status !== 409 && error.status !== 403) { localStorage.removeItem(resumeKey(file)); }
        self.fail(error.message);
      }
    });
  };

  Upload.prototype.cancel = function () {
    this.cancelled = true;
    this.requests.forEach(function (xhr) { xhr.abort(); });
  };

  var current = null;

  document.addEventListener("submit", function (event) {
    var form = event.target.closest("form[data-upload]");
    if (!form) { return; }
    event.preventDefault();
    event.stopPropagation();
    var input = form.querySelector("input[type=file]");
    var error = form.querySelector("[data-upload-error]");
    if (!input.files || !input.files.length) {
      error.textContent = "Choose a file first.";
      error.hidden = false;
      return;
    }
    current = new Upload(form);
    current.run(input.files[0]);
  }, true);

  document.addEventListener("click", function (event) {
    if (event.target.closest("[data-upload-cancel]") && current) { current.cancel(); }
  });

  // --- the review player ---------------------------------------------------------------------------

  function clock(seconds) {
    var s = Math.floor(seconds);
    var h = Math.floor(s / 3600);
    var m = Math.floor((s % 3600) / 60);
    var rest = String(s % 60).padStart(2, "0");
    return h ? h + ":" + String(m).padStart(2, "0") + ":" + rest : m + ":" + rest;
  }

  document.addEventListener("click", function (event) {
    var link = event.target.closest("[data-seek]");
    var player = document.querySelector("[data-player]");
    if (!link || !player) { return; }
    event.preventDefault();
    player.currentTime = parseFloat(link.getAttribute("data-seek"));
    player.scrollIntoView({ block: "nearest" });
    player.play().catch(function () { /* autoplay refused: the player is still at the moment */ });
  });

  // The "At" field follows the player until someone types in it.
  document.addEventListener("input", function (event) {
    if (event.target.matches("[data-moment]")) { event.target.dataset.typed = "1"; }
  });

  // A comment sent through htmx comes back with a fresh form (at 0:00): it follows the player again.
  document.addEventListener("htmx:afterSettle", function () {
    var player = document.querySelector("[data-player]");
    var field = document.querySelector("[data-moment]");
    if (player && field && !field.dataset.typed) { field.value = clock(player.currentTime); }
  });

  document.addEventListener("timeupdate", function (event) {
    if (!event.target.matches || !event.target.matches("[data-player]")) { return; }
    var field = document.querySelector("[data-moment]");
    if (field && !field.dataset.typed && document.activeElement !== field) {
      field.value = clock(event.target.currentTime);
    }
  }, true);
})();
