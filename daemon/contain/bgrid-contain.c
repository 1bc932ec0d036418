// bgrid-contain: the job starter of a root daemon. One long-lived process (the daemon's
// launcher) that starts every job attempt inside its containment and reports when it
// ends. It is the only code of bgrid that runs as root where a job exists, so it is
// small and does one thing.
//
// For each request it clone()s a child straight into new PID, mount and IPC namespaces
// (and an empty network namespace on request). The child is PID 1 of its namespace, as
// an application in a container without an init: when it exits, the kernel kills
// whatever it left behind (setsid, double fork: nothing outlives the attempt). Before
// it execs the job, the child
//   - joins the attempt's cgroups (memory, pids, cpu, freezer: everything it forks is
//     counted, limited, and can be frozen or killed as one);
//   - makes its mounts private and the whole tree read-only; hides the daemon's data
//     dir, /home, /root... under empty read-only tmpfs; makes the attempt's work/
//     visible (read-write) at its usual path, and its tmp/ over /tmp, /var/tmp and
//     /dev/shm; mounts a /proc of its own;
//   - sets its rlimits and nice level, drops every group, takes the run's uid/gid,
//     sets no_new_privs, and execs argv with the given environment (nothing of the
//     daemon's environment, and nothing of the job's reaches this root process).
// One process per job, as many as an unconfined spawn: process creation is most of
// what a short job costs.
//
// Protocol, on stdin/stdout (the daemon's side is daemon/launcher-client.ts):
//   request:  "R" u32le(length) payload, payload = NUL-terminated strings:
//             id stdout stderr contain(0|1) cwd work tmp uid gid fsize nofile nice network(0|1)
//             ncgroups cgroup-procs-files... nhide hidden-dirs... nenv env... nargv argv...
//             (contain 0: a plain process in cwd, as the given uid; uid -1: root's own;
//             fsize/nofile -1: no limit)
//   replies:  "spawned <id> <pid>\n"
//             "exit <id> <code|-> <signal|-> <stdout bytes> <stderr bytes>[ cpu=<ms>][ <error>]\n"
//             (cpu: the job's user + system CPU time, with every descendant it waited
//             for (as wait4 reports it); error: why the job never ran, on one line; the
//             job then did not start)
// Started as `bgrid-contain --serve [--cgroup cgroup.procs]...`: it joins those cgroups
// once, so that every job it clones is born in them (moving a process into a cgroup
// costs milliseconds: cgroup v1 waits for an RCU grace period on every move). A request
// may still name cgroups for its job to join. It exits when stdin closes, killing its jobs.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#ifndef SYS_mount_setattr
#define SYS_mount_setattr 442
#endif
#ifndef AT_RECURSIVE
#define AT_RECURSIVE 0x8000
#endif
#define BG_MOUNT_ATTR_RDONLY 0x00000001
struct bg_mount_attr { unsigned long long attr_set, attr_clr, propagation, userns_fd; };

#define MAX_REQUEST (8u << 20)
#define MAX_FIELDS 8192
#define MAX_JOBS 4096

struct request {
  char *id, *out, *err, *cwd, *work, *tmp;
  long uid, gid, nice_level;
  long long fsize, nofile;
  int contained, no_network;
  char **cgroups; int ncgroups;
  char **hides; int nhides;
  char **env; int nenv;
  char **argv; int nargv;
};

struct job {
  pid_t pid;
  char id[160];
  int out, err;   // the log files, kept open to report their sizes
  int why;        // read end of the child's failure pipe (-1 once read)
  char error[512];
};

static struct job jobs[MAX_JOBS];

// ---- the child: everything here runs between clone() and exec --------------------

static int why_fd = -1;

// Report why the job cannot run (one line), then die: the starter tells the daemon.
static void fail (const char *fmt, ...) {
  char msg[500];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n > (int)sizeof msg - 1) n = sizeof msg - 1;
  for (int i = 0; i < n; i++) if (msg[i] == '\n') msg[i] = ' ';
  (void)!write(why_fd, msg, (size_t)n);
  _exit(255);
}

