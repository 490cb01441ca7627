#define _GNU_SOURCE
#include "kscope_linux.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

static int fail(void) { return -errno; }

int kscope_uffd_open(uint64_t features) {
  int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return fail();
  struct uffdio_api api = {.api = UFFD_API, .features = features};
  if (ioctl(fd, UFFDIO_API, &api) < 0) {
    int e = -errno;
    close(fd);
    return e;
  }
  return fd;
}

int kscope_uffd_register_missing(int uffd, uint64_t start, uint64_t len) {
  struct uffdio_register r = {.range = {.start = start, .len = len}, .mode = UFFDIO_REGISTER_MODE_MISSING};
  return ioctl(uffd, UFFDIO_REGISTER, &r) < 0 ? fail() : 0;
}

int kscope_uffd_unregister(int uffd, uint64_t start, uint64_t len) {
  struct uffdio_range r = {.start = start, .len = len};
  return ioctl(uffd, UFFDIO_UNREGISTER, &r) < 0 ? fail() : 0;
}

int kscope_uffd_wake(int uffd, uint64_t start, uint64_t len) {
  struct uffdio_range r = {.start = start, .len = len};
  return ioctl(uffd, UFFDIO_WAKE, &r) < 0 ? fail() : 0;
}

int kscope_uffd_zeropage(int uffd, uint64_t start, uint64_t len) {
  struct uffdio_zeropage z = {.range = {.start = start, .len = len}, .mode = 0};
  return ioctl(uffd, UFFDIO_ZEROPAGE, &z) < 0 ? fail() : 0;
}

int kscope_uffd_read(int uffd, struct kscope_uffd_event *event) {
  struct uffd_msg msg;
  ssize_t n;
  do { n = read(uffd, &msg, sizeof msg); } while (n < 0 && errno == EINTR);
  if (n < 0) return errno == EAGAIN ? (event->kind = 0, 0) : fail();
  if (n != sizeof msg) return -EIO;
  memset(event, 0, sizeof *event);
  switch (msg.event) {
  case UFFD_EVENT_PAGEFAULT:
    event->kind = 1;
    event->write = (msg.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WRITE) != 0;
    event->address = msg.arg.pagefault.address;
    break;
  case UFFD_EVENT_REMOVE:
  case UFFD_EVENT_UNMAP:
    event->kind = msg.event == UFFD_EVENT_REMOVE ? 2 : 3;
    event->address = msg.arg.remove.start;
    event->end = msg.arg.remove.end;
    break;
  case UFFD_EVENT_REMAP:
    event->kind = 4;
    event->address = msg.arg.remap.from;
    event->to = msg.arg.remap.to;
    event->length = msg.arg.remap.len;
    break;
  default:
    event->kind = 5;
  }
  return 1;
}

int kscope_poll2(int fd1, int fd2, int timeout_ms) {
  struct pollfd p[2] = {{.fd = fd1, .events = POLLIN}, {.fd = fd2, .events = POLLIN}};
  int n;
  do { n = poll(p, fd2 >= 0 ? 2 : 1, timeout_ms); } while (n < 0 && errno == EINTR);
  if (n < 0) return fail();
  int mask = 0;
  if (p[0].revents & POLLIN) mask |= 1;
  if (p[0].revents & (POLLHUP | POLLERR | POLLNVAL)) mask |= 4;
  if (fd2 >= 0) {
    if (p[1].revents & POLLIN) mask |= 2;
    if (p[1].revents & (POLLHUP | POLLERR | POLLNVAL)) mask |= 8;
  }
  return mask;
}

int kscope_send_fd(int sock, const void *buf, size_t len, int fd) {
  struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};
  union { char bytes[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
  memset(&control, 0, sizeof control);
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                     .msg_controllen = sizeof control.bytes};
  struct cmsghdr *c = CMSG_FIRSTHDR(&m);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  memcpy(CMSG_DATA(c), &fd, sizeof(int));
  ssize_t n;
  do { n = sendmsg(sock, &m, MSG_NOSIGNAL); } while (n < 0 && errno == EINTR);
  return n < 0 ? fail() : (int)n;
}

