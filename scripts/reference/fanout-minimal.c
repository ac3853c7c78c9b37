// The least a WebSocket fan-out server can do per Redis message on this machine, for `make bench` to show next to
// Hive (scenarios fanout_c_*). Not part of Hive and not a server to use: it accepts any WebSocket handshake, never
// pings, ignores what clients send (a read of 0 or an error closes the connection), and relays each message of one
// Redis channel to every client as a text frame. No TLS, no limits beyond a 64 MiB backlog per client, no auth.
//
// Two serving processes (SO_REUSEPORT listeners, like Hive's two workers), level-triggered epoll. Each process holds
// its own Redis subscription (so a PUBLISH reaches 2 subscribers; hive-bench runs with --expect-subscribers 2), reads
// it 64 KiB at a time, and for the `message` replies of one read either
//   coalesce:  builds every frame into one buffer and sends it to each client with one send() (the reference)
//   per-frame: sends each frame to each client with its own send()
// A client whose socket is full keeps the rest in a buffer sent on EPOLLOUT, in order.
// With a channel count N (6th argument, default 0), each process also subscribes to ch0 ... ch<N-1>, a client whose
// upgrade request names `channels=chK` (one channel, as hive-bench's `channels` scenario asks) joins channel K, and
// a message on chK goes to that channel's clients only (the broadcast channel still reaches every client): the least
// a server with channels does, for the issue 11 scenarios (channels_c_*). Consecutive messages of one target in a
// Redis read are coalesced, a change of target sends what was gathered.
// The parent only waits: SIGTERM or SIGINT stops and reaps the children, which also die with it (PR_SET_PDEATHSIG);
// a child that exits (Redis gone) makes the parent stop the others and exit 1.
//
//   cc -O2 -o fanout-minimal fanout-minimal.c
//   ./fanout-minimal <port> <redis port> [channel: test] [processes: 2] [coalesce|per-frame] [channels: 0]
//   ./fanout-minimal --accept <Sec-WebSocket-Key>    prints the Sec-WebSocket-Accept value (a check of SHA-1 + base64)
#define _GNU_SOURCE
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

// ---- SHA-1 (FIPS 180-1) and base64: the handshake's Sec-WebSocket-Accept, nothing else.

static uint32_t rol(uint32_t x, int n) { return x << n | x >> (32 - n); }

