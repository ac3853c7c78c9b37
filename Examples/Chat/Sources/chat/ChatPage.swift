/// The page on `/`: a WebSocket to the host it came from, a line to type in, and what the room says.
enum ChatPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Chat</title>
    <style>
      body { font: 15px/1.45 system-ui, sans-serif; max-width: 640px; margin: 32px auto; padding: 0 16px; }
      #lines { font-family: ui-monospace, monospace; list-style: none; padding: 0; min-height: 200px; }
      form { display: flex; gap: 8px; } input { flex: 1; }
    </style>
    </head>
    <body>
    <h1>Chat</h1>
    <p>Type <code>/join lobby</code>, then anything; <code>/who</code> lists the room.</p>
    <ul id="lines"></ul>
    <form id="form" autocomplete="off"><input id="text" aria-label="message"><button>Send</button></form>
    <script>
    (function () {
      "use strict";
      var lines = document.getElementById("lines"), text = document.getElementById("text");
      var ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/");
      function add(line) {
        var item = document.createElement("li");
        item.textContent = line;
        lines.appendChild(item);
      }
      ws.onmessage = function (event) { add(event.data); };
      ws.onclose = function (event) { add("(closed " + event.code + "; reload the page)"); };
      document.getElementById("form").addEventListener("submit", function (event) {
        event.preventDefault();
        if (text.value && ws.readyState === WebSocket.OPEN) { ws.send(text.value); text.value = ""; }
      });
    })();
    </script>
    </body>
    </html>
    """#
}
