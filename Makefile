# Build, tests (plain and ASan+UBSan), fuzzing and source checks for ims-agw. GNU make, one file.

VERSION := 0.1.0

ifeq ($(origin CC),default)
CC := gcc
endif
FUZZ_CC ?= clang
CLANG_FORMAT ?= clang-format
FUZZ_SECONDS ?= 60
PKG_CONFIG ?= pkg-config

WARN := -std=gnu11 -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
        -Wformat=2 -Wvla
OPT := -O2 -g -D_FORTIFY_SOURCE=2 -fstack-protector-strong
SAN := -fsanitize=address,undefined -fno-omit-frame-pointer
ASAN_OPT := $(SAN) -O1 -g
# For valgrind: no sanitizer, DWARF 4 (valgrind 3.19 cannot read gcc 12's default DWARF 5).
VG_OPT := -O1 -g -gdwarf-4 -fno-omit-frame-pointer
CPPFLAGS += -I.

# Recursive (=) on purpose: evaluated only when a recipe runs, i.e. after `deps` installed them.
UV_CFLAGS = $(shell $(PKG_CONFIG) --cflags libuv)
UV_LIBS = $(shell $(PKG_CONFIG) --libs libuv)
SSL_CFLAGS = $(shell $(PKG_CONFIG) --cflags openssl)
SSL_LIBS = $(shell $(PKG_CONFIG) --libs openssl)
SCTP_CFLAGS = $(shell $(PKG_CONFIG) --cflags usrsctp)
SCTP_LIBS = $(shell $(PKG_CONFIG) --libs usrsctp)
CHECK_CFLAGS = $(shell $(PKG_CONFIG) --cflags check)
CHECK_LIBS = $(shell $(PKG_CONFIG) --libs check)
INIH_CFLAGS = $(shell $(PKG_CONFIG) --cflags inih)
INIH_LIBS = $(shell $(PKG_CONFIG) --libs inih)
SYSTEMD_CFLAGS = $(shell $(PKG_CONFIG) --cflags libsystemd)
SYSTEMD_LIBS = $(shell $(PKG_CONFIG) --libs libsystemd)
MHD_CFLAGS = $(shell $(PKG_CONFIG) --cflags libmicrohttpd)
MHD_LIBS = $(shell $(PKG_CONFIG) --libs libmicrohttpd)
USRSCTP_VERSION = $(shell $(PKG_CONFIG) --modversion usrsctp 2>/dev/null)

