// bgrid-contain: start one job attempt inside its containment, then get out of the way.
//
// The daemon (root) runs this for every attempt; it is the only code of bgrid that
// runs as root after a job exists, so it is small and does one thing:
//
//   outer (root, the daemon's mount namespace)
//     joins the attempt's cgroups (memory, pids, cpu, freezer: everything it forks is
//     counted and can be frozen or killed as one), then a new PID namespace
//   init (pid 1 of that namespace, root)
//     a private mount namespace: the whole tree read-only, the daemon's data dir, /home
//     and /root hidden under empty tmpfs, the attempt's work/ visible (read-write) at
//     its usual path, the attempt's tmp/ over /tmp, /var/tmp and /dev/shm, a /proc of
//     its own; optionally an empty network namespace. It forks the job, reaps orphans,
//     and exits when the job exits: the kernel then kills whatever the job left behind
//     (setsid, double fork: nothing outlives the attempt)
//   job (pid 2)
//     rlimits, no supplementary groups, the run's own uid/gid, no_new_privs, exec.
//
// The outer process exits as the job did (same code, or killed by the same signal).
// When anything fails before the job runs, it writes one line to --status and exits
// 255. It is started with an empty environment (the job's is passed with --env), so
// nothing a job chose (LD_PRELOAD...) reaches a process running as root.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
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

#define MAX_LIST 64
#define MAX_ENV 512

static const char *status_file;
static char *cgroups[MAX_LIST];
static int n_cgroups;
static char *hides[MAX_LIST];
static int n_hides;
static char *envs[MAX_ENV + 1];
static int n_envs;
static const char *work, *tmp;
static long uid = -1, gid = -1;
static long long fsize = -1;
static long nofile = -1;
static int nice_level = 10;
static int no_network;

// The outer process explains a failure before the job ran, then exits 255.
static void fail_outer (const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (status_file != NULL) {
    int fd = open(status_file, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd >= 0) { (void)!write(fd, msg, strlen(msg)); close(fd); }
  }
  fprintf(stderr, "bgrid-contain: %s\n", msg);
  _exit(255);
}

// init and the job report to the outer process through a pipe: 'E' + message, or
// 'S' + the job's wait status.
static int report_fd = -1;

static void fail_inner (const char *fmt, ...) {
  char msg[1024];
  msg[0] = 'E';
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg + 1, sizeof msg - 1, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n > (int)sizeof msg - 2) n = sizeof msg - 2;
  (void)!write(report_fd, msg, (size_t)n + 1);
  _exit(255);
}

static long parse_long (const char *s, const char *what) {
  char *end;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || *end != '\0' || v < 0) fail_outer("bad %s: %s", what, s);
  return (long)v;
}

static int is_dir (const char *p) {
  struct stat st;
  return lstat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static void write_file (const char *file, const char *text) {
  int fd = open(file, O_WRONLY | O_CLOEXEC);
  if (fd < 0) fail_outer("cgroup %s: %s", file, strerror(errno));
  ssize_t n = write(fd, text, strlen(text));
  int e = errno;
  close(fd);
  if (n < 0) fail_outer("cgroup %s: %s", file, strerror(e));
}

// mkdir -p inside the fresh tmpfs that hides the data dir (the path of work/ is made
// again there, so the job sees its directory where the daemon put it)
static void make_path (const char *path) {
  char buf[4096];
  if (strlen(path) >= sizeof buf) fail_inner("path too long: %s", path);
  strcpy(buf, path);
  for (char *p = buf + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) != 0 && errno != EEXIST) fail_inner("mkdir %s: %s", buf, strerror(errno));
    *p = '/';
  }
  if (mkdir(buf, 0755) != 0 && errno != EEXIST) fail_inner("mkdir %s: %s", buf, strerror(errno));
}

static void bind_rw (int fd, const char *target) {
  char src[64];
  snprintf(src, sizeof src, "/proc/self/fd/%d", fd);
  if (mount(src, target, NULL, MS_BIND, NULL) != 0) fail_inner("bind %s: %s", target, strerror(errno));
  // a bind copies the flags of the mount it came from (read-only by now): clear them
  if (mount(NULL, target, NULL, MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV, NULL) != 0) fail_inner("remount %s: %s", target, strerror(errno));
}

