/* Corpus tests: every message under tests/corpus parses and survives both encodings unchanged;
 * every invalid one fails with the H.248 error code it declares. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "h248/h248.h"

#define CORPUS_ROOT "tests/corpus"
#define MAX_FILES 1024

/* What the test expects of a file, decided by the directory it sits in. */
enum corpus_kind {
    CORPUS_VALID,       /* rfc3525, h248, iq: parse and round-trip */
    CORPUS_INVALID,     /* invalid: fails with the "; expect: NNN" code of its first line */
    CORPUS_RFC_INVALID, /* rfc3525-invalid: RFC originals that break the ABNF inside a command */
};

struct corpus_file {
    char path[PATH_MAX];
    enum corpus_kind kind;
};

static struct corpus_file files[MAX_FILES];
static size_t n_files;

/* Indexes into files[] per kind, so that each loop test iterates one kind. */
static size_t valid_idx[MAX_FILES], invalid_idx[MAX_FILES], rfc_invalid_idx[MAX_FILES];
static size_t n_valid, n_invalid, n_rfc_invalid;

/* pretty/compact pairs: "<stem>.pretty.txt" and "<stem>.compact.txt" in the same directory. */
static size_t pair_pretty[MAX_FILES], pair_compact[MAX_FILES];
static size_t n_pairs;

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Adds every *.txt of one corpus directory, in name order so that runs are reproducible. */
static void collect_dir(const char *dir, enum corpus_kind kind)
{
    char path[128];
    char *names[MAX_FILES];
    size_t n = 0;

    snprintf(path, sizeof(path), "%s/%s", CORPUS_ROOT, dir);
    DIR *d = opendir(path);
    if (d == NULL) {
        fprintf(stderr, "test_corpus: cannot open %s: %s\n", path, strerror(errno));
        return;
    }
    struct dirent *de;
    while ((de = readdir(d)) != NULL && n < MAX_FILES) {
        size_t len = strlen(de->d_name);
        if (len > 4 && strcmp(de->d_name + len - 4, ".txt") == 0)
            names[n++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof(names[0]), cmp_names);
    for (size_t i = 0; i < n; i++) {
        if (names[i] != NULL && n_files < MAX_FILES) {
            struct corpus_file *f = &files[n_files];
            snprintf(f->path, sizeof(f->path), "%s/%s", path, names[i]);
            f->kind = kind;
            if (kind == CORPUS_VALID)
                valid_idx[n_valid++] = n_files;
            else if (kind == CORPUS_INVALID)
                invalid_idx[n_invalid++] = n_files;
            else
                rfc_invalid_idx[n_rfc_invalid++] = n_files;
            n_files++;
        }
        free(names[i]);
    }
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static void collect_pairs(void)
{
    for (size_t i = 0; i < n_valid; i++) {
        const char *p = files[valid_idx[i]].path;
        if (!ends_with(p, ".pretty.txt"))
            continue;
        char want[PATH_MAX];
        snprintf(want, sizeof(want), "%.*s.compact.txt", (int)(strlen(p) - strlen(".pretty.txt")),
                 p);
        for (size_t j = 0; j < n_valid; j++) {
            if (strcmp(files[valid_idx[j]].path, want) == 0) {
                pair_pretty[n_pairs] = valid_idx[i];
                pair_compact[n_pairs] = valid_idx[j];
                n_pairs++;
            }
        }
    }
}

/* Reads a whole file; the caller frees *out. */
static char *read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    ck_assert_msg(fp != NULL, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    ck_assert_ptr_nonnull(buf);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, fp)) > 0) {
        n += got;
        if (n == cap) {
            cap *= 2;
            buf = realloc(buf, cap);
            ck_assert_ptr_nonnull(buf);
        }
    }
    ck_assert_msg(!ferror(fp), "%s: read error", path);
    fclose(fp);
    *len = n;
    return buf;
}

static const char *err_text(const struct h248_parse_error *err)
{
    static char text[sizeof(err->text) + 1];
    memcpy(text, err->text, sizeof(err->text));
    text[sizeof(err->text)] = '\0';
    return text;
}

/* Parses or fails the test with the file name and the parser's own words. */
static struct h248_message *parse_ok(const char *what, const char *data, size_t len)
{
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    memset(&err, 0, sizeof(err));
    int rc = h248_parse_message(data, len, NULL, &msg, &err);
    ck_assert_msg(rc == 0 && msg != NULL, "%s: parse failed (rc %d): code %u at offset %zu: %s",
                  what, rc, err.code, err.offset, err_text(&err));
    return msg;
}

