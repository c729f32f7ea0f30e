/* rpahub console: small progressive enhancements. Every page works without them. */
(function () {
  "use strict";
  var csrf = document.body.getAttribute("data-csrf");

  // A select that changes something at once (the language switch).
  document.querySelectorAll("select[data-autosubmit]").forEach(function (el) {
    el.addEventListener("change", function () { el.form.submit(); });
  });

  // Destructive actions ask first; long ones show that they are under way.
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    var question = form.getAttribute("data-confirm");
    if (question && !window.confirm(question)) { ev.preventDefault(); return; }
    form.querySelectorAll("[data-busy]").forEach(function (b) {
      b.setAttribute("aria-busy", "true");
      window.setTimeout(function () { b.disabled = true; }, 0);
    });
    form.classList.add("busy");
  });

  document.querySelectorAll("[data-copy]").forEach(function (el) {
    el.addEventListener("click", function () {
      var range = document.createRange(); range.selectNodeContents(el);
      var sel = window.getSelection(); sel.removeAllRanges(); sel.addRange(range);
      if (navigator.clipboard) { navigator.clipboard.writeText(el.textContent).catch(function () {}); }
    });
  });

  // Pages that refresh themselves (the big screen, monitoring): swap the main content in place.
  var refresh = parseInt(document.body.getAttribute("data-refresh") || "0", 10);
  if (refresh > 0) {
    window.setInterval(function () {
      if (document.hidden) { return; }
      fetch(window.location.href, { credentials: "same-origin" }).then(function (r) {
        return r.ok ? r.text() : null;
      }).then(function (html) {
        if (!html) { return; }
        var doc = new DOMParser().parseFromString(html, "text/html");
        var fresh = doc.getElementById("main");
        if (fresh) { document.getElementById("main").innerHTML = fresh.innerHTML; }
        document.body.setAttribute("data-refreshed", new Date().toISOString());
      }).catch(function () {});
    }, refresh * 1000);
  }

  // Live logs of a running run.
  var logs = document.querySelector("ol[data-tail]");
  if (logs) {
    var after = logs.getAttribute("data-after") || "", waited = 0;
    var tail = function () {
      fetch(logs.getAttribute("data-tail") + (after ? "?after=" + encodeURIComponent(after) : ""),
            { credentials: "same-origin" }).then(function (r) { return r.json(); }).then(function (data) {
        (data.logs || []).forEach(function (row) {
          var li = document.createElement("li");
          li.className = "log-" + row.level;
          var t = document.createElement("time"); t.textContent = new Date(row.at).toLocaleString();
          var lv = document.createElement("span"); lv.className = "level"; lv.textContent = row.level;
          var c = document.createElement("span"); c.className = "content"; c.textContent = row.content;
          li.appendChild(t); li.appendChild(document.createTextNode(" ")); li.appendChild(lv);
          li.appendChild(document.createTextNode(" ")); li.appendChild(c);
          logs.appendChild(li);
        });
        if (data.lastId) { after = String(data.lastId); }
        if (data.finished && data.recordingExpected && waited < 60) {
          // Ended; its recording is on the way (the executor uploads it after the run).
          waited += 2; window.setTimeout(tail, 2000);
        } else if (data.finished) {
          // The run ended: show its final state, recording and counts.
          window.setTimeout(function () { window.location.reload(); }, 800);
        } else {
          window.setTimeout(tail, 1500);
        }
      }).catch(function () { window.setTimeout(tail, 5000); });
    };
    window.setTimeout(tail, 1000);
  }

  // A player for console recordings (asciicast v2): play, pause and seek.
  document.querySelectorAll(".cast-player").forEach(function (player) {
    var screen = player.querySelector(".cast-screen");
    var button = player.querySelector(".cast-play");
    var seek = player.querySelector(".cast-seek");
    var clock = player.querySelector(".cast-time");
    var events = [], duration = 0, position = 0, playing = false, started = 0, from = 0;
    var fmt = function (s) { s = Math.max(0, Math.floor(s)); return Math.floor(s / 60) + ":" + ("0" + (s % 60)).slice(-2); };
    var clean = function (text) {
      // Keep what a terminal would show as text: drop escape sequences, apply carriage returns.
      text = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, "").replace(/\x1b\][^\x07]*\x07/g, "");
      return text.split("\n").map(function (line) {
        var parts = line.split("\r"); return parts[parts.length - 1] || parts[parts.length - 2] || "";
      }).join("\n");
    };
    var draw = function (t) {
      position = Math.min(Math.max(t, 0), duration);
      var out = "";
      for (var i = 0; i < events.length && events[i][0] <= position; i++) { out += events[i][2]; }
      screen.textContent = clean(out);
      seek.value = duration ? Math.round(1000 * position / duration) : 0;
      clock.textContent = fmt(position) + " / " + fmt(duration);
      player.setAttribute("data-position", position.toFixed(2));
    };
    var frame = function () {
      if (!playing) { return; }
      var t = from + (performance.now() - started) / 1000;
      draw(t);
      if (t >= duration) { playing = false; button.textContent = button.getAttribute("data-play"); player.setAttribute("data-state", "ended"); return; }
      window.requestAnimationFrame(frame);
    };
    fetch(player.getAttribute("data-cast"), { credentials: "same-origin" }).then(function (r) { return r.text(); })
      .then(function (text) {
        text.split("\n").slice(1).forEach(function (line) {
          if (!line.trim()) { return; }
          try { var e = JSON.parse(line); if (e[1] === "o") { events.push(e); } } catch (err) { /* not an event */ }
        });
        duration = events.length ? events[events.length - 1][0] : 0;
        player.setAttribute("data-state", "ready");
        player.setAttribute("data-duration", duration.toFixed(2));
        draw(0);
      });
    button.addEventListener("click", function () {
      if (playing) { playing = false; button.textContent = button.getAttribute("data-play"); player.setAttribute("data-state", "paused"); return; }
      if (position >= duration) { position = 0; }
      playing = true; from = position; started = performance.now();
      button.textContent = button.getAttribute("data-pause"); player.setAttribute("data-state", "playing");
      window.requestAnimationFrame(frame);
    });
    seek.addEventListener("input", function () {
      draw(duration * seek.value / 1000);
      if (playing) { from = position; started = performance.now(); }
    });
  });

  window.rpahub = { csrf: csrf };
})();
