// What Swift cannot import from Glibc: macros (CMSG_*), variadic calls (prctl) and _GNU_SOURCE-only
// functions (memfd_create, signalfd, accept4). One small wrapper each, prefixed CHiveShims_.
#ifndef CHIVESHIMS_H
#define CHIVESHIMS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <signal.h>

/// Sends one record on a SOCK_SEQPACKET socket, with `fd` attached as SCM_RIGHTS when `fd >= 0`.
/// Returns the bytes sent, or -1 with errno set. Always passes MSG_NOSIGNAL.
ssize_t CHiveShims_sendRecord(int sock, const void *buf, size_t len, int fd, int flags);

/// Receives one record. `*fdOut` is the passed descriptor, -1 if none, or CHiveShims_DESCRIPTOR_LOST when one was
/// sent but could not be received (MSG_CTRUNC: the receiver is out of descriptors). The ancillary data is checked
/// before it is trusted: only SOL_SOCKET/SCM_RIGHTS is accepted, a truncated record is an error (EMSGSIZE), and
/// descriptors beyond the first are closed. Descriptors arrive close-on-exec.
/// Returns the record length, 0 at end of stream, or -1 with errno set.
ssize_t CHiveShims_recvRecord(int sock, void *buf, size_t cap, int *fdOut, int flags);

#define CHiveShims_DESCRIPTOR_LOST (-2)

int CHiveShims_memfd_create(const char *name, unsigned int flags);
int CHiveShims_signalfd(const sigset_t *mask);                 // SFD_CLOEXEC | SFD_NONBLOCK
int CHiveShims_accept4(int sock, struct sockaddr *addr, socklen_t *len);   // SOCK_CLOEXEC | SOCK_NONBLOCK
int CHiveShims_setParentDeathSignal(int sig);                   // prctl(PR_SET_PDEATHSIG, sig)
/// The uid of the process at the other end of a Unix socket (SO_PEERCRED); -1 on error.
long long CHiveShims_peerUID(int sock);
/// Gives freed heap memory back to the kernel (glibc's malloc_trim(0)); 1 if some was released.
int CHiveShims_releaseFreeMemory(void);
/// Reads one signalfd record; returns the signal number, 0 if none was pending, -1 on error.
int CHiveShims_readSignal(int sfd);

extern const int CHiveShims_MFD_CLOEXEC;
extern const int CHiveShims_SOCK_SEQPACKET;
extern const int CHiveShims_SOCK_STREAM;
extern const int CHiveShims_SOCK_CLOEXEC;
extern const int CHiveShims_SOCK_NONBLOCK;

#endif
