/* SPDX-License-Identifier: ISC */
/*
 * benchutil: the helpers the benchmark tools share, in one place.
 *
 * The tools in tests/bench are single-file programs, each linked on its
 * own, so these are static inline functions rather than a library: a
 * monotonic clock in nanoseconds, the usage exit, a whole-number argument
 * parser that checks the end pointer and the range (atoi and friends are
 * banned in this house), and a non-blocking connect to 127.0.0.1 that
 * registers the socket with epoll.  Nothing here ever leaves loopback.
 */
#ifndef NB_BENCHUTIL_H
#define NB_BENCHUTIL_H

#include <sys/epoll.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* CLOCK_MONOTONIC in nanoseconds. */
static inline int64_t
bench_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

/* Prints usage (the whole text, new lines included) and exits 2. */
static inline void
bench_usage(const char *usage)
{
	fputs(usage, stderr);
	exit(2);
}

/*
 * s as a decimal integer in [lo, hi]; anything else prints usage and
 * exits 2.
 */
static inline long long
bench_num(const char *s, long long lo, long long hi, const char *usage)
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
		bench_usage(usage);
	return v;
}

/*
 * Starts a non-blocking connect to 127.0.0.1:port and adds the socket to
 * epfd for EPOLLIN | EPOLLOUT | EPOLLRDHUP with data.ptr = ptr (EPOLLOUT
 * fires when the connect is done).  Returns the socket, or -1 with errno
 * set and nothing left open.
 */
static inline int
bench_connect(int epfd, int port, void *ptr)
{
	struct sockaddr_in sa;
	struct epoll_event ev;
	int fd, e;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0)) == -1)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1 &&
	    errno != EINPROGRESS)
		goto fail;
	memset(&ev, 0, sizeof(ev));
	ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP;
	ev.data.ptr = ptr;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1)
		goto fail;
	return fd;
fail:
	e = errno;
	close(fd);
	errno = e;
	return -1;
}

#endif
