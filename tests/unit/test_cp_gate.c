/* test_cp_gate.c: how the control plane's gate judges a request head before libmicrohttpd reads
 * it: a whole head with a Content-Length that is not plain digits is refused, everything else
 * waits for the rest of the head or passes. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "cp_gate.h"

static cp_gate_verdict_t judge(const char *s)
{
    return cp_gate_judge(s, strlen(s));
}

#define HEAD(fields) "POST /api/v1/auth/login HTTP/1.1\r\nHost: x\r\n" fields "\r\n"

Test(gate, plain_digits_pass)
{
    cr_assert_eq(judge(HEAD("Content-Length: 2\r\n")), CP_GATE_PASS);
    cr_assert_eq(judge(HEAD("content-length:0002\r\n")), CP_GATE_PASS);
    cr_assert_eq(judge(HEAD("Content-Length:\t2\r\n")), CP_GATE_PASS);
    cr_assert_eq(judge(HEAD("Content-Length: 18446744073709551615\r\n")), CP_GATE_PASS);
    cr_assert_eq(judge(HEAD("")), CP_GATE_PASS);
    /* two equal or different lengths are the server's to refuse (it names the problem) */
    cr_assert_eq(judge(HEAD("Content-Length: 2\r\nContent-Length: 3\r\n")), CP_GATE_PASS);
}

Test(gate, what_libmicrohttpd_would_answer_twice_is_refused)
{
    const char *bad[] = {"2, 2", "2,2", "-1", "+2", "0x10", "1e3", "2 ", "", " ", "2\t", "٢"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char head[256];
        snprintf(head, sizeof(head), HEAD("Content-Length: %s\r\n"), bad[i]);
        cr_assert_eq(judge(head), CP_GATE_BAD, "Content-Length: \"%s\"", bad[i]);
    }
    cr_assert_eq(judge(HEAD("Content-Length: 99999999999999999999999\r\n")), CP_GATE_TOO_LARGE);
    cr_assert_eq(judge(HEAD("Content-Length: 18446744073709551616\r\n")), CP_GATE_TOO_LARGE);
    /* a later malformed one counts too, and the case of the name does not matter */
    cr_assert_eq(judge(HEAD("Content-Length: 2\r\nCONTENT-LENGTH: x\r\n")), CP_GATE_BAD);
    /* a folded line continues a Content-Length */
    cr_assert_eq(judge(HEAD("Content-Length: 2\r\n 3\r\n")), CP_GATE_BAD);
    /* bare LF line ends are read as lines */
    cr_assert_eq(judge("POST / HTTP/1.1\nHost: x\nContent-Length: -1\n\n"), CP_GATE_BAD);
}

Test(gate, an_incomplete_head_waits)
{
    cr_assert_eq(judge(""), CP_GATE_MORE);
    cr_assert_eq(judge("POST /api/v1/auth/login HTT"), CP_GATE_MORE);
    cr_assert_eq(judge("POST / HTTP/1.1\r\nHost: x\r\n"), CP_GATE_MORE);
    /* judged bad already, but still not answered before the head is complete */
    cr_assert_eq(judge("POST / HTTP/1.1\r\nContent-Length: -1\r\nHost: x"), CP_GATE_MORE);
    cr_assert_eq(judge("\r\n\r\nPOST / HTTP/1.1\r\nHost: x\r\n\r\n"), CP_GATE_PASS);
}

Test(gate, request_lines_without_a_version_pass_at_once)
{
    /* HTTP/0.9 lines and garbage: the server answers them; nothing more is awaited */
    cr_assert_eq(judge("GET /\r\n"), CP_GATE_PASS);
    cr_assert_eq(judge("GET\r\n"), CP_GATE_PASS);
    cr_assert_eq(judge("\x16\x03\x01\x02\x05\n"), CP_GATE_PASS);
    cr_assert_eq(judge("GET / FTP/1.0\r\nContent-Length: x\r\n\r\n"), CP_GATE_PASS);
}
