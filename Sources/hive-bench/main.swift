#if canImport(Glibc)
import Glibc
#endif

// hive-bench: the load generator of scripts/bench.sh (see `hive-bench help`). Exit status: 0 when the run completed
// and every check passed (nothing lost, duplicated, out of order; no bytes on plain HTTP connections), 1 when it
// completed with problems (the JSON says which), 2 when it could not run, 124 on its global timeout.

let usage = """
    usage: hive-bench <subcommand> [options]

      fanout    --port P --redis redis://127.0.0.1:PORT --clients N --messages M [--size 64] [--rate R]
                [--processes K] [--threads T] [--http-idle 10] [--drain 30] [--hive-pids PID,...] [--json]
                N WebSocket clients on "/" (K processes, sources 127.0.0.2, .3, … 10,000 each); M messages
                PUBLISHed on "test" back to back or at R/s; exactly-once, order and publish->receive latency.
                [--expect-subscribers 2]: Redis subscribers each PUBLISH must reach (1 for hive; the C
                reference scripts/reference/fanout-minimal.c subscribes once per process).
      channels  --port P --redis URL --clients 10000 [--channels 100] [--channel-messages 1000]
                [--broadcast-messages 100] [--rate R] [--channel-prefix P] [--hive-pids PID,...]
                [--idle-window 2] [--expect-subscribers 2] [--json]
                client i joins channel ch<i % K> at connect; then message s is PUBLISHed on ch<s % K>, then
                broadcasts on "test": per phase deliveries/s and hive CPU per message, their ratio, and per
                client exactly its channel's messages and every broadcast, once, and nothing else. Hive's
                idle CPU over --idle-window seconds before the phases is also reported and subtracted.
      reload    --port P --redis URL --master-pid PID [--clients 10000] [--rate 20] [--seconds 20]
                [--reload-every 2] [--no-baseline] [--drop] [--processes K] [--json]
                the paced fanout twice on fresh clients: without reloads, then with SIGUSR1 (hive reload) to
                the master every 2 s while publishing; lost and duplicated must be 0, no client closed; the
                p99 latency of both runs. --drop: SIGUSR2 (hive reload --drop), which must fail the run.
      roundtrip --port P [--clients 100] [--messages 1000] [--size 64] [--hive-pids …] [--json]
                each client sends on /echo and waits for its echo before the next message.
      idle      --port P --clients N --hive-pids MASTER[,…] [--processes K] [--json]
                RSS of hive (master + workers, summed) before and after N idle WebSocket connections.
      recovery  --port P --redis URL --api-key KEY [--clients 1000] [--messages 600] [--rate 100]
                [--kill-pid PID] [--kill-after M/3] [--no-resume] [--plain-every K] [--channel news] [--threads T] [--drain 20] [--json]
                N clients behave like the demo page on one channel with envelope=json: remember the last
                offset, reconnect with jittered back-off and since=. M messages are published through hive
                (POST /api/publish) at R/s; with --kill-pid, that worker is killed with SIGKILL after message
                K. Every client must end with every message exactly once, in order (counted, not corrected).
                --plain-every 2: every other client without envelopes, for publish->receive latency side by side.
      publish   --port P --redis URL --api-key KEY --channel C [--messages 20000] [--connections 8]
                [--size 64] [--hive-pids PID,...] [--json]
                M messages through hive's POST /api/publish?channel=C on K keep-alive connections, back to back:
                publishes/s, request latency, hive's and Redis' CPU per message (a channel with history goes
                through the history script, one without is a plain PUBLISH).
      connections --port P --redis URL --hive-pids MASTER [--clients 100000] [--per-address 10000]
                [--processes K] [--broadcasts 3] [--storm 10000] [--storm-processes 1] [--json]
                N idle clients (K processes, sources 127.0.0.2, .3, … --per-address each): time to accept
                all, hive's RSS per connection (master + workers), broadcasts reaching all exactly once,
                then the busiest worker killed (SIGKILL) and --storm clients connecting at once:
                connections/s and connect-time percentiles. Exits 1 on any loss or failed connect.
      smoke     --port P --redis URL   (also: --smoke)
                200 clients, 50 messages, 2 processes, 10 plain HTTP connections; exits 1 on any loss,
                duplicate, reordering or byte on an HTTP connection; never runs over 60 s.

    Everything stays on 127.0.0.x. Output: a summary on stderr; with --json, the full report on stdout.
    """

signal(SIGPIPE, SIG_IGN)

func finish(ok: Bool, json: String, text: String, asJSON: Bool) -> Never {
    writeAll(2, Array((text + "\n").utf8))
    if asJSON { writeAll(1, Array((json + "\n").utf8)) }
    exit(ok ? 0 : 1)
}

do {
    let args = try Arguments(CommandLine.arguments)
    switch args.command {
    case "fanout":
        let report = try Fanout.run(try FanoutOptions(args))
        finish(ok: report.ok, json: Output.json(report), text: Output.text(report), asJSON: args.flag("json"))
    case "channels":
        let report = try Channels.run(try ChannelsOptions(args))
        finish(ok: report.ok, json: Output.json(report), text: Channels.text(report), asJSON: args.flag("json"))
    case "reload":
        let report = try Reload.run(try ReloadOptions(args))
        finish(ok: report.ok, json: Output.json(report), text: Reload.text(report), asJSON: args.flag("json"))
    case "roundtrip":
        let report = try Roundtrip.run(try RoundtripOptions(args))
        finish(ok: report.ok, json: Output.json(report), text: Output.text(report), asJSON: args.flag("json"))
    case "idle":
        let report = try Idle.run(try IdleOptions(args))
        finish(ok: report.ok, json: Output.json(report), text: Output.text(report), asJSON: args.flag("json"))
    case "recovery":
        let report = try Recovery.run(try RecoveryOptions(args))
        finish(ok: report.ok, json: Output.json(report), text: Recovery.text(report), asJSON: args.flag("json"))
    case "publish":
        let report = try PublishThroughput.run(try PublishOptions(args))
        finish(ok: report.ok, json: Output.json(report), text: PublishThroughput.text(report), asJSON: args.flag("json"))
    case "connections":
        let report = try Connections.run(try ConnectionsOptions(args))
        finish(ok: report.ok, json: Output.json(report), text: Connections.text(report), asJSON: args.flag("json"))
    case "smoke":
        // Small enough for a test suite (a few seconds), and still every path: two shard processes, the payload
        // checks, pipelined PUBLISH and the plain-HTTP probe. The drain and connect budgets are short on purpose.
        var options = try FanoutOptions(args)
        if !args.has("clients") { options.clients = 200 }
        if !args.has("messages") { options.messages = 50 }
        if !args.has("processes") { options.processes = 2 }
        if !args.has("drain") { options.drainSeconds = 5 }
        if !args.has("timeout") { options.timeoutOverride = 60 }
        try options.validate()
        let report = try Fanout.run(options)
        finish(ok: report.ok, json: Output.json(report), text: Output.text(report), asJSON: args.flag("json"))
    case "shard":
        Shard.run(try ShardOptions(args))
    case "help":
        writeAll(1, Array((usage + "\n").utf8))
        exit(0)
    default:
        throw Arguments.UsageError(description: "unknown subcommand \"\(args.command)\"")
    }
} catch {
    logLine("error: \(error)")
    exit(2)
}