H248_SRCS := $(wildcard h248/*.c)
TLS_SRCS := $(wildcard tls/*.c)
SCTP_SRCS := $(wildcard sctp/*.c)
AGW_SRCS := $(wildcard agw/*.c)
AGW_LIB_SRCS := $(filter-out agw/main.c,$(AGW_SRCS))
TEST_SRCS := $(wildcard tests/test_*.c)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
TEST_NAMES := $(basename $(notdir $(TEST_SRCS)))
FUZZ_NAMES := $(basename $(notdir $(FUZZ_SRCS)))

# Archives in link order; tls/ and sctp/ exist (and get an archive) once they hold sources.
LIB_NAMES := $(if $(SCTP_SRCS),libagwsctp.a) $(if $(TLS_SRCS),libagwtls.a) libh248.a
LIB_CFLAGS = $(if $(TLS_SRCS),$(SSL_CFLAGS)) $(if $(SCTP_SRCS),$(SCTP_CFLAGS))
LIB_LIBS = $(if $(SCTP_SRCS),$(SCTP_LIBS)) $(SSL_LIBS)

# Goals that need the Debian packages first: every compile waits for `deps` (order-only).
ifneq ($(filter check check-fast asan run demo bench valgrind,$(MAKECMDGOALS)),)
NEED_DEPS := deps
endif

.DEFAULT_GOAL := all
.PHONY: all tests asan-build check check-fast asan fuzz check-deps format format-check compdb \
        clean bench bench-dc bench-codec bench-tls bench-setup demo run deps install uninstall \
        valgrind analyze
.SUFFIXES:
.DELETE_ON_ERROR:
# Objects reached only through pattern rules (tests, fuzz harnesses) are kept, not deleted.
.SECONDARY:

# One build variant: $(1) output root, $(2) compile flags, $(3) link flags.
define variant
$(1)/obj/%.o: %.c | $(NEED_DEPS)
	@mkdir -p $$(@D)
	$$(CC) $$(CPPFLAGS) $$(WARN) $(2) $$(CFLAGS) -MMD -MP -c -o $$@ $$<

$(1)/obj/tls/%.o: CFLAGS += $$(SSL_CFLAGS)
$(1)/obj/sctp/%.o: CFLAGS += $$(SCTP_CFLAGS)
$(1)/obj/agw/%.o: CFLAGS += $$(UV_CFLAGS) $$(LIB_CFLAGS) $$(INIH_CFLAGS) $$(SYSTEMD_CFLAGS) $$(MHD_CFLAGS) \
    -DAGW_VERSION='"$(VERSION)"' $$(if $$(USRSCTP_VERSION),-DAGW_USRSCTP_VERSION='"$$(USRSCTP_VERSION)"')
$(1)/obj/tools/%.o: CFLAGS += -DAGW_VERSION='"$(VERSION)"' $$(SSL_CFLAGS)
# Tests may name the codec's headers without the folder ("h248.h", "token.h").
$(1)/obj/tests/%.o: CFLAGS += -Ih248 $$(CHECK_CFLAGS) $$(LIB_CFLAGS) $$(UV_CFLAGS) $$(INIH_CFLAGS)

$(1)/libh248.a: $(H248_SRCS:%.c=$(1)/obj/%.o)
$(1)/libagwtls.a: $(TLS_SRCS:%.c=$(1)/obj/%.o)
$(1)/libagwsctp.a: $(SCTP_SRCS:%.c=$(1)/obj/%.o)
# The daemon's modules, less main(): linked by ims-agw and by the tests of daemon modules.
$(1)/libagw.a: $(AGW_LIB_SRCS:%.c=$(1)/obj/%.o)
$(1)/%.a:
	@rm -f $$@
	$$(AR) rcs $$@ $$^

$(1)/ims-agw: $(1)/obj/agw/main.o $(1)/libagw.a $(LIB_NAMES:%=$(1)/%)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(UV_LIBS) $$(LIB_LIBS) $$(INIH_LIBS) $$(SYSTEMD_LIBS) \
	    $$(MHD_LIBS) $$(LDLIBS)

$(1)/agw-ctl: $(1)/obj/tools/agw-ctl.o $(1)/obj/tools/iq_client.o $(1)/obj/tools/scenario.o \
    $(1)/libh248.a
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)

$(1)/agw-bench: $(1)/obj/tools/agw-bench.o $(1)/obj/tools/bench_bulk.o \
    $(1)/obj/tools/bench_ref.o $(1)/obj/tools/iq_client.o $(1)/obj/tools/bench_dc.o \
    $(1)/obj/tools/bench_modes.o $(1)/obj/tools/bench_rr.o $(1)/obj/tools/bench_hs.o \
    $(1)/obj/tools/bench_idle.o \
    $(1)/obj/tools/dc_endpoint.o $(1)/obj/agw/stun.o $(LIB_NAMES:%=$(1)/%)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(LIB_LIBS) -lpthread $$(LDLIBS)

$(1)/dc-peer: $(1)/obj/tools/dc-peer.o $(1)/obj/tools/dc_endpoint.o $(1)/obj/agw/stun.o \
    $(LIB_NAMES:%=$(1)/%)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(LIB_LIBS) -lpthread $$(LDLIBS)

$(1)/msrp-peer: $(1)/obj/tools/msrp-peer.o
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)

$(1)/bench-codec: $(1)/obj/tools/bench-codec.o $(1)/libh248.a
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(LDLIBS)

$(1)/obj/tools/bench-tls.o: CFLAGS += $$(SSL_CFLAGS)
$(1)/bench-tls: $(1)/obj/tools/bench-tls.o $(1)/libagwtls.a
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(SSL_LIBS) $$(LDLIBS)

$(1)/tests/%: $(1)/obj/tests/%.o $(1)/libagw.a $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(UV_LIBS) $$(LIB_LIBS) $$(INIH_LIBS) \
	    $$(MHD_LIBS) $$(LDLIBS)

# The Iq client test links tools/ objects, which must come before the archives they use.
$(1)/tests/test_iq_client: $(1)/obj/tests/test_iq_client.o $(1)/obj/tools/iq_client.o \
    $(1)/obj/tools/scenario.o $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) $$(LDLIBS)

# The relay test plays the MGC too, and a TLS UE with OpenSSL.
$(1)/tests/test_relay: $(1)/obj/tests/test_relay.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o \
    $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) -lpthread $$(LDLIBS)

$(1)/tests/test_relay_flows: $(1)/obj/tests/test_relay_flows.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o \
    $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) -lpthread $$(LDLIBS)

$(1)/tests/test_relay_faults: $(1)/obj/tests/test_relay_faults.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o \
    $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) -lpthread $$(LDLIBS)

# The data-channel tests play the UE and the core with tools/dc_endpoint.o (and the MGC).
$(1)/tests/test_datachannel: $(1)/obj/tests/test_datachannel.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o $(1)/obj/tools/dc_endpoint.o $(1)/obj/agw/stun.o \
    $(1)/obj/agw/msrp_frame.o $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) -lpthread $$(LDLIBS)

# The browser test plays the ALG, the web server and the core MSRP peer for headless Chromium.
$(1)/tests/test_browser: $(1)/obj/tests/test_browser.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) -lpthread $$(LDLIBS)

$(1)/tests/test_dc_endpoint: $(1)/obj/tests/test_dc_endpoint.o $(1)/obj/tools/dc_endpoint.o \
    $(1)/obj/agw/stun.o $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) -lpthread $$(LDLIBS)

# The daemon test plays the MGC with tools/iq_client.o.
$(1)/tests/test_daemon: $(1)/obj/tests/test_daemon.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o \
    $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) $$(LDLIBS)

# The Iq fault test plays the MGC behind a lossy UDP proxy that runs in a thread.
$(1)/tests/test_iq_faults: $(1)/obj/tests/test_iq_faults.o $(1)/obj/tests/lossy_proxy.o \
    $(1)/obj/tests/harness.o $(1)/obj/tools/iq_client.o $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) -lpthread $$(LDLIBS)

# The metrics and control-socket test plays the MGC, reads the configuration keys and runs the
# agw-ctl of its variant.
$(1)/tests/test_metrics: $(1)/obj/tests/test_metrics.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o $(1)/libagw.a \
    $(LIB_NAMES:%=$(1)/%) | $(1)/agw-ctl
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(UV_LIBS) $$(LIB_LIBS) $$(INIH_LIBS) \
	    $$(LDLIBS)

# The notify test plays systemd and the MGC (tools/iq_client.o).
$(1)/tests/test_systemd: $(1)/obj/tests/test_systemd.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o \
    $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) $$(LDLIBS)

# The reload test plays the MGCs (tools/iq_client.o), a UE and a core peer.
$(1)/tests/test_reload: $(1)/obj/tests/test_reload.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o \
    $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(3) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) $$(LDLIBS)

-include $$(wildcard $(1)/obj/*/*.d $(1)/obj/*/*/*.d)
endef

