/* The pod sandbox's process for the bed's node: it holds the pod's
 * namespaces and does nothing else. As PID 1 of the pod (a shared PID
 * namespace) it reaps zombies; SIGINT and SIGTERM end it with status 0.
 * Built static (build-node.sh) so its image is this one file. */
#include <signal.h>
#include <stdio.h>
#include <sys/wait.h>
#include <unistd.h>

static void stop(int sig) { (void)sig; _exit(0); }

static void reap(int sig) {
  (void)sig;
  while (waitpid(-1, NULL, WNOHANG) > 0) {
  }
}

int main(void) {
  struct sigaction sa = {0};
  sa.sa_handler = stop;
  if (sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0) return 1;
  sa.sa_handler = reap;
  sa.sa_flags = SA_NOCLDSTOP;
  if (sigaction(SIGCHLD, &sa, NULL) < 0) return 2;
  if (getpid() != 1) fprintf(stderr, "pause: not running as PID 1\n");
  for (;;) pause();
}
