// The demo page served at `/`: it opens a WebSocket to the same host and port
// it was loaded from (`ws://<location.host>/`, or `wss://` under https), lists
// every message it receives and sends `{"action": ..., "content": ...}` as JSON.
// Channels: `/?channels=news,sport` opens the WebSocket with those channels, and
// the actions subscribe/unsubscribe send the channel field's name; the page
// keeps its channels in the WebSocket URL, so a reconnect joins them again.
// With channels it asks for envelopes (`envelope=json`) and shows their data;
// with one channel it resumes from its last offset (`since=`), so a reconnect
// (jittered exponential back-off, "Reconnecting…") shows every message missed.
// Self-contained: no external scripts, styles or fonts. Element ids used by the
// headless-browser tests: status, messages, action, channel, content, send.
enum DemoPage {
    static let html: String = #"""
<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>Hive demo</title>
<link rel="icon" href="/favicon.ico">
<style>
  :root { --amber: #f59e0b; --amber-dark: #b45309; --ink: #1f2328; --muted: #6b7280;
          --line: #e5e7eb; --bg: #faf8f3; --ok: #15803d; --bad: #b91c1c; }
  * { box-sizing: border-box; }
  body { margin: 0; background: var(--bg); color: var(--ink);
         font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif; }
  main { max-width: 640px; margin: 32px auto; padding: 0 16px; }
  header { display: flex; align-items: center; gap: 10px; margin-bottom: 14px; }
  header h1 { font-size: 20px; margin: 0; flex: 1; }
  header small { color: var(--muted); font-weight: normal; }
  #status { font-size: 13px; padding: 2px 10px; border-radius: 999px; border: 1px solid currentColor; color: var(--muted); }
  #status.ok { color: var(--ok); }
  #status.bad { color: var(--bad); }
  #note { font-size: 12px; color: var(--muted); min-height: 1.4em; margin: -6px 0 8px; text-align: right; }
  .card { background: #fff; border: 1px solid var(--line); border-radius: 10px; box-shadow: 0 1px 2px rgba(0,0,0,.04); }
  #messages { list-style: none; margin: 0; padding: 6px 0; height: 360px; overflow-y: auto;
              font: 13px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
  #messages li { padding: 4px 14px; border-bottom: 1px solid #f3f4f6; white-space: pre-wrap; word-break: break-word; }
  #messages li.bin { color: var(--amber-dark); font-style: italic; }
  #messages:empty::before { content: "No messages yet."; display: block; padding: 4px 14px; color: var(--muted); font-family: system-ui, sans-serif; }
  form { display: flex; gap: 8px; padding: 10px; border-top: 1px solid var(--line); }
  select, input, button { font: inherit; padding: 7px 10px; border: 1px solid #d1d5db; border-radius: 7px; background: #fff; color: inherit; }
  input { flex: 1; min-width: 0; }
  #channel { flex: 0 1 110px; }
  select:focus, input:focus { outline: 2px solid var(--amber); outline-offset: -1px; }
  button { background: var(--amber); border-color: var(--amber-dark); color: #fff; font-weight: 600; cursor: pointer; }
  button:hover { background: var(--amber-dark); }
  button:disabled { opacity: .5; cursor: default; background: var(--amber); }
</style>
</head>
<body>
<main>
  <header>
    <svg width="26" height="28" viewBox="0 0 26 30" aria-hidden="true">
      <polygon points="13,1 25,8 25,22 13,29 1,22 1,8" fill="#f59e0b" stroke="#b45309" stroke-width="2"/>
      <polygon points="13,10 18,13 18,18 13,21 8,18 8,13" fill="#fde68a"/>
    </svg>
    <h1>Hive <small>WebSocket demo</small></h1>
    <span id="status">Connecting</span>
  </header>
  <div id="note"></div>
  <div class="card">
    <ul id="messages" aria-live="polite"></ul>
    <form id="form" autocomplete="off">
      <select id="action" aria-label="action">
        <option value="who">who</option>
        <option value="hello">hello</option>
        <option value="broadcast">broadcast</option>
        <option value="subscribe">subscribe</option>
        <option value="unsubscribe">unsubscribe</option>
        <option value="bind">bind (message: user)</option>
      </select>
      <input id="channel" type="text" placeholder="Channel" aria-label="channel" maxlength="64">
      <input id="content" type="text" placeholder="Message" aria-label="content">
      <button id="send" type="submit" disabled>Send</button>
    </form>
  </div>
</main>
<script>
(function () {
  "use strict";
  var $ = function (id) { return document.getElementById(id); };
  var list = $("messages"), status = $("status"), note = $("note");
  var action = $("action"), channel = $("channel"), content = $("content"), send = $("send");
  var base = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
  var channels = (new URLSearchParams(location.search).get("channels") || "").split(",").filter(Boolean);
  var url = base;
  var ws = null, delay = 500, timer = null;
  var last = {};  // channel -> the offset of the last envelope shown: where a reconnect resumes

  function setStatus(text, cls, detail) {
    status.textContent = text;
    status.className = cls || "";
    note.textContent = detail || "";
    send.disabled = text !== "Connected";
  }

  function add(text, cls) {
    var stick = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
    var li = document.createElement("li");
    li.textContent = text;
    if (cls) li.className = cls;
    list.appendChild(li);
    if (stick) list.scrollTop = list.scrollHeight;
  }

  function connect() {
    timer = null;
    var query = [];
    if (channels.length) {
      query.push("channels=" + encodeURIComponent(channels.join(",")), "envelope=json");
      var resume = channels.length === 1 && last[channels[0]];
      if (resume) query.push("since=" + encodeURIComponent(resume));
    }
    url = base + (query.length ? "?" + query.join("&") : "");
    setStatus("Connecting", "", url);
    try {
      ws = new WebSocket(url);
    } catch (e) {
      setStatus("Error", "bad", String(e && e.message || e));
      return retry();
    }
    ws.binaryType = "arraybuffer";
    ws.onopen = function () { delay = 500; setStatus("Connected", "ok", url); };
    ws.onmessage = function (ev) {
      if (typeof ev.data !== "string") return add("binary " + ev.data.byteLength + " bytes", "bin");
      var envelope = null;
      if (ev.data.lastIndexOf('{"channel":', 0) === 0) { try { envelope = JSON.parse(ev.data); } catch (e) {} }
      if (!envelope) return add(ev.data);
      if (envelope.recovered === false) {
        delete last[envelope.channel];
        return add("history of " + envelope.channel + " lost: messages may be missing", "bad");
      }
      if (envelope.offset) last[envelope.channel] = envelope.offset;
      if (envelope.encoding === "base64") add("binary " + atob(envelope.data).length + " bytes", "bin");
      else add(envelope.data);
    };
    ws.onerror = function () { setStatus("Error", "bad", "WebSocket error on " + url); };
    ws.onclose = function (ev) { ws = null; retry(ev.code); };
  }

  // Jittered exponential back-off: many pages that lost one server do not all come back at the same moment.
  function retry(code) {
    if (timer) return;
    var wait = delay * (0.8 + Math.random() * 0.4);
    setStatus("Reconnecting…", "bad", (code ? "closed (" + code + "), " : "") +
              "reconnecting in " + (wait / 1000).toFixed(1) + " s");
    timer = setTimeout(connect, wait);
    delay = Math.min(delay * 2, 8000);
  }

  $("form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    if (!ws || ws.readyState !== WebSocket.OPEN) { note.textContent = "Not connected"; return; }
    var name = channel.value.trim();
    if (action.value === "subscribe" || action.value === "unsubscribe") {
      ws.send(JSON.stringify({ action: action.value, content: name }));
      var at = channels.indexOf(name);
      if (action.value === "subscribe" && at < 0 && name) channels.push(name);
      if (action.value === "unsubscribe" && at >= 0) channels.splice(at, 1);
      return;
    }
    if (action.value === "bind") {
      ws.send(JSON.stringify({ action: "bind", user: content.value }));  // then: hive push --user NAME MSG
    } else {
      ws.send(JSON.stringify({ action: action.value, content: content.value }));
    }
    content.value = "";
    content.focus();
  });

  connect();
})();
</script>
</body>
</html>
"""#
}
