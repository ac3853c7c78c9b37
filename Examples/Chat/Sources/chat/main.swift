// Chat: rooms over WebSocket, with the room table as per-worker state.
//
//   chat start --port 9502 --redis none        (add --redis URL to share rooms between hosts)
//   then, in two terminals: websocat ws://127.0.0.1:9502/   and type /join lobby, then anything
import Hive

try await HiveMain.run(Chat())
