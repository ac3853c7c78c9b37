#define _GNU_SOURCE
#include "CHiveShims.h"

#include <errno.h>
#include <malloc.h>
#include <string.h>
#include <unistd.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>

const int CHiveShims_MFD_CLOEXEC = MFD_CLOEXEC;
const int CHiveShims_SOCK_SEQPACKET = SOCK_SEQPACKET;
const int CHiveShims_SOCK_STREAM = SOCK_STREAM;
const int CHiveShims_SOCK_CLOEXEC = SOCK_CLOEXEC;
const int CHiveShims_SOCK_NONBLOCK = SOCK_NONBLOCK;

ssize_t CHiveShims_sendRecord(int sock, const void *buf, size_t len, int fd, int flags) {
    struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    // A union keeps the control buffer aligned for struct cmsghdr.
    union { char buf[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
    if (fd >= 0) {
        memset(&control, 0, sizeof(control));
        msg.msg_control = control.buf;
        msg.msg_controllen = sizeof(control.buf);
        struct cmsghdr *cmsg = CMSG_FIRSTHDR(&msg);
        cmsg->cmsg_level = SOL_SOCKET;
        cmsg->cmsg_type = SCM_RIGHTS;
        cmsg->cmsg_len = CMSG_LEN(sizeof(int));
        memcpy(CMSG_DATA(cmsg), &fd, sizeof(int));  // memcpy: CMSG_DATA need not be int-aligned
    }
    ssize_t n;
    do {
        n = sendmsg(sock, &msg, flags | MSG_NOSIGNAL);
    } while (n < 0 && errno == EINTR);
    return n;
}

ssize_t CHiveShims_recvRecord(int sock, void *buf, size_t cap, int *fdOut, int flags) {
    *fdOut = -1;
    struct iovec iov = { .iov_base = buf, .iov_len = cap };
    struct msghdr msg;
    memset(&msg, 0, sizeof(msg));
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    // Room for a few descriptors so that a misbehaving sender's extras are received (and closed), not leaked.
    union { char buf[CMSG_SPACE(sizeof(int) * 8)]; struct cmsghdr align; } control;
    msg.msg_control = control.buf;
    msg.msg_controllen = sizeof(control.buf);
    ssize_t n;
    do {
        n = recvmsg(sock, &msg, flags | MSG_CMSG_CLOEXEC);
    } while (n < 0 && errno == EINTR);
    if (n < 0) return n;
    int bad = (msg.msg_flags & MSG_TRUNC) != 0;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) { bad = 1; continue; }
        size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t i = 0; i < count; i++) {
            int fd;
            memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
            if (*fdOut < 0 && !bad) *fdOut = fd; else close(fd);
        }
    }
    if (bad) {
        if (*fdOut >= 0) { close(*fdOut); *fdOut = -1; }
        errno = EMSGSIZE;
        return -1;
    }
    // MSG_CTRUNC: the record is whole but its descriptor did not fit (the receiver is at its open-file limit, and
    // the kernel closed it). The caller must still learn which connection was lost, so the record is returned.
    if ((msg.msg_flags & MSG_CTRUNC) != 0 && *fdOut < 0) *fdOut = CHiveShims_DESCRIPTOR_LOST;
    return n;
}

int CHiveShims_memfd_create(const char *name, unsigned int flags) { return memfd_create(name, flags); }

int CHiveShims_signalfd(const sigset_t *mask) { return signalfd(-1, mask, SFD_CLOEXEC | SFD_NONBLOCK); }

int CHiveShims_accept4(int sock, struct sockaddr *addr, socklen_t *len) {
    int fd;
    do {
        fd = accept4(sock, addr, len, SOCK_CLOEXEC | SOCK_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    return fd;
}

int CHiveShims_setParentDeathSignal(int sig) { return prctl(PR_SET_PDEATHSIG, (unsigned long)sig, 0, 0, 0); }


int CHiveShims_readSignal(int sfd) {
    struct signalfd_siginfo info;
    ssize_t n;
    do {
        n = read(sfd, &info, sizeof(info));
    } while (n < 0 && errno == EINTR);
    if (n < 0) return errno == EAGAIN ? 0 : -1;
    if (n != sizeof(info)) return -1;
    return (int)info.ssi_signo;
}

long long CHiveShims_peerUID(int sock) {
    struct ucred credentials;
    socklen_t length = sizeof(credentials);
    if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &credentials, &length) != 0) return -1;
    return (long long)credentials.uid;
}

int CHiveShims_releaseFreeMemory(void) {
    return malloc_trim(0);
}