static int is_dir (const char *p) {
  struct stat st;
  return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void join_cgroup (const char *procs) {
  int fd = open(procs, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, "0\n", 2) < 0) fail("cgroup %s: %s", procs, strerror(errno));
  close(fd);
}

// mkdir -p inside the fresh tmpfs that hides the data dir (the path of work/ is made
// again there, so the job sees its directory where the daemon put it)
static void make_path (const char *path) {
  char buf[4096];
  if (strlen(path) >= sizeof buf) fail("path too long: %s", path);
  strcpy(buf, path);
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) fail("mkdir %s: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) fail("mkdir %s: %s", buf, strerror(errno));
}

static void bind_rw (int fd, const char *target) {
  char src[64];
  snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
  if (mount(src, target, NULL, MS_BIND, NULL) != 0) fail("bind %s: %s", target, strerror(errno));
  // a bind copies the flags of the mount it came from (read-only by now): clear them
  if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) != 0) fail("remount %s: %s", target, strerror(errno));
}

// Every mount read-only: mount_setattr(AT_RECURSIVE) where the kernel has it (5.12+),
// else each mount of /proc/self/mountinfo remounted read-only in turn.
static void read_only_root (void) {
  struct bg_mount_attr attr = { .attr_set = BG_MOUNT_ATTR_RDONLY };
  if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) == 0) return;
  if (errno != ENOSYS && errno != EINVAL) fail("read-only root: %s", strerror(errno));
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (f == NULL) fail("mountinfo: %s", strerror(errno));
  char line[8192];
  while (fgets(line, sizeof line, f) != NULL) {
    // id parent major:minor root mountpoint options ...
    char mp[4096], opts[1024];
    if (sscanf(line, "%*s %*s %*s %*s %4095s %1023s", mp, opts) != 2) continue;
    unsigned long flags = MS_REMOUNT | MS_BIND | MS_RDONLY;
    if (strstr(opts, "nosuid") != NULL) flags |= MS_NOSUID;
    if (strstr(opts, "nodev") != NULL) flags |= MS_NODEV;
    if (strstr(opts, "noexec") != NULL) flags |= MS_NOEXEC;
    // mountinfo escapes spaces as \040: such mount points are left as they are
    if (strchr(mp, '\\') != NULL) continue;
    mount(NULL, mp, NULL, flags, NULL);
  }
  fclose(f);
}

static void loopback_up (void) {
  int s = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (s < 0) return;
  struct ifreq ifr;
  memset(&ifr, 0, sizeof ifr);
  strcpy(ifr.ifr_name, "lo");
  if (ioctl(s, SIOCGIFFLAGS, &ifr) == 0) {
    ifr.ifr_flags |= IFF_UP;
    ioctl(s, SIOCSIFFLAGS, &ifr);
  }
  close(s);
}

static void set_limit (int which, long long v, const char *what) {
  if (v < 0) return;
  struct rlimit r = { (rlim_t)v, (rlim_t)v };
  if (setrlimit(which, &r) != 0) fail("%s: %s", what, strerror(errno));
}