$(eval $(call variant,build,$(OPT),))
$(eval $(call variant,build/asan,$(ASAN_OPT),$(SAN)))
$(eval $(call variant,build/vg,$(VG_OPT),))

PROGRAMS := ims-agw agw-ctl agw-bench msrp-peer dc-peer agw-soak bench-codec bench-tls

all: $(LIB_NAMES:%=build/%) $(PROGRAMS:%=build/%)

# The daemon is a prerequisite: tests/test_daemon runs it.
tests: all $(TEST_NAMES:%=build/tests/%)
asan-build: $(LIB_NAMES:%=build/asan/%) build/asan/ims-agw $(TEST_NAMES:%=build/asan/tests/%)

check: deps tests asan-build
	TESTS="$(TEST_NAMES)" tools/run-tests.sh build build/asan

check-fast: deps tests
	TESTS="$(TEST_NAMES)" tools/run-tests.sh build

asan: deps asan-build
	TESTS="$(TEST_NAMES)" tools/run-tests.sh build/asan

deps:
	tools/install-deps.sh

# Fuzz targets: every library source compiled again by clang with coverage instrumentation.
FUZZ_LIB_SRCS := $(H248_SRCS) $(TLS_SRCS) $(SCTP_SRCS)
FUZZ_FLAGS := -fsanitize=fuzzer,address,undefined -fno-omit-frame-pointer -O1 -g

