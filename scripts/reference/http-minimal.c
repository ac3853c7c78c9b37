// The least an HTTP/1.1 keep-alive server can do per request on this machine, for `make bench` to show next to
// Hive (scenarios http_c_reference and http_c_post_echo). Not part of Hive and not a server to use: it answers a POST
// with its body back (Content-Length framing only, as Hive's demo answers POST /echo) and every other request with
// the response Hive's demo gives to GET /hello, and understands nothing else.
//
// Two serving processes (SO_REUSEPORT listeners, like Hive's two workers), level-triggered epoll, one read and one
// write per request; each connection keeps what it read of an unfinished request until the rest arrives. The parent only waits: SIGTERM or SIGINT to it stops and reaps the children, which also die
// with it if it is killed (PR_SET_PDEATHSIG).
//
//   cc -O2 -o http-minimal http-minimal.c && ./http-minimal <port> [processes]
#define _GNU_SOURCE
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

// Hive's demo names the connection and the worker on every response (X-Hive-Connection, X-Hive-Worker), so the same
// bytes go to wrk from both servers: a connection's fields, and its whole response to a GET, are written once, when
// its first request arrives.
static int worker;
static unsigned long long accepted;

// What a connection read and has not answered yet (allocated on its first read; wrk's descriptors are small).
enum { MAX_FD = 65536, CONNECTION_BUFFER = 65536 };
struct connection {
    size_t used;
    char fields[80];  // "X-Hive-Connection: ID\r\nX-Hive-Worker: N\r\n"
    size_t fields_length;
    char hello[240];  // the whole response to a GET
    size_t hello_length;
    char data[CONNECTION_BUFFER];
};
static struct connection *connections[MAX_FD];

// Answers the complete requests at the start of `c`, keeps an unfinished one; -1 when the client must be dropped.
static int answer(int fd, struct connection *c) {
    size_t start = 0;
    for (;;) {
        char *head = c->data + start, *end = NULL;
        size_t left = c->used - start;
        for (size_t j = 3; j < left; j++) {
            if (head[j] == '\n' && head[j - 1] == '\r' && head[j - 2] == '\n' && head[j - 3] == '\r') {
                end = head + j + 1;
                break;
            }
        }
        if (end == NULL) break;
        size_t length = 0;
        if (left > 4 && memcmp(head, "POST", 4) == 0) {
            for (char *line = head; line < end - 16; line++) {
                if (line[0] == '\n' && strncasecmp(line + 1, "content-length:", 15) == 0) {
                    length = strtoul(line + 16, NULL, 10);
                    break;
                }
            }
            if (length > CONNECTION_BUFFER / 2) return -1;
            if ((size_t)(end - head) + length > left) break;
            char status[240];
            int size = snprintf(status, sizeof status,
                                "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\n%.*sContent-Length: %zu\r\n"
                                "Connection: keep-alive\r\n\r\n", (int)c->fields_length, c->fields, length);
            struct iovec parts[2] = {{status, (size_t)size}, {end, length}};
            if (writev(fd, parts, 2) < 0) return -1;
        } else if (write(fd, c->hello, c->hello_length) < 0) {
            return -1;
        }
        start += (size_t)(end - head) + length;
    }
    if (start == 0 && c->used == CONNECTION_BUFFER) return -1;  // a head larger than the buffer
    memmove(c->data, c->data + start, c->used - start);
    c->used -= start;
    return 0;
}

static int listener(int port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof one);
    struct sockaddr_in address = {.sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(0x7f000001)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&address, sizeof address) != 0 || listen(fd, 1024) != 0) {
        perror("http-minimal: cannot listen on 127.0.0.1");
        exit(1);
    }
    return fd;
}

static void serve(int port) {
    int listening = listener(port), one = 1;
    int poll = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event event = {.events = EPOLLIN, .data.fd = listening}, events[256];
    epoll_ctl(poll, EPOLL_CTL_ADD, listening, &event);
    for (;;) {
        int ready = epoll_wait(poll, events, 256, -1);
        for (int i = 0; i < ready; i++) {
            int fd = events[i].data.fd;
            if (fd == listening) {
                int client;
                while ((client = accept4(listening, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    setsockopt(client, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    struct epoll_event added = {.events = EPOLLIN, .data.fd = client};
                    epoll_ctl(poll, EPOLL_CTL_ADD, client, &added);
                }
                continue;
            }
            if (fd >= MAX_FD) {
                close(fd);
                continue;
            }
            if (connections[fd] == NULL && (connections[fd] = calloc(1, sizeof *connections[fd])) == NULL) exit(1);
            struct connection *c = connections[fd];
            if (c->fields_length == 0) {
                // Hive's ids: the generation in the high 32 bits; here the worker, 1-based, and a count.
                unsigned long long id = ((unsigned long long)(worker + 1) << 32) | ++accepted;
                c->fields_length = (size_t)snprintf(c->fields, sizeof c->fields,
                                                    "X-Hive-Connection: %llu\r\nX-Hive-Worker: %d\r\n", id, worker);
                c->hello_length = (size_t)snprintf(c->hello, sizeof c->hello,
                                                   "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\n%s"
                                                   "Content-Length: 5\r\nConnection: keep-alive\r\n\r\nhello", c->fields);
            }
            ssize_t length = read(fd, c->data + c->used, CONNECTION_BUFFER - c->used);
            if (length <= 0 || (c->used += (size_t)length, answer(fd, c) < 0)) {
                c->used = 0;
                c->fields_length = 0;
                close(fd);
            }
        }
    }
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: http-minimal <port> [processes]\n");
        return 2;
    }
    int port = atoi(argv[1]), processes = argc > 2 ? atoi(argv[2]) : 2;
    if (processes < 1 || processes > 64) processes = 2;
    sigset_t stop;
    sigemptyset(&stop);
    sigaddset(&stop, SIGTERM);
    sigaddset(&stop, SIGINT);
    sigprocmask(SIG_BLOCK, &stop, NULL);
    pid_t children[64];
    for (int p = 0; p < processes; p++) {
        children[p] = fork();
        if (children[p] == 0) {
            sigprocmask(SIG_UNBLOCK, &stop, NULL);
            prctl(PR_SET_PDEATHSIG, SIGTERM);
            worker = p;
            serve(port);
        }
    }
    int signal;
    sigwait(&stop, &signal);
    for (int p = 0; p < processes; p++) kill(children[p], SIGTERM);
    for (int p = 0; p < processes; p++) waitpid(children[p], NULL, 0);
    return 0;
}