static void sha1(const unsigned char *data, size_t length, unsigned char digest[20]) {
    uint32_t h[5] = {0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0};
    size_t total = ((length + 8) / 64 + 1) * 64;
    unsigned char *m = calloc(total, 1);
    if (!m) abort();
    memcpy(m, data, length);
    m[length] = 0x80;
    uint64_t bits = (uint64_t)length * 8;
    for (int i = 0; i < 8; i++) m[total - 1 - i] = (unsigned char)(bits >> (8 * i));
    for (size_t block = 0; block < total; block += 64) {
        uint32_t w[80];
        for (int i = 0; i < 16; i++) {
            const unsigned char *p = m + block + 4 * i;
            w[i] = (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
        }
        for (int i = 16; i < 80; i++) w[i] = rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
        uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
        for (int i = 0; i < 80; i++) {
            uint32_t f, k;
            if (i < 20) f = (b & c) | (~b & d), k = 0x5A827999;
            else if (i < 40) f = b ^ c ^ d, k = 0x6ED9EBA1;
            else if (i < 60) f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
            else f = b ^ c ^ d, k = 0xCA62C1D6;
            uint32_t t = rol(a, 5) + f + e + k + w[i];
            e = d, d = c, c = rol(b, 30), b = a, a = t;
        }
        h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
    }
    free(m);
    for (int i = 0; i < 20; i++) digest[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

static void base64(const unsigned char *in, size_t length, char *out) {
    static const char table[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t i = 0;
    for (; i + 2 < length; i += 3) {
        uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];
        *out++ = table[v >> 18], *out++ = table[v >> 12 & 63], *out++ = table[v >> 6 & 63], *out++ = table[v & 63];
    }
    if (i < length) {
        uint32_t v = (uint32_t)in[i] << 16 | (i + 1 < length ? (uint32_t)in[i + 1] << 8 : 0);
        *out++ = table[v >> 18], *out++ = table[v >> 12 & 63];
        *out++ = i + 1 < length ? table[v >> 6 & 63] : '=';
        *out++ = '=';
    }
    *out = 0;
}

static void accept_value(const char *key, size_t length, char out[29]) {
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char text[128], digest[20];
    if (length > sizeof text - sizeof guid) length = sizeof text - sizeof guid;
    memcpy(text, key, length);
    memcpy(text + length, guid, sizeof guid - 1);
    sha1(text, length + sizeof guid - 1, digest);
    base64(digest, 20, out);
}

// ---- Connections, indexed by fd.

enum { HANDSHAKING = 1, OPEN = 2 };
#define HEAD_MAX 4096
#define BACKLOG_MAX (64 << 20)

struct connection {
    int state;
    int position; // index in open_fds while OPEN
    int channel;  // 1 + the channel it joined (0: none), and its index in that channel's list
    int channel_position;
    char *head;   // the request head while HANDSHAKING
    size_t head_length;
    char *out; // bytes the socket did not take yet (sent on EPOLLOUT, before anything newer)
    size_t out_length, out_capacity;
};

static struct connection *connections;
static int capacity, poller;
static int *open_fds, open_count;
// Channel k's clients: channel_fds[k][0 .. channel_count[k]-1].
static int channel_total, **channel_fds, *channel_count, *channel_capacity;

static void leave_channel(int fd) {
    struct connection *c = &connections[fd];
    if (c->channel == 0) return;
    int k = c->channel - 1, last = channel_fds[k][--channel_count[k]];
    channel_fds[k][c->channel_position] = last;
    connections[last].channel_position = c->channel_position;
    c->channel = 0;
}

static void join_channel(int fd, int k) {
    if (channel_count[k] == channel_capacity[k]) {
        channel_capacity[k] = channel_capacity[k] ? 2 * channel_capacity[k] : 64;
        channel_fds[k] = realloc(channel_fds[k], (size_t)channel_capacity[k] * sizeof(int));
        if (!channel_fds[k]) abort();
    }
    connections[fd].channel = k + 1;
    connections[fd].channel_position = channel_count[k];
    channel_fds[k][channel_count[k]++] = fd;
}

static void drop(int fd) {
    struct connection *c = &connections[fd];
    if (c->state == OPEN) {
        int last = open_fds[--open_count];
        open_fds[c->position] = last;
        connections[last].position = c->position;
    }
    leave_channel(fd);
    free(c->head);
    free(c->out);
    memset(c, 0, sizeof *c);
    close(fd);
}

static void want_output(int fd, int on) {
    struct epoll_event event = {.events = EPOLLIN | (on ? EPOLLOUT : 0), .data.fd = fd};
    epoll_ctl(poller, EPOLL_CTL_MOD, fd, &event);
}

// Sends or queues bytes for one client; returns 0 when the client had to be dropped.
static int deliver(int fd, const char *bytes, size_t length) {
    struct connection *c = &connections[fd];
    size_t sent = 0;
    if (c->out_length == 0) {
        ssize_t n = send(fd, bytes, length, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n < 0 && errno != EAGAIN && errno != EINTR) {
            drop(fd);
            return 0;
        }
        sent = n > 0 ? (size_t)n : 0;
        if (sent == length) return 1;
        want_output(fd, 1);
    }
    size_t rest = length - sent;
    if (c->out_length + rest > BACKLOG_MAX) {
        drop(fd);
        return 0;
    }
    if (c->out_length + rest > c->out_capacity) {
        size_t grown = c->out_capacity ? c->out_capacity : 4096;
        while (grown < c->out_length + rest) grown *= 2;
        char *bigger = realloc(c->out, grown);
        if (!bigger) abort();
        c->out = bigger, c->out_capacity = grown;
    }
    memcpy(c->out + c->out_length, bytes + sent, rest);
    c->out_length += rest;
    return 1;
}

static void flush_output(int fd) {
    struct connection *c = &connections[fd];
    ssize_t n = send(fd, c->out, c->out_length, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR) drop(fd);
        return;
    }
    memmove(c->out, c->out + n, c->out_length - (size_t)n);
    c->out_length -= (size_t)n;
    if (c->out_length == 0) want_output(fd, 0);
}

// Every open client (target -1) or channel k's (target k), newest first: a drop moves the last client into the
// dropped one's place, so walk backwards.
static void deliver_to(int target, const char *bytes, size_t length) {
    if (target < 0) {
        for (int i = open_count - 1; i >= 0; i--) deliver(open_fds[i], bytes, length);
    } else {
        for (int i = channel_count[target] - 1; i >= 0; i--) deliver(channel_fds[target][i], bytes, length);
    }
}

// The channel K of `channels=chK` in the request line's target, or -1.
static int requested_channel(const char *head) {
    const char *line_end = strstr(head, "\r\n"), *p = strstr(head, "channels=ch");
    if (!p || !line_end || p > line_end) return -1;
    long k = strtol(p + strlen("channels=ch"), NULL, 10);
    return k >= 0 && k < channel_total ? (int)k : -1;
}

static void handshake(int fd) {
    struct connection *c = &connections[fd];
    ssize_t n = read(fd, c->head + c->head_length, HEAD_MAX - 1 - c->head_length);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        drop(fd);
        return;
    }
    c->head_length += (size_t)n;
    c->head[c->head_length] = 0;
    if (!strstr(c->head, "\r\n\r\n")) {
        if (c->head_length >= HEAD_MAX - 1) drop(fd);
        return;
    }
    char *key = strcasestr(c->head, "\r\nSec-WebSocket-Key:");
    if (!key) {
        static const char refused[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)!write(fd, refused, sizeof refused - 1);
        drop(fd);
        return;
    }
    key += strlen("\r\nSec-WebSocket-Key:");
    while (*key == ' ' || *key == '\t') key++;
    size_t key_length = strcspn(key, " \t\r");
    char accept[29], response[256];
    accept_value(key, key_length, accept);
    int length = snprintf(response, sizeof response,
                          "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: %s\r\n\r\n",
                          accept);
    int channel = requested_channel(c->head);
    free(c->head);
    c->head = NULL;
    c->state = OPEN;
    c->position = open_count;
    open_fds[open_count++] = fd;
    if (channel >= 0) join_channel(fd, channel);
    deliver(fd, response, (size_t)length);
}

// ---- Redis: the subscription and a minimal RESP reader for its replies.

static int connect_redis(int port, const char *channel) { // and ch0 ... ch<channel_total - 1>
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1;
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (fd < 0 || connect(fd, (struct sockaddr *)&address, sizeof address) != 0) {
        perror("fanout-minimal: cannot connect to Redis on 127.0.0.1");
        exit(1);
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    size_t room = 512 + 32 * (size_t)channel_total;
    char *command = malloc(room), name[32];
    if (!command) abort();
    int length = snprintf(command, room, "*%d\r\n$9\r\nSUBSCRIBE\r\n$%zu\r\n%s\r\n", 2 + channel_total, strlen(channel), channel);
    for (int k = 0; k < channel_total; k++) {
        snprintf(name, sizeof name, "ch%d", k);
        length += snprintf(command + length, room - (size_t)length, "$%zu\r\n%s\r\n", strlen(name), name);
    }
    ssize_t written = write(fd, command, (size_t)length);
    free(command);
    if (written != length) {
        perror("fanout-minimal: SUBSCRIBE");
        exit(1);
    }
    return fd;
}

static int number(const char *p, const char *end, long *value, const char **next) {
    const char *cr = memchr(p, '\r', (size_t)(end - p));
    if (!cr || cr + 1 >= end) return 0;
    *value = strtol(p, NULL, 10);
    *next = cr + 2;
    return 1;
}

// One reply at `buffer`: its size (0 while incomplete, -1 when not a pub/sub reply); for a `message` reply, its
// channel and payload.
static long parse_reply(const char *buffer, long length, const char **channel, long *channel_length,
                        const char **payload, long *payload_length) {
    const char *p = buffer, *end = buffer + length;
    long count, n;
    int is_message = 0;
    *payload = NULL;
    if (length < 1) return 0;
    if (*p != '*') return -1;
    if (!number(p + 1, end, &count, &p)) return 0;
    for (long i = 0; i < count; i++) {
        if (p >= end) return 0;
        char type = *p;
        if (!number(p + 1, end, &n, &p)) return 0;
        if (type == ':') continue;
        if (type != '$') return -1;
        if (n < 0) continue;
        if (end - p < n + 2) return 0;
        if (i == 0) is_message = n == 7 && memcmp(p, "message", 7) == 0;
        if (i == 1 && is_message) *channel = p, *channel_length = n;
        if (i == 2 && is_message) *payload = p, *payload_length = n;
        p += n + 2;
    }
    return p - buffer;
}

static size_t frame_header(long length, unsigned char *header) {
    header[0] = 0x81; // FIN + text
    if (length < 126) {
        header[1] = (unsigned char)length;
        return 2;
    }
    if (length <= 0xFFFF) {
        header[1] = 126, header[2] = (unsigned char)(length >> 8), header[3] = (unsigned char)length;
        return 4;
    }
    header[1] = 127;
    for (int i = 0; i < 8; i++) header[2 + i] = (unsigned char)((uint64_t)length >> (56 - 8 * i));
    return 10;
}

static char *redis_in, *batch;
static size_t redis_length, batch_capacity;

// -1 for the broadcast channel (and anything that is not chK of this run), else K.
static int target_of(const char *channel, long length) {
    if (length < 3 || memcmp(channel, "ch", 2) != 0 || channel_total == 0) return -1;
    long k = 0;
    for (long i = 2; i < length; i++) {
        if (channel[i] < '0' || channel[i] > '9' || k > channel_total) return -1;
        k = 10 * k + (channel[i] - '0');
    }
    return k < channel_total ? (int)k : -1;
}

static void read_redis(int fd, int coalesce) {
    enum { READ = 65536 };
    ssize_t n = read(fd, redis_in + redis_length, READ);
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
        fprintf(stderr, "fanout-minimal: Redis closed the subscription; exiting\n");
        exit(1);
    }
    redis_length += (size_t)n;
    size_t offset = 0, batch_length = 0;
    int batch_target = -1;
    for (;;) {
        const char *payload, *channel = NULL;
        long payload_length = 0, channel_length = 0;
        long used = parse_reply(redis_in + offset, (long)(redis_length - offset), &channel, &channel_length, &payload,
                                &payload_length);
        if (used < 0) {
            fprintf(stderr, "fanout-minimal: a Redis reply this reader does not understand; exiting\n");
            exit(1);
        }
        if (used == 0) break;
        offset += (size_t)used;
        if (!payload) continue;
        int target = target_of(channel, channel_length);
        if (coalesce && batch_length > 0 && target != batch_target) {
            deliver_to(batch_target, batch, batch_length);
            batch_length = 0;
        }
        batch_target = target;
        size_t need = batch_length + 10 + (size_t)payload_length;
        if (need > batch_capacity) {
            while (batch_capacity < need) batch_capacity *= 2;
            batch = realloc(batch, batch_capacity);
            if (!batch) abort();
        }
        size_t start = batch_length;
        batch_length += frame_header(payload_length, (unsigned char *)batch + batch_length);
        memcpy(batch + batch_length, payload, (size_t)payload_length);
        batch_length += (size_t)payload_length;
        if (!coalesce) {
            deliver_to(target, batch + start, batch_length - start);
            batch_length = 0;
        }
    }
    if (coalesce && batch_length > 0) deliver_to(batch_target, batch, batch_length);
    memmove(redis_in, redis_in + offset, redis_length - offset);
    redis_length -= offset;
    // A reply longer than the buffer's free room: make room for the next 64 KiB read.
    redis_in = realloc(redis_in, redis_length + READ);
    if (!redis_in) abort();
}

// ---- One serving process.

static int listener(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 4096) != 0) {
        perror("fanout-minimal: cannot listen on 127.0.0.1");
        exit(1);
    }
    return fd;
}

