// The least an HTTP/1.1 keep-alive server can do per request on this machine, for `make bench` to show next to
// Hive (scenario http_c_reference). Not part of Hive and not a server to use: it answers every request with the
// same response Hive's demo gives to GET /hello and understands nothing else.
//
// Two serving processes (SO_REUSEPORT listeners, like Hive's two workers), level-triggered epoll, one read and one
// write per request. The parent only waits: SIGTERM or SIGINT to it stops and reaps the children, which also die
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
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

static const char response[] =
    "HTTP/1.1 200 OK\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: 5\r\nConnection: keep-alive\r\n\r\n"
    "hello";

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
    char buffer[16384];
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
            ssize_t length = read(fd, buffer, sizeof buffer);
            if (length <= 0) {
                close(fd);
                continue;
            }
            // One response per complete request head read (wrk sends one request at a time per connection).
            for (ssize_t j = 3; j < length; j++) {
                if (buffer[j] == '\n' && buffer[j - 1] == '\r' && buffer[j - 2] == '\n' && buffer[j - 3] == '\r') {
                    if (write(fd, response, sizeof response - 1) < 0) break;
                }
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
            serve(port);
        }
    }
    int signal;
    sigwait(&stop, &signal);
    for (int p = 0; p < processes; p++) kill(children[p], SIGTERM);
    for (int p = 0; p < processes; p++) waitpid(children[p], NULL, 0);
    return 0;
}
