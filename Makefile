# Standalone build of the C protocol engine (include/cws.h + Sources/CWebSocket/*.c), outside SwiftPM.
#
#   make                      build/libcws.a, build/libcws.so (+ .so.0, .so.VERSION), build/cws.pc
#   make install PREFIX=/usr/local [DESTDIR=...]   (installs include/cws.h only, never cws_testing.h)
#   make uninstall PREFIX=...
#   make example              build and run examples/c/parse_frames against build/libcws.a
#   make check-install        install into build/stage, build the example with pkg-config (shared
#                             and static) and run both
#   make test                 Tests/C/test_*.c (one binary, build/test/test_engine), plain -O2 build
#                             (guard pages, no sanitizer)
#   make test-sanitize        the same with AddressSanitizer + UndefinedBehaviorSanitizer (+ LeakSanitizer)
#   make check-symbols        fail on any exported symbol without the cws_ prefix
#   make fuzz                 libFuzzer targets into Fuzz/bin/ (needs clang with compiler-rt)
#   make fuzz-cov             the same targets with source-based coverage into Fuzz/bin/cov/
#   make test-cov             the C tests with source-based coverage (Fuzz/bin/cov/test_engine)
#   make clean
#
# CC defaults to clang; CC=gcc works for the library, the example and `make test`. The sanitizer
# and fuzz builds use FUZZ_CC (default clang): libFuzzer ships with clang.

VERSION      := 0.1.0
SOVERSION    := 0
PREFIX       ?= /usr/local
LIBDIR       ?= $(PREFIX)/lib
INCLUDEDIR   ?= $(PREFIX)/include
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig

ifeq ($(origin CC),default)
CC := clang
endif
FUZZ_CC ?= clang
AR      ?= ar
NM      ?= nm

BUILD := build
FUZZ_BIN := Fuzz/bin