build/fuzz/obj/%.o: %.c
	@mkdir -p $(@D)
	$(FUZZ_CC) $(CPPFLAGS) $(WARN) $(FUZZ_FLAGS) $(LIB_CFLAGS) $(FUZZ_CFLAGS) -MMD -MP -c -o $@ $<

build/fuzz/obj/tests/%.o: FUZZ_CFLAGS = -Ih248 $(UV_CFLAGS)
build/fuzz/obj/agw/%.o: FUZZ_CFLAGS = $(UV_CFLAGS) $(INIH_CFLAGS) $(SYSTEMD_CFLAGS) $(MHD_CFLAGS) \
    -DAGW_VERSION='"$(VERSION)"'

build/fuzz/fuzz_%: build/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_SRCS:%.c=build/fuzz/obj/%.o)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(LIB_LIBS)

# The command-layer harness runs the daemon's modules without their loops: from an archive,
# so that only the modules it reaches (and their libraries) are linked.
build/fuzz/libagw.a: $(AGW_LIB_SRCS:%.c=build/fuzz/obj/%.o)
	@rm -f $@
	$(AR) rcs $@ $^

build/fuzz/fuzz_iq_commands: build/fuzz/obj/tests/fuzz/fuzz_iq_commands.o build/fuzz/libagw.a \
    $(FUZZ_LIB_SRCS:%.c=build/fuzz/obj/%.o)
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(UV_LIBS) $(LIB_LIBS) $(INIH_LIBS) $(SYSTEMD_LIBS) \
	    -lpthread

# The STUN and MSRP harnesses need their codec from agw/ (no libuv).
build/fuzz/fuzz_stun: build/fuzz/obj/tests/fuzz/fuzz_stun.o build/fuzz/obj/agw/stun.o
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^ $(SSL_LIBS)

build/fuzz/fuzz_msrp_frame: build/fuzz/obj/tests/fuzz/fuzz_msrp_frame.o \
    build/fuzz/obj/agw/msrp_frame.o
	$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $^

