/* A what-if for BENCHMARKS.md, not part of kubesu: LD_PRELOAD'ed into a
 * root-run kubesu, it turns every setsockopt(TCP_NODELAY, 0) into
 * TCP_NODELAY 1, to measure what kubesu gains from disabling Nagle's
 * algorithm on its API connections (kube-client's HttpConnector leaves it on). */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

int setsockopt(int fd, int level, int name, const void *value, socklen_t len) {
    static int (*real)(int, int, int, const void *, socklen_t);
    if (!real)
        real = (int (*)(int, int, int, const void *, socklen_t))dlsym(RTLD_NEXT, "setsockopt");
    static const int one = 1;
    if (level == IPPROTO_TCP && name == TCP_NODELAY)
        return real(fd, level, name, &one, sizeof one);
    return real(fd, level, name, value, len);
}
