# paramd - top-level commands.  CMake does the building underneath.
#
#   make          build everything into build/
#   make test     build and run the whole test suite (ctest)
#   make demo     install missing Debian packages (as root), build, run the
#                 main job
#   make sanitize build with AddressSanitizer + UBSan into build-san/ and
#                 run the suite there
#   make bench    build and run the benchmarks
#   make install  build, then install into PREFIX [/usr/local] under
#                 DESTDIR [none]: the program, libparamd (.so with a soname,
#                 and .a), headers, paramd.pc, the CMake package, the plugin
#                 example, the man page and the Python package
#                 (PYTHON_SITE=DIR overrides where the latter goes)
BUILD ?= build
SAN_BUILD ?= build-san
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX ?= /usr/local
DESTDIR ?=
PYTHON_SITE ?=

.PHONY: all build test demo sanitize deps clean bench install

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
	rm -rf $(BUILD) $(SAN_BUILD)
