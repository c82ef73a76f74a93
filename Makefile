# hookd -- build, test, run, install.
#
#   make              build/hookd and build/plugins/*.so
#   make run          start the daemon on etc/hookd.json (CONFIG=file PORT=n)
#   make test         the whole suite (unit + integration)
#   make asan         the whole suite, ASan+UBSan build (in build/asan)
#   make tsan         the integration suite against a TSan daemon (build/tsan)
#   make bench        benchmarks (not part of the suite)
#   make fuzz         libFuzzer on the request parser and the server transport,
#                     FUZZ_SECONDS each (default 600)
#   make install      PREFIX=/usr/local DESTDIR= (uninstall: the same, removed)
#   make scaleout     nginx in front of 3 hookd under wrk: rolling restart + reload
#   make unit-check   systemd-analyze the unit offline (exposure <= 3.5)
#
# Sanitizers are a knob: make SANITIZER=address,undefined BUILD=build/x test

PREFIX   ?= /usr/local
DESTDIR  ?=
CC       ?= cc
CFLAGS   ?= -O2 -g
LDFLAGS  ?=
SANITIZER ?=
BUILD    ?= build

PKGS      := libevent libcjson libcurl libcrypto
# Evaluated on first use, not when the Makefile is read: on a fresh machine
# the packages only exist once the `deps` prerequisite has installed them
# (read at parse time, the flags were empty and the first build failed).
PC_CFLAGS = $(eval PC_CFLAGS := $$(shell pkg-config --cflags $(PKGS)))$(PC_CFLAGS)
PC_LIBS   = $(eval PC_LIBS := $$(shell pkg-config --libs $(PKGS)))$(PC_LIBS)

WARN      := -Wall -Wextra -Werror -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
             -Wno-missing-field-initializers
SAN       := $(if $(SANITIZER),-fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all)
ALL_CFLAGS = -std=c11 -D_GNU_SOURCE -Isdk $(WARN) $(PC_CFLAGS) $(SAN) $(CFLAGS) -MMD -MP
PLUGIN_CFLAGS = $(filter-out -MMD -MP,$(ALL_CFLAGS)) -fPIC -fvisibility=hidden
PLUGIN_LDFLAGS := -shared -Wl,--no-undefined $(SAN) $(LDFLAGS)