int kscope_recv_fd(int sock, void *buf, size_t len, int *fd) {
  struct iovec iov = {.iov_base = buf, .iov_len = len};
  union { char bytes[CMSG_SPACE(sizeof(int))]; struct cmsghdr align; } control;
  struct msghdr m = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = control.bytes,
                     .msg_controllen = sizeof control.bytes};
  *fd = -1;
  ssize_t n;
  do { n = recvmsg(sock, &m, MSG_CMSG_CLOEXEC); } while (n < 0 && errno == EINTR);
  if (n < 0) return fail();
  for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS && c->cmsg_len == CMSG_LEN(sizeof(int)))
      memcpy(fd, CMSG_DATA(c), sizeof(int));
  }
  if (m.msg_flags & MSG_CTRUNC) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
    return -EBADMSG;
  }
  return (int)n;
}

static int unix_address(const char *path, struct sockaddr_un *a) {
  memset(a, 0, sizeof *a);
  a->sun_family = AF_UNIX;
  if (strlen(path) >= sizeof a->sun_path) return -ENAMETOOLONG;
  strcpy(a->sun_path, path);
  return 0;
}

int kscope_unix_listen(const char *path) {
  char tmp[sizeof(((struct sockaddr_un *)0)->sun_path)];
  if (snprintf(tmp, sizeof tmp, "%s.%d", path, (int)getpid()) >= (int)sizeof tmp) return -ENAMETOOLONG;
  struct sockaddr_un a;
  int e = unix_address(tmp, &a);
  if (e) return e;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail();
  unlink(tmp);
  if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 64) < 0 || rename(tmp, path) < 0) {
    e = -errno;
    close(s);
    unlink(tmp);
    return e;
  }
  return s;
}

int kscope_unix_connect(const char *path) {
  struct sockaddr_un a;
  int e = unix_address(path, &a);
  if (e) return e;
  int s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (s < 0) return fail();
  int r;
  do { r = connect(s, (struct sockaddr *)&a, sizeof a); } while (r < 0 && errno == EINTR);
  if (r < 0) {
    e = -errno;
    close(s);
    return e;
  }
  return s;
}

int kscope_pagemap_scan(uint64_t start, uint64_t len, uint64_t *present, uint64_t *private_pages,
                        uint64_t *present_bits) {
  long page = sysconf(_SC_PAGESIZE);
  int fd = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return fail();
  uint64_t pages = len / (uint64_t)page, done = 0;
  uint64_t buf[4096];
  *present = 0;
  *private_pages = 0;
  while (done < pages) {
    uint64_t want = pages - done < 4096 ? pages - done : 4096;
    off_t at = (off_t)((start / (uint64_t)page + done) * 8);
    ssize_t n = pread(fd, buf, want * 8, at);
    if (n <= 0) {
      int e = n < 0 ? -errno : -EIO;
      close(fd);
      return e;
    }
    uint64_t got = (uint64_t)n / 8;
    for (uint64_t i = 0; i < got; i++) {
      int is_present = (buf[i] >> 63) & 1, file_or_shared = (buf[i] >> 61) & 1;
      if (!is_present) continue;
      (*present)++;
      if (!file_or_shared) (*private_pages)++;
      if (present_bits) present_bits[(done + i) / 64] |= 1ull << ((done + i) % 64);
    }
    done += got;
  }
  close(fd);
  return 0;
}

int kscope_mremap_fixed(void *old, size_t len, void *to) {
  return mremap(old, len, len, MREMAP_MAYMOVE | MREMAP_FIXED, to) == MAP_FAILED ? fail() : 0;
}

uint64_t kscope_now_ns(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (uint64_t)t.tv_sec * 1000000000ull + (uint64_t)t.tv_nsec;
}

uint8_t kscope_touch_read(const volatile uint8_t *p) { return *p; }
void kscope_touch_write(volatile uint8_t *p, uint8_t v) { *p = v; }

int kscope_unix_accept(int listener) {
  int c;
  do { c = accept4(listener, NULL, NULL, SOCK_CLOEXEC); } while (c < 0 && errno == EINTR);
  return c < 0 ? fail() : c;
}

int kscope_peer_pid(int sock) {
  struct ucred cred;
  socklen_t len = sizeof cred;
  if (getsockopt(sock, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return fail();
  return (int)cred.pid;
}

int kscope_die_with_parent(void) {
  pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) < 0) return fail();
  return getppid() != parent ? -ESRCH : 0;
}

int kscope_pin_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (cpu < 0) {
    for (int i = 0; i < CPU_SETSIZE; i++) CPU_SET(i, &set);
  } else {
    CPU_SET(cpu, &set);
  }
  int e = pthread_setaffinity_np(pthread_self(), sizeof set, &set);
  return e ? -e : 0;
}
