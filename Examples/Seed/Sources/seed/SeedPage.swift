/// The page on `/`: it opens a WebSocket to the host it came from and lists every message that arrives.
/// Self-contained: no external script, style or font.
enum SeedPage {
    static let html = #"""
    <!doctype html>
    <html lang="en">
    <head>
    <meta charset="utf-8">
    <meta name="viewport" content="width=device-width, initial-scale=1">
    <title>Seed: news over WebSocket</title>
    <link rel="icon" href="/favicon.ico">
    <style>
      body { font: 15px/1.45 system-ui, sans-serif; max-width: 640px; margin: 32px auto; padding: 0 16px; }
      #status { color: #6b7280; }
      #status.ok { color: #15803d; }
      #messages { font-family: ui-monospace, monospace; list-style: none; padding: 0; }
      #messages li { padding: 4px 0; border-bottom: 1px solid #e5e7eb; }
    </style>
    </head>
    <body>
    <h1>News <small id="status">connecting</small></h1>
    <p>Every message published to the Redis channel <code>news</code> appears here.</p>
    <ul id="messages"></ul>
    <script>
    (function () {
      "use strict";
      var list = document.getElementById("messages"), status = document.getElementById("status");
      var url = (location.protocol === "https:" ? "wss://" : "ws://") + location.host + "/";
      function connect() {
        var ws = new WebSocket(url);
        ws.onopen = function () { status.textContent = "connected"; status.className = "ok"; };
        ws.onmessage = function (event) {
          var item = document.createElement("li");
          item.textContent = typeof event.data === "string" ? event.data : "(binary message)";
          list.prepend(item);
        };
        ws.onclose = function () {
          status.textContent = "disconnected, retrying"; status.className = "";
          setTimeout(connect, 2000);
        };
      }
      connect();
    })();
    </script>
    </body>
    </html>
    """#

    /// A hexagon, served as /favicon.ico (browsers accept SVG there).
    static let icon = #"""
    <svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 26 30"><polygon points="13,1 25,8 25,22 13,29 1,22 1,8" fill="#f59e0b"/></svg>
    """#
}