HOST_SRCS := $(wildcard host/*.c)
HOST_OBJS := $(HOST_SRCS:host/%.c=$(BUILD)/obj/host/%.o)
LIB_OBJS  := $(filter-out $(BUILD)/obj/host/main.o,$(HOST_OBJS))

PLUGIN_SRCS := $(filter-out %_common.c,$(wildcard plugins/*.c))
PLUGINS     := $(PLUGIN_SRCS:plugins/%.c=$(BUILD)/plugins/%.so)

FIXTURE_SRCS := $(wildcard tests/fixtures/*.c)
FIXTURES     := $(FIXTURE_SRCS:tests/fixtures/%.c=$(BUILD)/fixtures/%.so) \
                $(BUILD)/fixtures/not_elf.so $(BUILD)/fixtures/unresolved.so \
                $(BUILD)/fixtures/ver_a.so $(BUILD)/fixtures/ver_b.so \
                $(BUILD)/fixtures/preload/slowdns.so $(BUILD)/fixtures/cxx_plugin.so \
                $(BUILD)/fixtures/cxx_thread.so

UNIT_SRCS  := $(wildcard tests/unit/*.c)
INTEG_SRCS := $(wildcard tests/integration/*.c) $(wildcard tests/support/*.c)
UNIT_OBJS  := $(UNIT_SRCS:%.c=$(BUILD)/obj/%.o)
INTEG_OBJS := $(INTEG_SRCS:%.c=$(BUILD)/obj/%.o)

.PHONY: all deps deps-test run test check unit integration asan tsan bench install \
        uninstall clean fixtures scaleout unit-check fuzz
.DELETE_ON_ERROR:

all: deps $(BUILD)/hookd $(PLUGINS)

deps:
	@scripts/deps.sh build

deps-test:
	@scripts/deps.sh test

# Plugins must reach the pthread functions host/interpose.c defines before
# libc's: export exactly those from the executable (and from the unit runner,
# which loads fixtures through the same loader).
EXPORTS_LDFLAGS := -Wl,--dynamic-list=host/exports.list

$(BUILD)/hookd: $(HOST_OBJS) host/exports.list
	$(CC) $(SAN) $(LDFLAGS) $(EXPORTS_LDFLAGS) -o $@ $(HOST_OBJS) $(PC_LIBS) -ldl -lpthread

# order-only: under -j no compiler runs before the packages are there
$(BUILD)/obj/%.o: %.c | deps
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(BUILD)/obj/tests/%.o: tests/%.c | deps-test
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

# hookd refuses a plugin file or folder writable by group or others: a
# umask of 002 must not make `make run` refuse its own examples
$(BUILD)/plugins/%.so: plugins/%.c sdk/hookd.h
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(PLUGIN_LDFLAGS) -o $@ $< -lcjson
	@chmod go-w $@ $(dir $@)

# the sync HTTP example links libcurl itself
$(BUILD)/plugins/fetch_sync.so: plugins/fetch_sync.c sdk/hookd.h
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(PLUGIN_LDFLAGS) -o $@ $< -lcjson -lcurl
	@chmod go-w $@ $(dir $@)

# Broken plugins, one per rejection reason, and two versions of one plugin
# for the reload tests. Test fixtures only: never in build/plugins.
fixtures: $(FIXTURES)

$(BUILD)/fixtures/%.so: tests/fixtures/%.c sdk/hookd.h
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(PLUGIN_LDFLAGS) -o $@ $< -lcjson

$(BUILD)/fixtures/not_elf.so:
	@mkdir -p $(dir $@)
	printf 'this is not a shared object\n' > $@

# references a symbol nothing defines: dlopen(RTLD_NOW) must refuse it
$(BUILD)/fixtures/unresolved.so: tests/fixtures/src/unresolved.c sdk/hookd.h
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) -shared $(SAN) -o $@ $< -lcjson

# LD_PRELOAD shim: a resolver that takes 1.5 s for *.slow.test (no sanitizer:
# it is preloaded before the sanitizer runtime)
$(BUILD)/fixtures/preload/slowdns.so: tests/fixtures/src/slowdns.c
	@mkdir -p $(dir $@)
	$(CC) -O2 -fPIC -shared -Wall -Wextra -Werror -o $@ $< -ldl

# A C++ plugin through the SDK's macros (g++, C++20): must export exactly
# hookd_plugin. -fvisibility-inlines-hidden keeps the standard library's
# inline template code (std::string's members) out of the dynamic symbols.
CXXFLAGS ?= -O2 -g
# `=`, not `:=`: read at parse time, PC_CFLAGS would be fetched (and kept,
# empty) before `deps` has installed the packages on a fresh machine
PLUGIN_CXXFLAGS = -std=c++20 -D_GNU_SOURCE -Isdk -Wall -Wextra -Werror -Wshadow $(PC_CFLAGS) \
                   $(SAN) $(CXXFLAGS) -fPIC -fvisibility=hidden -fvisibility-inlines-hidden
$(BUILD)/fixtures/cxx_%.so: tests/fixtures/cxx_%.cc sdk/hookd.h
	@mkdir -p $(dir $@)
	$(CXX) $(PLUGIN_CXXFLAGS) $(PLUGIN_LDFLAGS) -o $@ $< -lcjson

$(BUILD)/fixtures/ver_%.so: tests/fixtures/src/ver.c sdk/hookd.h
	@mkdir -p $(dir $@)
	$(CC) $(PLUGIN_CFLAGS) $(PLUGIN_LDFLAGS) -DVER='"$*"' -o $@ $< -lcjson

$(BUILD)/tests/unit: $(UNIT_OBJS) $(LIB_OBJS) host/exports.list
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) $(EXPORTS_LDFLAGS) -o $@ $(UNIT_OBJS) $(LIB_OBJS) $(PC_LIBS) \
	    -lcriterion -ldl -lpthread

$(BUILD)/tests/integration: $(INTEG_OBJS) $(BUILD)/obj/host/json.o
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(PC_LIBS) -levent_pthreads -lcriterion -lpthread

# the test upstream as a standalone server, for bench/
$(BUILD)/tests/upstream: $(BUILD)/obj/tests/upstream/main.o $(BUILD)/obj/tests/support/upstream.o
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ $(PC_LIBS) -levent_pthreads -lpthread

# Criterion runs tests in parallel processes; each daemon test binds port 0.
CRITERION_FLAGS ?= --jobs 2
# Sanitizer settings for the test runners and the daemons they start.
TEST_ENV := HOOKD_BUILD=$(BUILD) \
	LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp \
	UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# The unit runner: `leak:libcriterion.so` alone would match every allocation
# made on a test's own thread (Criterion's frames are deep in its stack) and
# hide the leaks the dispatch/hostapi suites check for (unit_dispatch.c
# ud_end); without it, Criterion's runner now and then leaks 48 bytes of its
# own at exit and fails a green run. Recording 3 frames per allocation keeps
# Criterion out of the stacks of hookd's allocations and in the stack of its
# own (calloc <- libcriterion).
unit: deps-test all fixtures $(BUILD)/tests/unit
	$(TEST_ENV) LSAN_OPTIONS=suppressions=$(CURDIR)/tests/lsan.supp:malloc_context_size=3 \
	    $(BUILD)/tests/unit $(CRITERION_FLAGS)

# The integration suite runs twice: one event loop, then two sharing the port;
# then the payload round trips and the chains once more with every plugin
# isolated (in child processes).
integration: deps-test all fixtures $(BUILD)/tests/integration $(BUILD)/tests/upstream
	$(TEST_ENV) HOOKD_REACTORS=1 $(BUILD)/tests/integration $(CRITERION_FLAGS)
	$(TEST_ENV) HOOKD_REACTORS=2 $(BUILD)/tests/integration $(CRITERION_FLAGS)
	$(TEST_ENV) HOOKD_REACTORS=1 HOOKD_ISOLATE=1 $(BUILD)/tests/integration $(CRITERION_FLAGS) \
	    --filter '@(payloads|chains)/*'

test: unit integration

check: test

asan:
	$(MAKE) SANITIZER=address,undefined BUILD=build/asan test

# Criterion 2.4.1 cannot start under TSan ("Could not initialize inheritable
# arena", then SEGV): build the daemon and the
# plugins with TSan, run the uninstrumented integration suite against them;
# the harness fails a test on a TSan report in the daemon's log.
tsan: deps-test
	$(MAKE) SANITIZER=thread BUILD=build/tsan all fixtures build/tsan/tests/pool_stress \
	    build/tsan/tests/dedup_stress
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 build/tsan/tests/pool_stress
	TSAN_OPTIONS=halt_on_error=1:exitcode=66 build/tsan/tests/dedup_stress
	$(MAKE) BUILD=build build/tests/integration build/tests/upstream
	HOOKD_BUILD=build/tsan HOOKD_TSAN=1 HOOKD_REACTORS=1 build/tests/integration $(CRITERION_FLAGS)
	HOOKD_BUILD=build/tsan HOOKD_TSAN=1 HOOKD_REACTORS=2 build/tests/integration $(CRITERION_FLAGS)
	HOOKD_BUILD=build/tsan HOOKD_TSAN=1 HOOKD_REACTORS=1 HOOKD_ISOLATE=1 build/tests/integration \
	    $(CRITERION_FLAGS) --filter '@(payloads|chains)/*'

# the pool under TSan, driven by a plain program (see tests/tsan/)
$(BUILD)/tests/pool_stress: $(BUILD)/obj/tests/tsan/pool_stress.o $(BUILD)/obj/host/pool.o
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ -lpthread

# the dedup table under TSan, the same way
$(BUILD)/tests/dedup_stress: $(BUILD)/obj/tests/tsan/dedup_stress.o $(BUILD)/obj/host/dedup.o
	@mkdir -p $(dir $@)
	$(CC) $(SAN) $(LDFLAGS) -o $@ $^ -lpthread

# make run CONFIG=my.json PORT=9090 (PORT keeps the config's host; -l HOST:PORT
# on the command line does the same for the address)
CONFIG ?= etc/hookd.json
PORT   ?=
run: all
	$(BUILD)/hookd -c $(CONFIG)$(if $(PORT), -l $(PORT))

bench:
	@scripts/deps.sh bench
	$(MAKE) all
	bench/run.sh

# libFuzzer (clang) under ASan+UBSan, not part of the suite: two targets,
# FUZZ_SECONDS each (FUZZ_H1_SECONDS, FUZZ_HSRV_SECONDS to set one alone):
# fuzz_h1 on the request parser, fuzz_hsrv on the server transport over a
# socketpair (tests/unit/hsrv_drive.h). Seeds in tests/fuzz/corpus/<target>
# (read only, replayed by the unit suites h1 and hsrv); what a run learns
# goes to $(BUILD)/fuzz/corpus/<target>, a crash to $(BUILD)/fuzz/crash-*
# (then: into the seed corpus, and a unit test).
FUZZ_SECONDS ?= 600
FUZZ_H1_SECONDS ?= $(FUZZ_SECONDS)
FUZZ_HSRV_SECONDS ?= $(FUZZ_SECONDS)
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -g -O1 $(WARN) \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_H1_SRCS := tests/fuzz/fuzz_h1.c tests/unit/h1_drive.c host/h1.c
FUZZ_HSRV_SRCS := tests/fuzz/fuzz_hsrv.c tests/unit/hsrv_drive.c host/hsrv.c host/h1.c host/log.c
FUZZ_ENV     := UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

fuzz:
	@scripts/deps.sh fuzz
	$(MAKE) $(BUILD)/fuzz/fuzz_h1 $(BUILD)/fuzz/fuzz_hsrv
	@mkdir -p $(BUILD)/fuzz/corpus/h1 $(BUILD)/fuzz/corpus/hsrv
	$(FUZZ_ENV) $(BUILD)/fuzz/fuzz_h1 \
	    -max_total_time=$(FUZZ_H1_SECONDS) -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/ \
	    $(BUILD)/fuzz/corpus/h1 tests/fuzz/corpus/h1
	$(FUZZ_ENV) $(BUILD)/fuzz/fuzz_hsrv \
	    -max_total_time=$(FUZZ_HSRV_SECONDS) -print_final_stats=1 -artifact_prefix=$(BUILD)/fuzz/ \
	    $(BUILD)/fuzz/corpus/hsrv tests/fuzz/corpus/hsrv

$(BUILD)/fuzz/fuzz_h1: $(FUZZ_H1_SRCS) host/h1.h tests/unit/h1_drive.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -o $@ $(FUZZ_H1_SRCS)

# libevent is not instrumented (coverage is hsrv's and h1's)
$(BUILD)/fuzz/fuzz_hsrv: $(FUZZ_HSRV_SRCS) host/hsrv.h host/h1.h host/log.h host/name.h \
    tests/unit/hsrv_drive.h
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(shell pkg-config --cflags libevent) -o $@ $(FUZZ_HSRV_SRCS) \
	    $(shell pkg-config --libs libevent)

# hookd.pc.in -> hookd.pc for PREFIX (written at install time, so that a
# build made for another PREFIX never leaks into it)
ver_of = $(shell sed -n 's/^\#define $(1) "*\([0-9.]*\)"*$$/\1/p' $(2))
PC_SED = sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(call ver_of,HOOKD_VERSION,host/version.h)|' \
	     -e 's|@ABI_MAJOR@|$(call ver_of,HOOKD_ABI_MAJOR,sdk/hookd.h)|' \
	     -e 's|@ABI_MINOR@|$(call ver_of,HOOKD_ABI_MINOR,sdk/hookd.h)|'

# The unit goes where systemd looks for PREFIX (/usr/lib/systemd/system,
# /usr/local/lib/systemd/system). The example config gets pid_file in
# RuntimeDirectory (hookd -s reload, the unit's ExecReload, reads it),
# whatever etc/hookd.json says (a development path, if anything).
# The .pc is arch-independent (a header and Requires): share/pkgconfig.
UNITDIR ?= $(PREFIX)/lib/systemd/system
install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(PREFIX)/lib/hookd/plugins $(DESTDIR)$(PREFIX)/share/hookd \
	    $(DESTDIR)$(PREFIX)/share/pkgconfig $(DESTDIR)$(PREFIX)/share/man/man8 \
	    $(DESTDIR)$(UNITDIR)
	install -m 755 $(BUILD)/hookd $(DESTDIR)$(PREFIX)/bin/hookd
	install -m 644 sdk/hookd.h $(DESTDIR)$(PREFIX)/include/hookd.h
	install -m 755 $(PLUGINS) $(DESTDIR)$(PREFIX)/lib/hookd/plugins/
	sed -e 's|"plugin_dir": "[^"]*"|"plugin_dir": "$(PREFIX)/lib/hookd/plugins"|' \
	    -e '/"state_dir":/d' -e '/"pid_file":/d' \
	    -e 's|^{$$|{\n  "pid_file": "/run/hookd/hookd.pid",|' etc/hookd.json \
	    > $(DESTDIR)$(PREFIX)/share/hookd/hookd.json.example
	sed 's|/usr/local/|$(PREFIX)/|g' etc/hookd.service > $(DESTDIR)$(UNITDIR)/hookd.service
	$(PC_SED) hookd.pc.in > $(DESTDIR)$(PREFIX)/share/pkgconfig/hookd.pc
	install -m 644 doc/hookd.8 $(DESTDIR)$(PREFIX)/share/man/man8/hookd.8
	install -m 644 etc/logrotate.d/hookd $(DESTDIR)$(PREFIX)/share/hookd/logrotate.hookd

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/hookd $(DESTDIR)$(PREFIX)/include/hookd.h \
	    $(DESTDIR)$(PREFIX)/share/pkgconfig/hookd.pc $(DESTDIR)$(PREFIX)/share/man/man8/hookd.8 \
	    $(DESTDIR)$(UNITDIR)/hookd.service
	rm -rf $(DESTDIR)$(PREFIX)/lib/hookd $(DESTDIR)$(PREFIX)/share/hookd

# Not part of the suite: nginx (Debian nginx-light, installed if missing) in
# front of 3 hookd on loopback, wrk load, rolling restart and reload of all
# three; exits 1 unless every call succeeded.
scaleout: all
	@scripts/deps.sh scaleout
	scripts/scaleout.sh $(BUILD)

# The unit's sandbox, offline (no systemd needed as PID 1): exposure <= 3.5
unit-check:
	systemd-analyze security --offline=true --threshold=35 etc/hookd.service

clean:
	rm -rf build

-include $(HOST_OBJS:.o=.d) $(UNIT_OBJS:.o=.d) $(INTEG_OBJS:.o=.d) \
    $(BUILD)/obj/tests/tsan/pool_stress.d $(BUILD)/obj/tests/tsan/dedup_stress.d \
    $(BUILD)/obj/tests/upstream/main.d