# The engine: Sources/CWebSocket/*.c and the SIMD kernels in Sources/CWebSocket/kernels/*.c.
# include/cws.h is the installed API; include/cws_testing.h (tests, fuzzers, benchmarks) is not.
SRC     := $(sort $(wildcard Sources/CWebSocket/*.c Sources/CWebSocket/kernels/*.c))
HDR     := include/cws.h include/cws_testing.h $(wildcard Sources/CWebSocket/*.h Sources/CWebSocket/kernels/*.h)
OBJ     := $(patsubst Sources/CWebSocket/%.c,$(BUILD)/obj/%.o,$(SRC))
TESTHDR := Tests/C/cws_test_ref.h Tests/C/test_harness.h
# The C tests, one file per engine module (frame, conn, mask, utf8, deflate, extension, handshake),
# the shared harness and main: one binary runs them all.
TESTSRC := $(sort $(wildcard Tests/C/test_*.c))

# zlib is linked only once an engine file uses it (permessage-deflate), as Benchmarks/run-c.sh does.
ZLIB := $(if $(shell grep -ls 'zlib\.h' $(SRC) Sources/CWebSocket/*.h 2>/dev/null),-lz,)

WARN     := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes
CFLAGS   ?= -O2 -g
ALL_CFLAGS = -std=c11 $(WARN) $(CFLAGS) -Iinclude -ISources/CWebSocket

# lld when the compiler can use it: the default gold linker prints hundreds of warnings on ASan's
# symbols (checked here with the Swift toolchain's clang 21).
LLD := $(shell echo 'int main(void){return 0;}' | $(FUZZ_CC) -fuse-ld=lld -x c - -o /dev/null 2>/dev/null && echo -fuse-ld=lld)

SAN_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_ENV   := ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1:detect_stack_use_after_return=1:check_initialization_order=1 \
             UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

FUZZ_FLAGS := -O1 -g -fno-omit-frame-pointer -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined
COV_FLAGS  := -O1 -g -fsanitize=fuzzer -fprofile-instr-generate -fcoverage-mapping
FUZZERS    := $(patsubst Fuzz/%.c,%,$(sort $(wildcard Fuzz/fuzz_*.c)))

.PHONY: all lib install uninstall example check-install test test-sanitize check-symbols fuzz fuzz-cov test-cov clean FORCE

all: lib
lib: $(BUILD)/libcws.a $(BUILD)/libcws.so $(BUILD)/libcws.so.$(SOVERSION) $(BUILD)/cws.pc

$(BUILD)/obj/%.o: Sources/CWebSocket/%.c $(HDR)
	@mkdir -p $(@D)
	$(CC) $(ALL_CFLAGS) -fPIC -c $< -o $@

$(BUILD)/libcws.a: $(OBJ)
	@rm -f $@
	$(AR) rcs $@ $^

$(BUILD)/libcws.so.$(VERSION): $(OBJ)
	$(CC) -shared -Wl,-soname,libcws.so.$(SOVERSION) $(LDFLAGS) -o $@ $^ $(ZLIB)

$(BUILD)/libcws.so.$(SOVERSION) $(BUILD)/libcws.so: $(BUILD)/libcws.so.$(VERSION)
	ln -sf libcws.so.$(VERSION) $@

# The .pc file records PREFIX; it is rewritten only when its text changes, so `make install
# PREFIX=...` after `make` gets the right paths without rebuilding the library.
$(BUILD)/cws.pc: cws.pc.in FORCE
	@mkdir -p $(@D)
	@sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
	     -e 's|@VERSION@|$(VERSION)|' -e 's|@LIBS_PRIVATE@|$(ZLIB)|' $< > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv $@.tmp $@; echo "wrote $@ (prefix $(PREFIX))"; fi

install: lib
	install -d $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PKGCONFIGDIR)
	install -m 644 include/cws.h $(DESTDIR)$(INCLUDEDIR)/cws.h
	install -m 644 $(BUILD)/libcws.a $(DESTDIR)$(LIBDIR)/libcws.a
	install -m 755 $(BUILD)/libcws.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcws.so.$(VERSION)
	ln -sf libcws.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcws.so.$(SOVERSION)
	ln -sf libcws.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libcws.so
	install -m 644 $(BUILD)/cws.pc $(DESTDIR)$(PKGCONFIGDIR)/cws.pc

uninstall:
	rm -f $(DESTDIR)$(INCLUDEDIR)/cws.h $(DESTDIR)$(LIBDIR)/libcws.a $(DESTDIR)$(LIBDIR)/libcws.so \
	      $(DESTDIR)$(LIBDIR)/libcws.so.$(SOVERSION) $(DESTDIR)$(LIBDIR)/libcws.so.$(VERSION) \
	      $(DESTDIR)$(PKGCONFIGDIR)/cws.pc

# ---- example ------------------------------------------------------------------------------------

$(BUILD)/example/parse_frames: examples/c/parse_frames.c include/cws.h $(BUILD)/libcws.a
	@mkdir -p $(@D)
	$(CC) -std=c11 $(WARN) $(CFLAGS) -Iinclude $< $(BUILD)/libcws.a $(ZLIB) -o $@

example: $(BUILD)/example/parse_frames
	$(BUILD)/example/parse_frames

# Install into a staging prefix and build the example the way a user would, through pkg-config.
STAGE := $(CURDIR)/$(BUILD)/stage
check-install:
	$(MAKE) --no-print-directory install PREFIX=$(STAGE)
	@test ! -e $(STAGE)/include/cws_testing.h || { echo "check-install: cws_testing.h must not be installed"; exit 1; }
	@mkdir -p $(BUILD)/example
	$(CC) -std=c11 $(WARN) examples/c/parse_frames.c \
	    $$(PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config --cflags --libs cws) -o $(BUILD)/example/parse_frames_shared
	LD_LIBRARY_PATH=$(STAGE)/lib $(BUILD)/example/parse_frames_shared > /dev/null
	@LD_LIBRARY_PATH=$(STAGE)/lib ldd $(BUILD)/example/parse_frames_shared | grep -q '$(STAGE)/lib/libcws.so.$(SOVERSION)' \
	    || { echo "check-install: the example is not linked to the staged libcws.so"; exit 1; }
	$(CC) -std=c11 $(WARN) examples/c/parse_frames.c \
	    $$(PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config --static --cflags cws) $(STAGE)/lib/libcws.a \
	    $$(PKG_CONFIG_PATH=$(STAGE)/lib/pkgconfig pkg-config --static --libs-only-l cws | sed 's/-lcws//') \
	    -o $(BUILD)/example/parse_frames_static
	$(BUILD)/example/parse_frames_static > /dev/null
	@echo "check-install: pkg-config build against $(STAGE) works (shared and static)"

# ---- tests --------------------------------------------------------------------------------------

TEST_DEFS := -DCWS_VECTOR_DIR='"$(CURDIR)/Tests/Vectors"'

$(BUILD)/test/test_engine: $(TESTSRC) $(TESTHDR) $(HDR) $(BUILD)/libcws.a
	@mkdir -p $(@D)
	$(CC) -std=c11 -Wall -Wextra $(CFLAGS) -Iinclude -ITests/C $(TEST_DEFS) $(TESTSRC) $(BUILD)/libcws.a $(ZLIB) -o $@

# The sanitizer build compiles the engine sources itself, so the library code is instrumented too.
$(BUILD)/test/test_engine_san: $(TESTSRC) $(TESTHDR) $(SRC) $(HDR)
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -Wall -Wextra $(SAN_FLAGS) $(LLD) -Iinclude -ISources/CWebSocket -ITests/C $(TEST_DEFS) \
	    $(TESTSRC) $(SRC) $(ZLIB) -o $@

test: $(BUILD)/test/test_engine
	$(BUILD)/test/test_engine

test-sanitize: $(BUILD)/test/test_engine_san
	$(SAN_ENV) $(BUILD)/test/test_engine_san

# Every global symbol the library defines must start with cws_ (internal ones are cws__*). Checked on
# the static archive and on the shared library's dynamic symbol table (where the linker adds
# _init, _fini, _edata, _end and __bss_start itself).
check-symbols: $(BUILD)/libcws.a $(BUILD)/libcws.so
	@bad=$$($(NM) -g --defined-only $(BUILD)/libcws.a | awk 'NF == 3 && $$3 !~ /^cws_/ { print $$3 }' | sort -u); \
	bad="$$bad$$($(NM) -D --defined-only $(BUILD)/libcws.so | awk 'NF == 3 && $$3 !~ /^cws_/ && $$3 !~ /^(_init|_fini|_edata|_end|__bss_start)$$/ { print " " $$3 }' | sort -u)"; \
	n=$$($(NM) -g --defined-only $(BUILD)/libcws.a | awk 'NF == 3' | wc -l); \
	if [ -n "$$bad" ]; then echo "check-symbols: symbols without the cws_ prefix:"; echo "$$bad"; exit 1; fi; \
	echo "check-symbols: all $$n global symbols of libcws.a (and libcws.so's dynamic symbols) start with cws_"

# ---- fuzzing ------------------------------------------------------------------------------------

fuzz: $(addprefix $(FUZZ_BIN)/,$(FUZZERS))
fuzz-cov: $(addprefix $(FUZZ_BIN)/cov/,$(FUZZERS))
test-cov: $(FUZZ_BIN)/cov/test_engine

$(FUZZ_BIN)/obj/%.o: Sources/CWebSocket/%.c $(HDR)
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 $(FUZZ_FLAGS:-fsanitize=fuzzer,%=-fsanitize=fuzzer-no-link,%) -Iinclude -ISources/CWebSocket -c $< -o $@

$(FUZZ_BIN)/fuzz_%: Fuzz/fuzz_%.c Fuzz/fuzz_common.h $(TESTHDR) $(patsubst Sources/CWebSocket/%.c,$(FUZZ_BIN)/obj/%.o,$(SRC))
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -Wall -Wextra $(FUZZ_FLAGS) $(LLD) -Iinclude -ISources/CWebSocket -ITests/C \
	    $< $(filter %.o,$^) $(ZLIB) -o $@

$(FUZZ_BIN)/cov/obj/%.o: Sources/CWebSocket/%.c $(HDR)
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 $(subst -fsanitize=fuzzer,-fsanitize=fuzzer-no-link,$(COV_FLAGS)) -Iinclude -ISources/CWebSocket -c $< -o $@

$(FUZZ_BIN)/cov/fuzz_%: Fuzz/fuzz_%.c Fuzz/fuzz_common.h $(TESTHDR) $(patsubst Sources/CWebSocket/%.c,$(FUZZ_BIN)/cov/obj/%.o,$(SRC))
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -Wall -Wextra $(COV_FLAGS) $(LLD) -Iinclude -ISources/CWebSocket -ITests/C \
	    $< $(filter %.o,$^) $(ZLIB) -o $@

# The C tests with coverage, for Fuzz/coverage.sh (compiles the engine sources itself).
$(FUZZ_BIN)/cov/test_engine: $(TESTSRC) $(TESTHDR) $(SRC) $(HDR)
	@mkdir -p $(@D)
	$(FUZZ_CC) -std=c11 -Wall -Wextra $(subst -fsanitize=fuzzer,,$(COV_FLAGS)) $(LLD) -Iinclude -ISources/CWebSocket -ITests/C \
	    $(TEST_DEFS) $(TESTSRC) $(SRC) $(ZLIB) -o $@

clean:
	rm -rf $(BUILD) $(FUZZ_BIN)