-include $(wildcard build/fuzz/obj/*/*.d build/fuzz/obj/*/*/*.d)

# Seeds are copied to a scratch corpus so that generated inputs never land in the repository.
fuzz: $(FUZZ_NAMES:%=build/fuzz/%)
	@failed=""; for f in $(FUZZ_NAMES); do \
	    name=$${f#fuzz_}; work=build/fuzz/work/$$name; \
	    rm -rf $$work; mkdir -p $$work/corpus $$work/artifacts; \
	    if [ -d tests/fuzz/corpus/$$name ]; then cp -R tests/fuzz/corpus/$$name/. $$work/corpus/; fi; \
	    echo "fuzz $$f: $(FUZZ_SECONDS) s, $$(ls $$work/corpus | wc -l) seeds, log $$work/log"; \
	    if build/fuzz/$$f -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=2048 \
	            -print_final_stats=1 -artifact_prefix=$$work/artifacts/ $$work/corpus \
	            >$$work/log 2>&1; then \
	        grep -E '^(Done|stat::peak_rss_mb)' $$work/log || true; \
	    else \
	        tail -n 60 $$work/log; echo "fuzz $$f: FAILED, inputs in $$work/artifacts"; \
	        failed="$$failed $$f"; \
	    fi; \
	done; \
	if [ -n "$$failed" ]; then echo "fuzz: failed:$$failed"; exit 1; fi; echo "fuzz: ok"

# Static analysis: gcc -fanalyzer over the libraries, the daemon, the tools and the tests, one log
# per source (redone only when the source or a header it includes changed). A warning fails the
# target unless tools/analyze.supp lists it as a reviewed false positive ("FILE FUNCTION OPTION").
ANALYZE_CC ?= gcc
ANALYZE_DIR ?= build/analyze
ANALYZE_SRCS := $(H248_SRCS) $(TLS_SRCS) $(SCTP_SRCS) $(AGW_SRCS) $(wildcard tools/*.c) \
    $(wildcard tests/*.c)
ANALYZE_LOGS := $(ANALYZE_SRCS:%.c=$(ANALYZE_DIR)/%.log)

$(ANALYZE_DIR)/%.log: %.c
	@mkdir -p $(@D)
	@echo "analyze $<"
	@LC_ALL=C $(ANALYZE_CC) $(CPPFLAGS) $(WARN) -Wno-error $(OPT) $(CFLAGS) -fanalyzer \
	    -fdiagnostics-plain-output -MMD -MP -MT $@ -MF $(@:.log=.d) -c -o /dev/null $< \
	    2>$@.tmp || { cat $@.tmp; rm -f $@.tmp; exit 1; }
	@mv $@.tmp $@

$(ANALYZE_DIR)/tls/%.log: CFLAGS += $(SSL_CFLAGS)
$(ANALYZE_DIR)/sctp/%.log: CFLAGS += $(SCTP_CFLAGS)
$(ANALYZE_DIR)/agw/%.log: CFLAGS += $(UV_CFLAGS) $(LIB_CFLAGS) $(INIH_CFLAGS) $(SYSTEMD_CFLAGS) \
    $(MHD_CFLAGS) -DAGW_VERSION='"$(VERSION)"' \
    $(if $(USRSCTP_VERSION),-DAGW_USRSCTP_VERSION='"$(USRSCTP_VERSION)"')
$(ANALYZE_DIR)/tools/%.log: CFLAGS += -DAGW_VERSION='"$(VERSION)"' $(SSL_CFLAGS)
$(ANALYZE_DIR)/tests/%.log: CFLAGS += -Ih248 $(CHECK_CFLAGS) $(LIB_CFLAGS) $(UV_CFLAGS) $(INIH_CFLAGS)

analyze: $(ANALYZE_LOGS)
	tools/analyze-filter.sh tools/analyze.supp $^

-include $(wildcard $(ANALYZE_DIR)/*/*.d)

# DESIGN.md §2: libraries never include each other nor uv.h; h248/ is libc only, tls/ OpenSSL +
# libc, sctp/ usrsctp + libc. Quoted includes must name a file of the same folder.
LIBC_HEADERS := assert.h complex.h ctype.h errno.h fenv.h float.h inttypes.h iso646.h limits.h \
    locale.h math.h setjmp.h signal.h stdalign.h stdarg.h stdatomic.h stdbool.h stddef.h \
    stdint.h stdio.h stdlib.h stdnoreturn.h string.h tgmath.h threads.h time.h uchar.h wchar.h \
    wctype.h strings.h unistd.h pthread.h fcntl.h endian.h byteswap.h poll.h sched.h netdb.h \
    sys/types.h sys/time.h sys/uio.h sys/socket.h sys/random.h netinet/in.h arpa/inet.h