// Every mount read-only: mount_setattr(AT_RECURSIVE) where the kernel has it (5.12+),
// else each mount of /proc/self/mountinfo remounted read-only in turn.
static void read_only_root (void) {
  struct bg_mount_attr attr = { .attr_set = BG_MOUNT_ATTR_RDONLY };
  if (syscall(SYS_mount_setattr, AT_FDCWD, "/", AT_RECURSIVE, &attr, sizeof attr) == 0) return;
  if (errno != ENOSYS && errno != EINVAL) fail_inner("read-only root: %s", strerror(errno));
  FILE *f = fopen("/proc/self/mountinfo", "re");
  if (f == NULL) fail_inner("mountinfo: %s", strerror(errno));
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

// The job process reports a failure before exec through the exec pipe: init reads a
// message there, or end of file once exec succeeded.
static int exec_fd = -1;

static void fail_job (const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if (n > (int)sizeof msg - 1) n = sizeof msg - 1;
  (void)!write(exec_fd, msg, (size_t)n);
  _exit(127);
}

static void set_limit (int which, rlim_t v, const char *what) {
  struct rlimit r = { v, v };
  if (setrlimit(which, &r) != 0) fail_job("%s: %s", what, strerror(errno));
}

static void run_job (char **argv, int work_fd) {
  sigset_t none;
  sigemptyset(&none);
  sigprocmask(SIG_SETMASK, &none, NULL);
  for (int s = 1; s < NSIG; s++) signal(s, SIG_DFL);
  if (fsize >= 0) set_limit(RLIMIT_FSIZE, (rlim_t)fsize, "RLIMIT_FSIZE");
  if (nofile >= 0) set_limit(RLIMIT_NOFILE, (rlim_t)nofile, "RLIMIT_NOFILE");
  set_limit(RLIMIT_CORE, 0, "RLIMIT_CORE");
  if (chdir(work) != 0) fail_job("chdir %s: %s", work, strerror(errno));
  // the directory seen at that path must be the one the daemon made
  struct stat a, b;
  if (stat(".", &a) != 0 || fstat(work_fd, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino) fail_job("work directory not in place");
  close(work_fd);
  if (gid >= 0) {
    if (setgroups(0, NULL) != 0) fail_job("setgroups: %s", strerror(errno));
    if (setresgid((gid_t)gid, (gid_t)gid, (gid_t)gid) != 0) fail_job("setgid %ld: %s", gid, strerror(errno));
  }
  if (uid >= 0 && setresuid((uid_t)uid, (uid_t)uid, (uid_t)uid) != 0) fail_job("setuid %ld: %s", uid, strerror(errno));
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0) fail_job("no_new_privs: %s", strerror(errno));
  envs[n_envs] = NULL;
  execvpe(argv[0], argv, envs);
  fail_job("cannot start %s: %s", argv[0], strerror(errno));
}

static void init_main (char **argv, int alive_fd) {
  // killed with the outer process; and if it is gone already (its end of alive_fd closed), stop
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) _exit(255);
  struct pollfd pfd = { .fd = alive_fd, .events = POLLIN };
  if (poll(&pfd, 1, 0) != 0) _exit(255);
  close(alive_fd);
  if (unshare(CLONE_NEWNS | CLONE_NEWIPC | (no_network ? CLONE_NEWNET : 0)) != 0) fail_inner("unshare: %s", strerror(errno));
  // opened in the new namespace before anything is hidden: the binds below name them by descriptor
  int work_fd = open(work, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (work_fd < 0) fail_inner("open %s: %s", work, strerror(errno));
  int tmp_fd = open(tmp, O_PATH | O_DIRECTORY | O_CLOEXEC | O_NOFOLLOW);
  if (tmp_fd < 0) fail_inner("open %s: %s", tmp, strerror(errno));
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) != 0) fail_inner("private mounts: %s", strerror(errno));
  read_only_root();
  for (int i = 0; i < n_hides; i++) {
    if (!is_dir(hides[i])) continue;
    if (mount("tmpfs", hides[i], "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, "size=64k,nr_inodes=256,mode=0755") != 0) fail_inner("hide %s: %s", hides[i], strerror(errno));
  }
  make_path(work);
  bind_rw(work_fd, work);
  for (int i = 0; i < n_hides; i++) {
    if (!is_dir(hides[i])) continue;
    if (mount(NULL, hides[i], NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) fail_inner("hide %s: %s", hides[i], strerror(errno));
  }
  const char *tmps[] = { "/tmp", "/var/tmp", "/dev/shm" };
  for (size_t i = 0; i < sizeof tmps / sizeof tmps[0]; i++) if (is_dir(tmps[i])) bind_rw(tmp_fd, tmps[i]);
  close(tmp_fd);
  if (mount("proc", "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL) != 0) fail_inner("mount /proc: %s", strerror(errno));
  if (no_network) loopback_up();

  int exec_pipe[2];
  if (pipe2(exec_pipe, O_CLOEXEC) != 0) fail_inner("pipe: %s", strerror(errno));
  pid_t job = fork();
  if (job < 0) fail_inner("fork: %s", strerror(errno));
  if (job == 0) { close(exec_pipe[0]); exec_fd = exec_pipe[1]; run_job(argv, work_fd); }
  close(exec_pipe[1]);
  close(work_fd);
  char why[1024];
  ssize_t n;
  while ((n = read(exec_pipe[0], why, sizeof why - 1)) < 0 && errno == EINTR) {}
  if (n > 0) {
    why[n] = '\0';
    waitpid(job, NULL, 0);
    fail_inner("%s", why);
  }
  close(exec_pipe[0]);
  // reap everything; when the job itself ends, so does the namespace
  for (;;) {
    int st;
    pid_t w = waitpid(-1, &st, 0);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) _exit(255);
    if (w == job) {
      char msg[1 + sizeof st];
      msg[0] = 'S';
      memcpy(msg + 1, &st, sizeof st);
      (void)!write(report_fd, msg, sizeof msg);
      _exit(0);
    }
  }
}

// End as the job ended: the same exit code, or death by the same signal.
static void exit_like (int st) {
  if (WIFEXITED(st)) _exit(WEXITSTATUS(st));
  if (WIFSIGNALED(st)) {
    int sig = WTERMSIG(st);
    struct rlimit none = { 0, 0 };
    setrlimit(RLIMIT_CORE, &none);
    signal(sig, SIG_DFL);
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, sig);
    sigprocmask(SIG_UNBLOCK, &set, NULL);
    kill(getpid(), sig);
    _exit(128 + sig);
  }
  _exit(255);
}

int main (int argc, char **argv) {
  int i = 1;
  for (; i < argc; i++) {
    const char *a = argv[i];
    if (strcmp(a, "--") == 0) { i++; break; }
    if (i + 1 >= argc) fail_outer("%s needs a value", a);
    const char *v = argv[++i];
    if (strcmp(a, "--status") == 0) status_file = v;
    else if (strcmp(a, "--cgroup") == 0) { if (n_cgroups == MAX_LIST) fail_outer("too many --cgroup"); cgroups[n_cgroups++] = (char *)v; }
    else if (strcmp(a, "--hide") == 0) { if (n_hides == MAX_LIST) fail_outer("too many --hide"); hides[n_hides++] = (char *)v; }
    else if (strcmp(a, "--env") == 0) { if (n_envs == MAX_ENV) fail_outer("too many --env"); envs[n_envs++] = (char *)v; }
    else if (strcmp(a, "--work") == 0) work = v;
    else if (strcmp(a, "--tmp") == 0) tmp = v;
    else if (strcmp(a, "--uid") == 0) uid = parse_long(v, "uid");
    else if (strcmp(a, "--gid") == 0) gid = parse_long(v, "gid");
    else if (strcmp(a, "--fsize") == 0) fsize = parse_long(v, "fsize");
    else if (strcmp(a, "--nofile") == 0) nofile = parse_long(v, "nofile");
    else if (strcmp(a, "--nice") == 0) nice_level = (int)parse_long(v, "nice");
    else if (strcmp(a, "--network") == 0) no_network = strcmp(v, "none") == 0;
    else fail_outer("unknown option %s", a);
  }
  if (i >= argc) fail_outer("no command");
  if (work == NULL || work[0] != '/' || tmp == NULL || tmp[0] != '/') fail_outer("--work and --tmp must be absolute");
  if (uid == 0 || gid == 0) fail_outer("jobs never run as root");
  char **job_argv = argv + i;

  // the launcher (our parent) gone means the daemon is gone: so is the job
  pid_t launcher = getppid();
  if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != launcher) _exit(255);
  char self[32];
  snprintf(self, sizeof self, "%d\n", getpid());
  for (int k = 0; k < n_cgroups; k++) write_file(cgroups[k], self);
  // below the owner's processes, whatever the cgroup weights say
  if (setpriority(PRIO_PROCESS, 0, nice_level) != 0) fail_outer("nice: %s", strerror(errno));

  int pipefd[2], alive[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0 || pipe2(alive, O_CLOEXEC) != 0) fail_outer("pipe: %s", strerror(errno));
  if (unshare(CLONE_NEWPID) != 0) fail_outer("PID namespace: %s", strerror(errno));
  pid_t init = fork();
  if (init < 0) fail_outer("fork: %s", strerror(errno));
  if (init == 0) {
    close(pipefd[0]);
    close(alive[1]);
    report_fd = pipefd[1];
    init_main(job_argv, alive[0]);
  }
  close(pipefd[1]);
  close(alive[0]);
  char buf[1100];
  size_t got = 0;
  for (;;) {
    ssize_t n = read(pipefd[0], buf + got, sizeof buf - 1 - got);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += (size_t)n;
    if (got >= sizeof buf - 1) break;
  }
  int ist;
  while (waitpid(init, &ist, 0) < 0 && errno == EINTR) {}
  if (got >= 1 + sizeof(int) && buf[0] == 'S') {
    int st;
    memcpy(&st, buf + 1, sizeof st);
    exit_like(st);
  }
  if (got >= 1 && buf[0] == 'E') {
    buf[got] = '\0';
    fail_outer("%s", buf + 1);
  }
  // init died without a word: killed from outside (a timeout, a cancel)
  if (WIFSIGNALED(ist)) exit_like(ist);
  fail_outer("the job's init ended unexpectedly");
  return 255;
}