static void serve(int port, int redis_port, const char *channel, int coalesce) {
    struct rlimit limit;
    getrlimit(RLIMIT_NOFILE, &limit);
    capacity = (int)limit.rlim_cur;
    connections = calloc((size_t)capacity, sizeof *connections);
    open_fds = calloc((size_t)capacity, sizeof *open_fds);
    redis_in = malloc(65536);
    batch_capacity = 65536;
    batch = malloc(batch_capacity);
    channel_fds = calloc((size_t)channel_total + 1, sizeof *channel_fds);
    channel_count = calloc((size_t)channel_total + 1, sizeof *channel_count);
    channel_capacity = calloc((size_t)channel_total + 1, sizeof *channel_capacity);
    if (!connections || !open_fds || !redis_in || !batch || !channel_fds || !channel_count || !channel_capacity) abort();

    int listening = listener(port), redis = connect_redis(redis_port, channel), one = 1;
    poller = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listening}, events[256];
    epoll_ctl(poller, EPOLL_CTL_ADD, listening, &event);
    event.data.fd = redis;
    epoll_ctl(poller, EPOLL_CTL_ADD, redis, &event);
    char discard[16384];
    for (;;) {
        int ready = epoll_wait(poller, events, 256, -1);
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == listening) {
                int client;
                while ((client = accept4(listening, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    if (client >= capacity) {
                        close(client);
                        continue;
                    }
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    connections[client].state = HANDSHAKING;
                    connections[client].head = malloc(HEAD_MAX);
                    if (!connections[client].head) abort();
                    struct epoll_event added = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(poller, EPOLL_CTL_ADD, client, &added);
                }
            } else if (fd == redis) {
                read_redis(redis, coalesce);
            } else if (connections[fd].state == HANDSHAKING) {
                handshake(fd);
            } else if (connections[fd].state == OPEN) {
                if (events[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) {
                    ssize_t n = read(fd, discard, sizeof discard); // client frames (pongs, close): not looked at
                    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
                        drop(fd);
                        continue;
                    }
                }
                if ((events[i].events & EPOLLOUT) && connections[fd].out_length > 0) flush_output(fd);
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "--accept") == 0) {
        char accept[29];
        accept_value(argv[2], strlen(argv[2]), accept);
        printf("%s\n", accept);
        return 0;
    }
    if (argc < 3) {
        fprintf(stderr, "usage: fanout-minimal <port> <redis port> [channel] [processes] [coalesce|per-frame] [channels]\n");
        return 2;
    }
    int port = atoi(argv[1]), redis_port = atoi(argv[2]);
    const char *channel = argc > 3 ? argv[3] : "test";
    int processes = argc > 4 ? atoi(argv[4]) : 2;
    int coalesce = !(argc > 5 && strcmp(argv[5], "per-frame") == 0);
    if (processes < 1 || processes > 64) processes = 2;
    channel_total = argc > 6 ? atoi(argv[6]) : 0;
    if (channel_total < 0 || channel_total > 10000) {
        fprintf(stderr, "fanout-minimal: the channel count must be 0 to 10000\n");
        return 2;
    }
    if (strlen(channel) > 256) {
        fprintf(stderr, "fanout-minimal: channel name over 256 bytes\n");
        return 2;
    }
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigaddset(&stop, SIGCHLD);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    pid_t children[64];
    for (int p = 0; p < processes; p++) {
        children[p] = fork();
        if (children[p] < 0) {
            perror("fanout-minimal: fork");
            for (int q = 0; q < p; q++) kill(children[q], SIGTERM);
            return 1;
        }
        if (children[p] == 0) {
            sigprocmask(SIG_UNBLOCK, &stop, NULL);
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            if (getppid() == 1) _exit(1);
            serve(port, redis_port, channel, coalesce);
        }
    }
    fprintf(stderr, "fanout-minimal: %d processes on 127.0.0.1:%d, Redis channel %s (and %d channels ch0...) on port %d, %s\n",
            processes, port, channel, channel_total, redis_port,
            coalesce ? "coalescing the frames of one Redis read" : "one send per frame");
    int signal, status = 0;
    sigwait(&stop, &signal);
    if (signal == SIGCHLD) status = 1;
    for (int p = 0; p < processes; p++) kill(children[p], SIGTERM);
    for (int p = 0; p < processes; p++) waitpid(children[p], NULL, 0);
    return status;
}
