# paramd - top-level commands.  CMake does the building underneath.
#
#   make          build everything into build/
#   make test     build and run the whole test suite (ctest)
#   make demo     install missing Debian packages (as root), build, run the
#                 main job
#   make sanitize build with AddressSanitizer + UBSan into build-san/ and
#                 run the suite there
#   make tsan     build with ThreadSanitizer (-O1 -g) into build-tsan/ and
#                 run the suite there; any report fails its test
#                 (docs/testing.md, "ThreadSanitizer")
#   make bench    build and run the benchmarks
#   make install  build, then install into PREFIX [/usr/local] under
#                 DESTDIR [none]: the program, libparamd (.so with a soname,
#                 and .a), headers, paramd.pc, the CMake package, the plugin
#                 example, the man page and the Python package
#                 (PYTHON_SITE=DIR overrides where the latter goes)
#   make fuzz     build the libFuzzer harnesses with clang into build-fuzz/
#                 and run each for FUZZ_SECONDS (default 60); new inputs go
#                 to build-fuzz/corpus/, crashes to build-fuzz/crashes/
#                 (tests/fuzz/README.md)
BUILD ?= build
SAN_BUILD ?= build-san
TSAN_BUILD ?= build-tsan
FUZZ_BUILD ?= build-fuzz
FUZZ_SECONDS ?= 60
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
DESTDIR ?=
PYTHON_SITE ?=

.PHONY: all build test demo sanitize tsan fuzz deps clean bench install

all: build

$(BUILD)/CMakeCache.txt:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo

build: $(BUILD)/CMakeCache.txt
	cmake --build $(BUILD) -j$(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j$(JOBS)

$(SAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(SAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPARAMD_SANITIZE=ON

sanitize: $(SAN_BUILD)/CMakeCache.txt
	cmake --build $(SAN_BUILD) -j$(JOBS)
	ctest --test-dir $(SAN_BUILD) --output-on-failure -j$(JOBS)

$(TSAN_BUILD)/CMakeCache.txt:
	cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPARAMD_TSAN=ON

# Each test runs under tests/tsan_run.sh: a report from any process it
# started fails it (the reports are kept in $(TSAN_BUILD)/tsan-reports/).
tsan: $(TSAN_BUILD)/CMakeCache.txt
	cmake --build $(TSAN_BUILD) -j$(JOBS)
	rm -rf $(TSAN_BUILD)/tsan-reports
	TSAN_OPTIONS="second_deadlock_stack=1 $(TSAN_OPTIONS)" \
	  ctest --test-dir $(TSAN_BUILD) --output-on-failure -j$(JOBS)

$(FUZZ_BUILD)/CMakeCache.txt:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=Debug -DPARAMD_FUZZ=ON

fuzz: $(FUZZ_BUILD)/CMakeCache.txt
	cmake --build $(FUZZ_BUILD) -j$(JOBS) --target fuzz_all
	bash tests/fuzz/run.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

deps:
	@bash scripts/deps.sh

demo: deps
	@$(MAKE) --no-print-directory build
	@bash scripts/demo.sh $(BUILD)

bench: build
	@bash bench/run.sh $(BUILD)

install: build
	DESTDIR="$(DESTDIR)" PARAMD_PYTHON_SITE="$(PYTHON_SITE)" \
	  cmake --install $(BUILD) --prefix "$(PREFIX)"

clean:
	rm -rf $(BUILD) $(SAN_BUILD) $(TSAN_BUILD) $(FUZZ_BUILD)
