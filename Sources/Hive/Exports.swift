// What an application sees with `import Hive`: the application API (HiveApplication, HiveServer, HiveMessage,
// HiveRequest, HiveResponse, HiveRouter, ...) and the value types it speaks in (ConnectionID, ProtocolState,
// ConnectionSnapshot, HiveError, and swift-http-types' HTTPRequest, HTTPFields, HTTPResponse.Status). The master,
// the registry writers, IPC records and descriptor passing are `package` API of those modules: a Hive application
// cannot reach them.
@_exported import HTTPTypes
@_exported import HiveIPC
@_exported import HiveRedis
@_exported import HiveWorker
@_exported import Logging