check-deps:
	@out=$$(for dir in h248 tls sctp; do \
	    [ -d $$dir ] || continue; \
	    case $$dir in tls) extra='openssl/*';; sctp) extra='usrsctp.h';; *) extra='';; esac; \
	    for file in $$(find $$dir -name '*.[ch]' | sort); do \
	        grep -n -E '^[[:space:]]*#[[:space:]]*include' $$file | while IFS= read -r line; do \
	            num=$${line%%:*}; \
	            inc=$$(printf '%s' "$$line" | sed -E 's/^[^#]*#[[:space:]]*include[[:space:]]*//'); \
	            name=$$(printf '%s' "$$inc" | sed -E 's/^[<"]([^>"]*)[>"].*/\1/'); \
	            case $$inc in \
	            \"*) case $$name in */*) ;; *) [ -f "$$dir/$$name" ] && continue;; esac ;; \
	            \<*) for ok in $(LIBC_HEADERS); do [ "$$name" = "$$ok" ] && continue 2; done; \
	                 if [ -n "$$extra" ]; then case $$name in $$extra) continue;; esac; fi ;; \
	            esac; \
	            echo "$$file:$$num: $$dir/ may not include $$inc (DESIGN.md §2)"; \
	        done; \
	    done; \
	done); \
	if [ -n "$$out" ]; then echo "$$out"; echo "check-deps: FAILED"; exit 1; fi; \
	echo "check-deps: ok"

FORMAT_FILES = $(shell find agw h248 tls sctp tests tools -name '*.[ch]' \
                   -not -path 'tests/corpus/*' -not -path 'tests/fuzz/corpus/*' 2>/dev/null | sort)

format:
	$(CLANG_FORMAT) -i $(FORMAT_FILES)

format-check:
	$(CLANG_FORMAT) --dry-run --Werror $(FORMAT_FILES)

compdb:
	bear --output compile_commands.json -- $(MAKE) -B all tests


# Data-channel throughput (issues 5/6): a gateway of our own on loopback; 1 KiB and 64 KiB
# messages over a UDP/SCTP and a UDP/DTLS/SCTP core leg; its CPU time per GB relayed.
bench-dc: build/agw-bench build/ims-agw
	@build/ims-agw --iq-listen 127.0.0.1:2944 --mgc 127.0.0.1:2945 --workers 2 \
	    --realm access,127.0.0.1,6000-6099 --realm core,127.0.0.1,6100-6199 --log-level warn & \
	pid=$$!; status=0; \
	for core in plain dtls; do \
	    build/agw-bench dc --listen 127.0.0.1:2945 --target-pid $$pid --core $$core \
	        --size 1K --messages 80000 || status=1; \
	    build/agw-bench dc --listen 127.0.0.1:2945 --target-pid $$pid --core $$core \
	        --size 64K --messages 6000 || status=1; \
	done; \
	kill $$pid; wait $$pid || status=1; exit $$status

bench-codec: build/bench-codec
	build/bench-codec

# TLS engine: 1 GiB bulk (memory, engine over a socketpair, SSL_set_fd), handshakes/s, idle memory.
bench-tls: build/bench-tls
	build/bench-tls

# Iq session set-ups per second against a spawned gateway, workers=1 then 2.
bench-setup: build/agw-bench build/ims-agw
	build/agw-bench setup --sessions 200000 --window 128 --workers 1
	build/agw-bench setup --sessions 200000 --window 128 --workers 2

# Relay throughput side by side, same run, same tool: ims-agw (workers 1 and 2), stunnel, HAProxy
# and a plain splice relay, TLS 1.3 AES-128-GCM P-256, 3 interleaved rounds, medians (min/max).
# Installs stunnel4 and haproxy when missing (as root; skipped otherwise): references, not deps.
bench: build/agw-bench build/ims-agw
	tools/bench-refs.sh

# Soak (not part of check): SOAK_SESSIONS sessions with traffic and churn for SOAK_SECONDS
# against a spawned gateway; every byte verified, the gateway's descriptors and RSS watched.
# SOAK_ARGS adds options (agw-soak --help), e.g. SOAK_ARGS="--agw-bin build/asan/ims-agw".
# The overload suite links the Iq client like the other suites that drive the daemon.
SOAK_SECONDS ?= 600
SOAK_SESSIONS ?= 2000
SOAK_OBJS := agw-soak.o soak_iq.o soak_peers.o soak_dc.o iq_client.o dc_endpoint.o
define soak_variant
$(1)/agw-soak: $(SOAK_OBJS:%=$(1)/obj/tools/%) $(1)/obj/agw/stun.o $(LIB_NAMES:%=$(1)/%)
	$$(CC) $(2) $$(LDFLAGS) -o $$@ $$^ $$(LIB_LIBS) -lpthread $$(LDLIBS)

