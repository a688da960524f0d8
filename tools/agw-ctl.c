/* agw-ctl: command-line companion of ims-agw; today it decodes and re-encodes H.248 text. */
#include "h248/h248.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef AGW_VERSION
#define AGW_VERSION "0.0.0"
#endif

#define INPUT_MAX (1024 * 1024) /* one message; anything larger is refused, not truncated */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: agw-ctl decode [--compact|--pretty]   read one H.248 text message on stdin,\n"
            "                                              print it re-encoded (default compact)\n"
            "       agw-ctl -h | -V\n");
}

/* Reads all of stdin into a malloc'd buffer of at most INPUT_MAX bytes. */
static int read_stdin(char **out, size_t *len_out)
{
    char *buf = malloc(INPUT_MAX + 1);
    size_t len = 0;
    if (buf == NULL)
        return -ENOMEM;
    for (;;) {
        size_t n = fread(buf + len, 1, INPUT_MAX + 1 - len, stdin);
        len += n;
        if (n == 0 || len > INPUT_MAX)
            break;
    }
    if (ferror(stdin)) {
        free(buf);
        return -EIO;
    }
    if (len > INPUT_MAX) {
        free(buf);
        return -EFBIG;
    }
    *out = buf;
    *len_out = len;
    return 0;
}

static int decode(enum h248_style style)
{
    char *in = NULL;
    size_t in_len = 0;
    int rc = read_stdin(&in, &in_len);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: cannot read stdin: %s%s\n", strerror(-rc),
                rc == -EFBIG ? " (limit 1 MiB)" : "");
        return 1;
    }

    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    memset(&err, 0, sizeof(err));
    rc = h248_parse_message(in, in_len, NULL, &msg, &err);
    free(in);
    if (rc < 0) {
        fprintf(stderr, "error %u: %.*s\n", err.code, (int)sizeof(err.text), err.text);
        return 1;
    }

    size_t need = 0;
    rc = h248_encode_message(msg, style, NULL, 0, &need);
    char *out = NULL;
    if (rc == -ENOSPC) {
        out = malloc(need > 0 ? need : 1);
        rc = out == NULL ? -ENOMEM : h248_encode_message(msg, style, out, need, &need);
    }
    h248_message_free(msg);
    if (rc < 0) {
        fprintf(stderr, "agw-ctl: cannot encode: %s\n", strerror(-rc));
        free(out);
        return 1;
    }
    int ok = fwrite(out, 1, need, stdout) == need && fputc('\n', stdout) != EOF;
    free(out);
    if (!ok || fflush(stdout) != 0) {
        fprintf(stderr, "agw-ctl: cannot write stdout\n");
        return 1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0)) {
        usage(stdout);
        return 0;
    }
    if (argc >= 2 && (strcmp(argv[1], "-V") == 0 || strcmp(argv[1], "--version") == 0)) {
        printf("agw-ctl %s\n", AGW_VERSION);
        return 0;
    }
    if (argc >= 2 && strcmp(argv[1], "decode") == 0) {
        enum h248_style style = H248_STYLE_COMPACT;
        for (int i = 2; i < argc; i++) {
            if (strcmp(argv[i], "--compact") == 0) {
                style = H248_STYLE_COMPACT;
            } else if (strcmp(argv[i], "--pretty") == 0) {
                style = H248_STYLE_PRETTY;
            } else {
                fprintf(stderr, "agw-ctl: unknown option '%s'\n", argv[i]);
                usage(stderr);
                return 2;
            }
        }
        return decode(style);
    }
    usage(stderr);
    return 2;
}