static void contain (const struct request *q) {
  int work_fd = open(q->work, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (work_fd < 0) fail("open %s: %s", q->work, strerror(errno));
  int tmp_fd = open(q->tmp, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (tmp_fd < 0) fail("open %s: %s", q->tmp, strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail("private mounts: %s", strerror(errno));
  read_only_root();
  for (int i = 0; i < q->nhides; i++) {
    if (!is_dir(q->hides[i])) continue;
    if (mount("tmpfs", q->hides[i], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,nr_inodes=256,mode=0755") != 0) fail("hide %s: %s", q->hides[i], strerror(errno));
  }
  make_path(q->work);
  bind_rw(work_fd, q->work);
  for (int i = 0; i < q->nhides; i++) {
    if (!is_dir(q->hides[i])) continue;
    if (mount(NULL, q->hides[i], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) fail("hide %s: %s", q->hides[i], strerror(errno));
  }
  const char *tmps[] = { "/tmp", "/var/tmp", "/dev/shm" };
  for (size_t i = 0; i < sizeof tmps / sizeof tmps[0]; i++) if (is_dir(tmps[i])) bind_rw(tmp_fd, tmps[i]);
  close(tmp_fd);
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) fail("mount /proc: %s", strerror(errno));
  if (q->no_network) loopback_up();
  if (chdir(q->work) != 0) fail("chdir %s: %s", q->work, strerror(errno));
  // the directory seen at that path must be the one the daemon made
  struct stat a, b;
  if (stat(".", &a) != 0 || fstat(work_fd, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) fail("work directory not in place");
  close(work_fd);
}

static void child (const struct request *q, int out, int err, int why) {
  why_fd = why;
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  // the starter going away takes its jobs along
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail("pdeathsig: %s", strerror(errno));
  int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0) fail("stdio: %s", strerror(errno));
  for (int i = 0; i < q->ncgroups; i++) join_cgroup(q->cgroups[i]);
  // its own session and process group: the daemon signals the whole group
  if (setsid() < 0) fail("setsid: %s", strerror(errno));
  if (setpriority(PRIO_PROCESS, 0, (int)q->nice_level) != 0) fail("nice: %s", strerror(errno));
  if (q->contained) contain(q);
  else if (chdir(q->cwd) != 0) fail("chdir %s: %s", q->cwd, strerror(errno));
  set_limit(RLIMIT_FSIZE, q->fsize, "RLIMIT_FSIZE");
  set_limit(RLIMIT_NOFILE, q->nofile, "RLIMIT_NOFILE");
  set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE");
  if (q->gid >= 0) {
    if (setgroups(0, NULL) != 0) fail("setgroups: %s", strerror(errno));
    if (setresgid((gid_t)q->gid, (gid_t)q->gid, (gid_t)q->gid) != 0) fail("setgid %ld: %s", q->gid, strerror(errno));
  }
  if (q->uid >= 0 && setresuid((uid_t)q->uid, (uid_t)q->uid, (uid_t)q->uid) != 0) fail("setuid %ld: %s", q->uid, strerror(errno));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail("no_new_privs: %s", strerror(errno));
  execvpe(q->argv[0], q->argv, q->env);
  fail("cannot start %s: %s", q->argv[0], strerror(errno));
}

// ---- the starter ---------------------------------------------------------------

static void say (const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof line - 1) n = sizeof line - 1;
  for (int done = 0; done < n;) {
    ssize_t w = write(1, line + done, (size_t)(n - done));
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) _exit(1); // the daemon is gone
    done += (int)w;
  }
}

static long field_long (char *s) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  return errno == 0 && *end == '\0' ? (long)v : -2;
}

/** Split a payload into its fields; NULL when malformed. */
static int parse (char *buf, uint32_t len, struct request *q, char **fields) {
  int n = 0;
  for (uint32_t i = 0; i < len;) {
    if (n == MAX_FIELDS) return -1;
    fields[n++] = buf + i;
    char *z = memchr(buf + i, '\0', len - i);
    if (z == NULL) return -1;
    i = (uint32_t)(z - buf) + 1;
  }
  int k = 0;
#define NEXT() (k < n ? fields[k++] : NULL)
  char *f[13];
  for (int i = 0; i < 13; i++) if ((f[i] = NEXT()) == NULL) return -1;
  q->id = f[0]; q->out = f[1]; q->err = f[2]; q->contained = strcmp(f[3], "1") == 0; q->cwd = f[4]; q->work = f[5]; q->tmp = f[6];
  q->uid = field_long(f[7]); q->gid = field_long(f[8]); q->fsize = field_long(f[9]); q->nofile = field_long(f[10]);
  q->nice_level = field_long(f[11]); q->no_network = strcmp(f[12], "1") == 0;
  if (q->uid == 0 || q->gid == 0 || q->uid < -1 || q->gid < -1 || q->nice_level < 0 || q->nice_level > 19) return -1; // jobs never run as root
  if (q->contained && (q->work[0] != '/' || q->tmp[0] != '/')) return -1;
  char ***lists[] = { &q->cgroups, &q->hides, &q->env, &q->argv };
  int *counts[] = { &q->ncgroups, &q->nhides, &q->nenv, &q->nargv };
  for (int l = 0; l < 4; l++) {
    char *c = NEXT();
    if (c == NULL) return -1;
    long m = field_long(c);
    if (m < 0 || m > n - k) return -1;
    *lists[l] = fields + k;
    *counts[l] = (int)m;
    k += (int)m;
  }
  if (q->nargv < 1 || k != n) return -1;
  // the lists are NULL-terminated for exec: each is followed by the next count or the end
  return 0;
#undef NEXT
}

static struct job *slot_for (pid_t pid) {
  for (int i = 0; i < MAX_JOBS; i++) if (jobs[i].pid == pid) return &jobs[i];
  return NULL;
}

static void start (struct request *q) {
  struct job *j = slot_for(0);
  if (j == NULL) { say("exit %s - - 0 0 the starter runs %d jobs already\n", q->id, MAX_JOBS); return; }
  const int log_flags = O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC;
  int out = open(q->out, log_flags, 0600);
  int err = out < 0 ? -1 : open(q->err, log_flags, 0600);
  if (out < 0 || err < 0) {
    say("exit %s - - 0 0 cannot open the job's log files: %s\n", q->id, strerror(errno));
    if (out >= 0) close(out);
    return;
  }
  int why[2];
  if (pipe2(why, O_CLOEXEC) != 0) { say("exit %s - - 0 0 pipe: %s\n", q->id, strerror(errno)); close(out); close(err); return; }
  // NULL-terminate env and argv in place (their successors were already parsed)
  char *env[q->nenv + 1];
  char *argv[q->nargv + 1];
  memcpy(env, q->env, sizeof(char *) * (size_t)q->nenv); env[q->nenv] = NULL;
  memcpy(argv, q->argv, sizeof(char *) * (size_t)q->nargv); argv[q->nargv] = NULL;
  q->env = env;
  q->argv = argv;
  unsigned long flags = SIGCHLD;
  if (q->contained) flags |= CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWIPC | (q->no_network ? CLONE_NEWNET : 0);
  pid_t pid = (pid_t)syscall(SYS_clone, flags, NULL, NULL, NULL, NULL);
  if (pid == 0) { close(why[0]); child(q, out, err, why[1]); }
  close(why[1]);
  if (pid < 0) {
    say("exit %s - - 0 0 clone: %s\n", q->id, strerror(errno));
    close(why[0]); close(out); close(err);
    return;
  }
  j->pid = pid;
  j->out = out;
  j->err = err;
  j->why = why[0];
  j->error[0] = '\0';
  snprintf(j->id, sizeof j->id, "%s", q->id);
  say("spawned %s %d\n", j->id, pid);
}

static const char *signame (int sig) {
  static char buf[16];
  const char *abbrev = sigabbrev_np(sig);
  if (abbrev == NULL) { snprintf(buf, sizeof buf, "SIG%d", sig); return buf; }
  snprintf(buf, sizeof buf, "SIG%s", abbrev);
  return buf;
}

static void reap (void) {
  for (;;) {
    int st;
    struct rusage ru;
    // wait4: the job's CPU time comes with its exit (its reaped descendants included)
    pid_t pid = wait4(-1, &st, WNOHANG, &ru);
    if (pid <= 0) return;
    struct job *j = slot_for(pid);
    if (j == NULL) continue;
    // what the child said before exec (nothing if exec succeeded)
    if (j->why >= 0) {
      ssize_t n = read(j->why, j->error, sizeof j->error - 1);
      j->error[n > 0 ? n : 0] = '\0';
      close(j->why);
      j->why = -1;
    }
    struct stat so, se;
    long long osz = fstat(j->out, &so) == 0 ? (long long)so.st_size : 1;
    long long esz = fstat(j->err, &se) == 0 ? (long long)se.st_size : 1;
    close(j->out);
    close(j->err);
    long long cpu = ((long long)ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000 + ((long long)ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1000;
    if (j->error[0] != '\0') say("exit %s - - %lld %lld %s\n", j->id, osz, esz, j->error);
    else if (WIFEXITED(st)) say("exit %s %d - %lld %lld cpu=%lld\n", j->id, WEXITSTATUS(st), osz, esz, cpu);
    else if (WIFSIGNALED(st)) say("exit %s - %s %lld %lld cpu=%lld\n", j->id, signame(WTERMSIG(st)), osz, esz, cpu);
    else say("exit %s - - %lld %lld cpu=%lld\n", j->id, osz, esz, cpu);
    j->pid = 0;
  }
}

static int read_full (int fd, void *buf, size_t len) {
  for (size_t got = 0; got < len;) {
    ssize_t n = read(fd, (char *)buf + got, len - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    got += (size_t)n;
  }
  return 0;
}

int main (int argc, char **argv) {
  if (argc < 2 || strcmp(argv[1], "--serve") != 0) {
    fprintf(stderr, "usage: bgrid-contain --serve [--cgroup FILE]... (the bgrid daemon starts it; see daemon/launcher-client.ts)\n");
    return 2;
  }
  for (int i = 2; i < argc; i++) {
    if (strcmp(argv[i], "--cgroup") != 0 || i + 1 >= argc) { fprintf(stderr, "bgrid-contain: bad argument %s\n", argv[i]); return 2; }
    int fd = open(argv[++i], O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0\n", 2) < 0) { fprintf(stderr, "bgrid-contain: cgroup %s: %s\n", argv[i], strerror(errno)); return 1; }
    close(fd);
  }
  // the daemon (our parent) gone: stop, and the jobs with us (their PDEATHSIG)
  pid_t parent = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent) return 1;
  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);
  if (sfd < 0) { perror("signalfd"); return 1; }
  signal(SIGPIPE, SIG_IGN);
  char *buf = malloc(MAX_REQUEST + 1);
  char **fields = malloc(sizeof(char *) * MAX_FIELDS);
  if (buf == NULL || fields == NULL) return 1;
  for (;;) {
    struct pollfd p[2] = { { .fd = 0, .events = POLLIN }, { .fd = sfd, .events = POLLIN } };
    if (poll(p, 2, -1) < 0) { if (errno == EINTR) continue; return 1; }
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == (ssize_t)sizeof si) {}
      reap();
    }
    if (p[0].revents & (POLLIN | POLLHUP)) {
      unsigned char head[5];
      if (read_full(0, head, 5) != 0) break; // the daemon closed our stdin: done
      uint32_t len = (uint32_t)head[1] | (uint32_t)head[2] << 8 | (uint32_t)head[3] << 16 | (uint32_t)head[4] << 24;
      if (head[0] != 'R' || len > MAX_REQUEST || read_full(0, buf, len) != 0) { fprintf(stderr, "bgrid-contain: bad request\n"); return 1; }
      struct request q;
      memset(&q, 0, sizeof q);
      if (parse(buf, len, &q, fields) != 0) {
        // the id is the first field, if it is there at all
        say("exit %s - - 0 0 malformed request\n", len > 0 && memchr(buf, '\0', len) != NULL ? buf : "?");
        continue;
      }
      start(&q);
    }
  }
  // stdin closed: the daemon is stopping; its jobs die with us (PDEATHSIG)
  return 0;
}
