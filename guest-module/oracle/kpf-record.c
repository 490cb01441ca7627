// kpf-record: records the guest's /proc/kpageflags for kscope's correctness tests, then stays
// alive without freeing anything, so the host can pause the guest with the kernel's view and
// the memory in agreement. Any process that exits (or a buffer that is unmapped) between the
// recording and the pause frees pages and shows up as a disagreement that is not the
// analyzer's; busybox `cat` unmaps its 64 KiB copy buffer right after the copy, for instance.
//
// usage: kpf-record OUTPUT MARKER
//   waits 2 s (so the shell that started it is gone), copies /proc/kpageflags into OUTPUT
//   (which should exist at its full size already, so writing it allocates no page cache),
//   writes MARKER and a newline to /dev/console, then sleeps forever.
//
// Built with `gcc -static -nostdlib -O2`: no libc, no heap, a static buffer, raw syscalls.

typedef long i64;

static i64 sys(i64 n, i64 a, i64 b, i64 c) {
  i64 r;
  __asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c) : "rcx", "r11", "memory");
  return r;
}

enum { SYS_read = 0, SYS_write = 1, SYS_open = 2, SYS_nanosleep = 35, SYS_pause = 34, SYS_exit = 60 };
enum { O_RDONLY = 0, O_WRONLY = 1 };

static char buffer[1 << 16];

static i64 length(const char *s) {
  i64 n = 0;
  while (s[n]) n++;
  return n;
}

void _start_c(i64 *stack) {
  i64 argc = stack[0];
  char **argv = (char **)(stack + 1);
  if (argc < 3) sys(SYS_exit, 2, 0, 0);
  i64 delay[2] = {2, 0};
  sys(SYS_nanosleep, (i64)delay, 0, 0);
  i64 in = sys(SYS_open, (i64)"/proc/kpageflags", O_RDONLY, 0);
  i64 out = sys(SYS_open, (i64)argv[1], O_WRONLY, 0);
  if (in < 0 || out < 0) sys(SYS_exit, 3, 0, 0);
  for (;;) {
    i64 n = sys(SYS_read, in, (i64)buffer, sizeof buffer);
    if (n <= 0) break;
    for (i64 done = 0; done < n;) {
      i64 w = sys(SYS_write, out, (i64)buffer + done, n - done);
      if (w <= 0) sys(SYS_exit, 4, 0, 0);
      done += w;
    }
  }
  i64 console = sys(SYS_open, (i64)"/dev/console", O_WRONLY, 0);
  if (console >= 0) {
    sys(SYS_write, console, (i64)argv[2], length(argv[2]));
    sys(SYS_write, console, (i64)"\n", 1);
  }
  for (;;) sys(SYS_pause, 0, 0, 0);
}

__asm__(".globl _start\n_start:\n mov %rsp, %rdi\n and $-16, %rsp\n call _start_c\n hlt\n");
