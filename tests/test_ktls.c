/* Check suite for tls/ktls.c: the kTLS verdict agrees with what the kernel does when a connected
   loopback socket asks for the tls ULP, and the reason text is always usable. */
#include "tls/ktls.h"

#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* What the kernel answers when a connected TCP socket asks for "tls": 0 or a negative errno.
   Made here independently of the code under test. */
static int kernel_tls_ulp(void)
{
    int server = socket(AF_INET, SOCK_STREAM, 0);
    int client = socket(AF_INET, SOCK_STREAM, 0);
    ck_assert_int_ge(server, 0);
    ck_assert_int_ge(client, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    ck_assert_int_eq(bind(server, (struct sockaddr *)&a, sizeof(a)), 0);
    ck_assert_int_eq(listen(server, 4), 0);
    ck_assert_int_eq(getsockname(server, (struct sockaddr *)&a, &len), 0);
    ck_assert_int_eq(connect(client, (struct sockaddr *)&a, sizeof(a)), 0);
    int accepted = accept(server, NULL, NULL);
    ck_assert_int_ge(accepted, 0);
    int rc = setsockopt(accepted, IPPROTO_TCP, TCP_ULP, "tls", 3) == 0 ? 0 : -errno;
    close(accepted);
    close(client);
    close(server);
    return rc;
}

START_TEST(verdict_matches_the_kernel)
{
    char why[512];
    memset(why, 'x', sizeof(why));
    bool available = agw_tls_ktls_available(why, sizeof(why));
    ck_assert_ptr_nonnull(memchr(why, '\0', sizeof(why)));
    ck_assert_msg(strlen(why) > 10, "reason \"%s\"", why);
    int kernel = kernel_tls_ulp();
    printf("kTLS: %s (%s); the kernel's own answer: %s\n",
           available ? "available" : "not available", why,
           kernel == 0 ? "tls ULP attached" : strerror(-kernel));
    ck_assert_msg(available == (kernel == 0), "verdict %d, but setsockopt TCP_ULP gave %d (%s)",
                  available, kernel, why);
    if (!available)
        ck_assert_msg(strstr(why, "tls") != NULL, "the reason does not name the ULP: %s", why);
}
END_TEST

/* This machine's kernel has no kTLS (see DESIGN.md and issue 6): the fallback is the path that
   runs here, and the reason says why. Elsewhere the test above covers both answers. */
START_TEST(no_ktls_on_this_kernel)
{
    FILE *f = fopen("/proc/sys/net/ipv4/tcp_available_ulp", "r");
    char list[256] = "";
    if (f != NULL) {
        if (fgets(list, sizeof(list), f) == NULL)
            list[0] = '\0';
        fclose(f);
    }
    if (kernel_tls_ulp() == 0)
        return; /* a kernel with the ULP: nothing to check here */
    char why[512];
    ck_assert(!agw_tls_ktls_available(why, sizeof(why)));
    ck_assert_msg(strstr(why, "no tls ULP") != NULL, "%s", why);
    list[strcspn(list, "\n")] = '\0';
    ck_assert_msg(strstr(why, list) != NULL, "the reason does not quote the list \"%s\": %s", list,
                  why);
}
END_TEST

START_TEST(reason_buffer_bounds)
{
    bool full = agw_tls_ktls_available(NULL, 0);
    char tiny[8];
    memset(tiny, 'x', sizeof(tiny));
    ck_assert(agw_tls_ktls_available(tiny, sizeof(tiny)) == full);
    ck_assert_uint_eq(strlen(tiny), sizeof(tiny) - 1);
    char one[1] = {'x'};
    ck_assert(agw_tls_ktls_available(one, 1) == full);
    ck_assert_int_eq(one[0], '\0');
    char untouched[4] = {'a', 'b', 'c', 'd'};
    ck_assert(agw_tls_ktls_available(untouched, 0) == full);
    ck_assert_int_eq(memcmp(untouched, "abcd", 4), 0);
}
END_TEST

static Suite *ktls_suite(void)
{
    Suite *s = suite_create("ktls");
    TCase *tc = tcase_create("detect");
    tcase_add_test(tc, verdict_matches_the_kernel);
    tcase_add_test(tc, no_ktls_on_this_kernel);
    tcase_add_test(tc, reason_buffer_bounds);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ktls_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