/* Encodes into a fresh buffer that the caller frees, growing it when told -ENOSPC. */
static char *encode_ok(const char *what, const struct h248_message *msg, enum h248_style style,
                       size_t *len)
{
    size_t cap = 65536;
    for (int attempt = 0; attempt < 2; attempt++) {
        char *buf = malloc(cap);
        ck_assert_ptr_nonnull(buf);
        size_t need = 0;
        int rc = h248_encode_message(msg, style, buf, cap, &need);
        if (rc == 0) {
            ck_assert_msg(need <= cap, "%s: encoder reports %zu bytes in a %zu buffer", what, need,
                          cap);
            *len = need;
            return buf;
        }
        free(buf);
        ck_assert_msg(rc == -ENOSPC, "%s: %s encoding failed: %d", what,
                      style == H248_STYLE_COMPACT ? "compact" : "pretty", rc);
        ck_assert_msg(need > cap, "%s: -ENOSPC but needs only %zu of %zu", what, need, cap);
        cap = need;
    }
    ck_abort_msg("%s: encoder asked for more room twice", what);
    return NULL;
}

static void assert_same_bytes(const char *what, const char *a, size_t alen, const char *b,
                              size_t blen)
{
    ck_assert_msg(alen == blen && memcmp(a, b, alen) == 0,
                  "%s: encoding is not deterministic:\n--- first (%zu bytes)\n%.*s\n"
                  "--- second (%zu bytes)\n%.*s",
                  what, alen, (int)(alen > 2000 ? 2000 : alen), a, blen,
                  (int)(blen > 2000 ? 2000 : blen), b);
}

static void assert_equal_msgs(const char *what, const struct h248_message *a,
                              const struct h248_message *b)
{
    if (h248_message_equal(a, b))
        return;
    size_t alen, blen;
    char *ea = encode_ok(what, a, H248_STYLE_COMPACT, &alen);
    char *eb = encode_ok(what, b, H248_STYLE_COMPACT, &blen);
    ck_abort_msg("%s: messages differ:\n--- first\n%.*s\n--- second\n%.*s", what,
                 (int)(alen > 2000 ? 2000 : alen), ea, (int)(blen > 2000 ? 2000 : blen), eb);
}

/* parse; compact and pretty encodings parse back to an equal message; encodings are stable. */
START_TEST(test_valid_file)
{
    const char *path = files[valid_idx[_i]].path;
    char what[PATH_MAX + 32];
    size_t len;
    char *data = read_file(path, &len);

    struct h248_message *m1 = parse_ok(path, data, len);

    size_t c1len, p1len, c2len, c3len, p2len;
    char *c1 = encode_ok(path, m1, H248_STYLE_COMPACT, &c1len);
    snprintf(what, sizeof(what), "%s (compact re-parse)", path);
    struct h248_message *m2 = parse_ok(what, c1, c1len);
    assert_equal_msgs(what, m1, m2);

    char *p1 = encode_ok(path, m1, H248_STYLE_PRETTY, &p1len);
    snprintf(what, sizeof(what), "%s (pretty re-parse)", path);
    struct h248_message *m3 = parse_ok(what, p1, p1len);
    assert_equal_msgs(what, m1, m3);

    snprintf(what, sizeof(what), "%s (compact of compact)", path);
    char *c2 = encode_ok(what, m2, H248_STYLE_COMPACT, &c2len);
    assert_same_bytes(what, c1, c1len, c2, c2len);

    snprintf(what, sizeof(what), "%s (compact of pretty)", path);
    char *c3 = encode_ok(what, m3, H248_STYLE_COMPACT, &c3len);
    assert_same_bytes(what, c1, c1len, c3, c3len);

    snprintf(what, sizeof(what), "%s (pretty of pretty)", path);
    char *p2 = encode_ok(what, m3, H248_STYLE_PRETTY, &p2len);
    assert_same_bytes(what, p1, p1len, p2, p2len);

    free(p2);
    free(c3);
    free(c2);
    free(p1);
    free(c1);
    h248_message_free(m3);
    h248_message_free(m2);
    h248_message_free(m1);
    free(data);
}
END_TEST

/* The code a file of tests/corpus/invalid declares on its first line, "; expect: NNN". */
static unsigned expected_code(const char *path, const char *data, size_t len)
{
    static const char tag[] = "; expect: ";
    ck_assert_msg(len > sizeof(tag) && memcmp(data, tag, sizeof(tag) - 1) == 0,
                  "%s: first line must be \"; expect: <code>\"", path);
    unsigned code = 0;
    size_t i = sizeof(tag) - 1;
    while (i < len && data[i] >= '0' && data[i] <= '9' && code < 10000)
        code = code * 10 + (unsigned)(data[i++] - '0');
    ck_assert_msg(code >= 400 && code < 600, "%s: bad expected code", path);
    return code;
}