$(1)/tests/test_overload: $(1)/obj/tests/test_overload.o $(1)/obj/tests/harness.o \
    $(1)/obj/tools/iq_client.o $(LIB_NAMES:%=$(1)/%)
	@mkdir -p $$(@D)
	$$(CC) $(2) $$(LDFLAGS) -o $$@ $$^ $$(CHECK_LIBS) $$(LIB_LIBS) $$(LDLIBS)
endef
$(eval $(call soak_variant,build,))
$(eval $(call soak_variant,build/asan,$(SAN)))
$(eval $(call soak_variant,build/vg,))

# Every suite, and the daemons they spawn, under valgrind memcheck (about 35 min on 2 cores).
valgrind: deps
	tools/valgrind-suite.sh

.PHONY: soak
soak: build/agw-soak build/ims-agw
	build/agw-soak --seconds $(SOAK_SECONDS) --sessions $(SOAK_SESSIONS) $(SOAK_ARGS)

# The e2ae MSRP flow end to end with openssl s_client as the UE (see tools/demo.sh).
demo: deps all
	tools/demo.sh

run: deps all
	exec build/ims-agw $(ARGS)

# make install [DESTDIR=...] [PREFIX=/usr/local]: programs, the systemd unit (its paths filled
# in), man pages, and the example configuration unless one is there already.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
MANDIR ?= $(PREFIX)/share/man
UNITDIR ?= $(PREFIX)/lib/systemd/system
SYSCONFDIR ?= /etc
INSTALL ?= install
INSTALLED_BINS := agw-ctl agw-bench msrp-peer dc-peer
INSTALLED_MANS := man/ims-agw.8 man/ims-agw.conf.5 man/agw-ctl.1 man/agw-bench.1

install: build/ims-agw $(INSTALLED_BINS:%=build/%)
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(UNITDIR) \
	    $(DESTDIR)$(SYSCONFDIR)/ims-agw $(foreach s,1 5 8,$(DESTDIR)$(MANDIR)/man$(s))
	$(INSTALL) -m 0755 build/ims-agw $(DESTDIR)$(SBINDIR)/ims-agw
	$(INSTALL) -m 0755 $(INSTALLED_BINS:%=build/%) $(DESTDIR)$(BINDIR)/
	sed -e 's|@SBINDIR@|$(SBINDIR)|g' -e 's|@SYSCONFDIR@|$(SYSCONFDIR)|g' \
	    dist/ims-agw.service.in > build/ims-agw.service
	$(INSTALL) -m 0644 build/ims-agw.service $(DESTDIR)$(UNITDIR)/ims-agw.service
	for m in $(INSTALLED_MANS); do \
	    $(INSTALL) -m 0644 $$m $(DESTDIR)$(MANDIR)/man$${m##*.}/ || exit 1; done
	@conf=$(DESTDIR)$(SYSCONFDIR)/ims-agw/ims-agw.conf; \
	if [ -e $$conf ]; then echo "install: $$conf exists, kept"; \
	else echo "$(INSTALL) -m 0644 agw/ims-agw.conf.example $$conf"; \
	    $(INSTALL) -m 0644 agw/ims-agw.conf.example $$conf; fi
	@echo "install: done; with systemd: systemctl daemon-reload && systemctl enable --now ims-agw"

# Everything install put, except the configuration (it may hold local changes).
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/ims-agw $(INSTALLED_BINS:%=$(DESTDIR)$(BINDIR)/%) \
	    $(DESTDIR)$(UNITDIR)/ims-agw.service
	for m in $(INSTALLED_MANS); do rm -f $(DESTDIR)$(MANDIR)/man$${m##*.}/$${m#man/}; done
	@echo "uninstall: $(DESTDIR)$(SYSCONFDIR)/ims-agw/ims-agw.conf kept"

clean:
	rm -rf build compile_commands.json