static void assert_parse_fails(const char *path, const char *data, size_t len, unsigned code)
{
    struct h248_message *msg = NULL;
    struct h248_parse_error err;
    memset(&err, 0, sizeof(err));
    int rc = h248_parse_message(data, len, NULL, &msg, &err);
    if (rc == 0) {
        size_t elen = 0;
        char *enc = encode_ok(path, msg, H248_STYLE_COMPACT, &elen);
        ck_abort_msg("%s: accepted, expected error %u; parsed as:\n%.*s", path, code,
                     (int)(elen > 2000 ? 2000 : elen), enc);
    }
    ck_assert_msg(rc < 0, "%s: parse returned %d", path, rc);
    ck_assert_msg(msg == NULL, "%s: failed parse left a message behind", path);
    ck_assert_msg(err.code == code, "%s: error %u, expected %u (offset %zu: %s)", path, err.code,
                  code, err.offset, err_text(&err));
    ck_assert_msg(err.text[0] != '\0', "%s: error %u has no text", path, err.code);
    ck_assert_msg(err.offset <= len, "%s: error offset %zu beyond %zu bytes", path, err.offset,
                  len);
}

START_TEST(test_invalid_file)
{
    const char *path = files[invalid_idx[_i]].path;
    size_t len;
    char *data = read_file(path, &len);
    assert_parse_fails(path, data, len, expected_code(path, data, len));
    free(data);
}
END_TEST

/* The RFC 3525 originals kept for reference: each breaks the ABNF inside a command. */
START_TEST(test_rfc_invalid_file)
{
    const char *path = files[rfc_invalid_idx[_i]].path;
    size_t len;
    char *data = read_file(path, &len);
    assert_parse_fails(path, data, len, H248_ERR_COMMAND_SYNTAX);
    free(data);
}
END_TEST

/* The same message written pretty (long tokens, layout) and compact parses to equal messages. */
START_TEST(test_pretty_compact_pair)
{
    const char *pp = files[pair_pretty[_i]].path, *cp = files[pair_compact[_i]].path;
    size_t plen, clen;
    char *pdata = read_file(pp, &plen), *cdata = read_file(cp, &clen);
    struct h248_message *pm = parse_ok(pp, pdata, plen);
    struct h248_message *cm = parse_ok(cp, cdata, clen);
    char what[2 * PATH_MAX + 16];
    snprintf(what, sizeof(what), "%s vs %s", pp, cp);
    assert_equal_msgs(what, pm, cm);
    h248_message_free(cm);
    h248_message_free(pm);
    free(cdata);
    free(pdata);
}
END_TEST

/* A missing or emptied directory must not let the corpus tests pass by testing nothing. */
START_TEST(test_corpus_present)
{
    size_t rfc = 0, h248 = 0, iq = 0;
    for (size_t i = 0; i < n_valid; i++) {
        const char *p = files[valid_idx[i]].path;
        if (strncmp(p, CORPUS_ROOT "/rfc3525/", strlen(CORPUS_ROOT "/rfc3525/")) == 0)
            rfc++;
        else if (strncmp(p, CORPUS_ROOT "/h248/", strlen(CORPUS_ROOT "/h248/")) == 0)
            h248++;
        else
            iq++;
    }
    ck_assert_uint_ge(rfc, 28);
    ck_assert_uint_ge(h248, 30);
    ck_assert_uint_ge(iq, 60);
    ck_assert_uint_ge(n_invalid, 20);
    ck_assert_uint_ge(n_rfc_invalid, 7);
    ck_assert_uint_ge(n_pairs, 30);
}
END_TEST

static Suite *corpus_suite(void)
{
    Suite *s = suite_create("corpus");
    TCase *tc = tcase_create("present");
    tcase_add_test(tc, test_corpus_present);
    suite_add_tcase(s, tc);

    tc = tcase_create("valid");
    tcase_set_timeout(tc, 60);
    tcase_add_loop_test(tc, test_valid_file, 0, (int)n_valid);
    suite_add_tcase(s, tc);

    tc = tcase_create("invalid");
    tcase_add_loop_test(tc, test_invalid_file, 0, (int)n_invalid);
    suite_add_tcase(s, tc);

    tc = tcase_create("rfc3525-invalid");
    tcase_add_loop_test(tc, test_rfc_invalid_file, 0, (int)n_rfc_invalid);
    suite_add_tcase(s, tc);

    tc = tcase_create("pretty-compact-pairs");
    tcase_add_loop_test(tc, test_pretty_compact_pair, 0, (int)n_pairs);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    collect_dir("rfc3525", CORPUS_VALID);
    collect_dir("h248", CORPUS_VALID);
    collect_dir("iq", CORPUS_VALID);
    collect_dir("invalid", CORPUS_INVALID);
    collect_dir("rfc3525-invalid", CORPUS_RFC_INVALID);
    collect_pairs();

    SRunner *sr = srunner_create(corpus_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
